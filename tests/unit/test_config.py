"""fleet.yaml: values and defaults, overrides, every issue at its line and column, hostile files,
where the file is found, and `fleetdeck config check`."""

from __future__ import annotations

import logging
import random
import re
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from console import _yamlnodes
from console.cli import main
from console.config import (
    ConfigIssue,
    InvalidConfigError,
    check_config,
    find_config,
    load_config,
    parse_duration,
)
from console.errors import ConfigError
from console.fleet import Alerts, Refresh, SecretRef, Threshold

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def write(directory: Path, content: str | bytes, name: str = "fleet.yaml") -> Path:
    path = directory / name
    if isinstance(content, str):
        path.write_text(textwrap.dedent(content).lstrip("\n"), encoding="utf-8")
    else:
        path.write_bytes(content)
    return path


def issues_of(directory: Path, content: str | bytes) -> list[ConfigIssue]:
    fleet, issues = check_config(write(directory, content))
    assert (fleet is None) == bool(issues)
    return issues


@pytest.fixture(params=["libyaml", "pure-python"])
def loader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run a test with each composer: libyaml when present, and the pure-Python fallback."""
    if request.param == "libyaml":
        if not yaml.__with_libyaml__:
            pytest.skip("PyYAML built without libyaml")
        monkeypatch.setattr(_yamlnodes, "_LOADER", yaml.CSafeLoader)
    else:
        monkeypatch.setattr(_yamlnodes, "_LOADER", _yamlnodes._DepthCappedLoader)


# --- valid files ----------------------------------------------------------------------------


@pytest.mark.usefixtures("loader")
def test_minimal_example_loads_as_written() -> None:
    fleet = load_config(EXAMPLES / "fleet.minimal.yaml")

    assert fleet.refresh == Refresh(interval=2.0, timeout=1.0)
    assert fleet.alerts == Alerts()
    assert fleet.gateways == ()
    (pool,) = fleet.pools
    assert (pool.name, pool.nodes, pool.min_healthy, pool.gateway) == (
        "llama-us",
        ("us-1", "us-2"),
        0,
        None,
    )
    us1, us2 = fleet.nodes
    assert (us1.name, us1.pool, us1.engine, us1.line) == ("us-1", "llama-us", "vllm", 4)
    assert us1.url == "http://127.0.0.1:8001"
    assert us1.engine_metrics_url == "http://127.0.0.1:8001/metrics"
    assert (us1.agent, us1.dcgm, us1.server, us1.token) == (None, None, None, None)
    assert us1.refresh == Refresh()
    assert (us2.engine, us2.agent) == ("auto", "http://127.0.0.1:9401")
    assert us2.engine_metrics_url == "http://127.0.0.1:8002/metrics"


def test_reference_example_is_valid() -> None:
    fleet, issues = check_config(EXAMPLES / "fleet.reference.yaml")

    assert issues == []
    assert fleet is not None
    assert [pool.name for pool in fleet.pools] == ["llama-us", "llama-eu"]
    assert [gateway.name for gateway in fleet.gateways] == ["edge"]
    primary = fleet.pool("llama-us")
    assert (primary.gateway, primary.backend, primary.standby) == (
        "edge",
        "pool_primary",
        "llama-eu",
    )
    assert primary.alerts.waiting == Threshold(warn=40, crit=100)  # crit kept from the fleet
    merged = next(node for node in fleet.nodes if node.name == "us-2")
    assert (merged.engine, merged.token) == ("vllm", SecretRef(env="AGENT_TOKEN"))  # via <<
    assert merged.server == "us-2"  # defaults to the node's name in a pool with a gateway


REFERENCE_KEYS = {
    "top level": ("refresh", "alerts", "gateways", "pools"),
    "refresh": ("interval", "timeout"),
    "alerts": ("error_rate", "waiting", "kv_cache_usage", "ttft_p95_s", "gpu_temp"),
    "alerts too": ("stale_after", "warn", "crit"),
    "gateway": ("name", "plugin", "endpoints", "token_env", "token_file"),
    "pool": ("model", "gateway", "backend", "route", "map", "key", "standby", "min_healthy"),
    "pool too": ("nodes",),
    "node": ("engine", "url", "metrics_url", "agent", "dcgm", "server"),
}


@pytest.mark.parametrize("keys", REFERENCE_KEYS.values(), ids=REFERENCE_KEYS.keys())
def test_reference_example_documents_every_key(keys: tuple[str, ...]) -> None:
    text = (EXAMPLES / "fleet.reference.yaml").read_text(encoding="utf-8")
    for key in keys:
        commented = rf"\b{key}:.*#|#.*\n\s*(- )?{key}:"  # on its line, or the line above
        assert re.search(commented, text), f"'{key}' has no comment"


def test_overrides_resolve_fleet_then_pool_then_node(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        refresh: {interval: 4s, timeout: 2s}
        alerts:
          error_rate: {warn: 0.05}
          waiting: {crit: 50}
        gateways:
          - {name: gw, plugin: haproxy, endpoints: ["tcp://h:1"], refresh: {interval: 1m}}
        pools:
          - name: p
            gateway: gw
            backend: b
            refresh: {interval: 3s}
            alerts:
              error_rate: {crit: 0.5}
              waiting: {warn: null}
              ttft_p95_s: {warn: 1500ms}
            nodes:
              - {name: inherits, url: "http://h:1/"}
              - {name: overrides, url: "http://h:2", server: s2, refresh: {timeout: 500ms}}
        """,
    )
    fleet = load_config(path)

    assert fleet.refresh == Refresh(interval=4.0, timeout=2.0)
    assert fleet.gateways[0].refresh == Refresh(interval=60.0, timeout=2.0)
    inherits, overrides = fleet.nodes
    assert inherits.refresh == Refresh(interval=3.0, timeout=2.0)
    assert overrides.refresh == Refresh(interval=3.0, timeout=0.5)
    assert (inherits.url, inherits.server, overrides.server) == ("http://h:1", "inherits", "s2")
    assert fleet.alerts.error_rate == Threshold(warn=0.05, crit=0.10)  # default crit kept
    assert fleet.alerts.waiting == Threshold(warn=20, crit=50)
    pool = fleet.pools[0].alerts
    assert pool.error_rate == Threshold(warn=0.05, crit=0.5)
    assert pool.waiting == Threshold(warn=None, crit=50)  # null switches a level off
    assert pool.ttft_p95_s == Threshold(warn=1.5, crit=5.0)
    assert pool.kv_cache_usage == Alerts().kv_cache_usage


def test_merge_keys_and_extension_keys(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        x-base: &base {engine: sglang, url: "http://base:1", refresh: {interval: 5s}}
        x-agent: &agent {agent: "http://agent:9401", engine: tgi}
        pools:
          - name: p
            nodes:
              - {<<: *base, name: a}
              - {<<: [*agent, *base], name: b, url: "http://own:2"}
        """,
    )
    a, b = load_config(path).nodes

    assert (a.engine, a.url, a.refresh.interval) == ("sglang", "http://base:1", 5.0)
    assert (b.engine, b.url, b.agent) == ("tgi", "http://own:2", "http://agent:9401")


def test_token_file_is_relative_to_the_config_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        pools:
          - name: p
            nodes: [{name: a, agent: "http://a:9401", token_file: secrets/a.token}]
        """,
    )
    (node,) = load_config(path).nodes

    assert node.token == SecretRef(file=str(tmp_path / "secrets" / "a.token"))


# --- every error class, at its line and column -------------------------------------------

POOL = """
pools:
  - name: p
    nodes:
      - {name: n, url: "http://h:1"}
"""

ERRORS = [
    (
        "unknown key",
        """
        pools:
          - name: p
            refresh:
              intervall: 2s
            nodes: [{name: n, url: "http://h:1"}]
        """,
        (4, 7),
        "unknown key 'intervall' in pools[0].refresh (did you mean 'interval'?)",
    ),
    ("unknown top key", "pool:\n" + POOL, (1, 1), "unknown key 'pool' at top level (did you mean"),
    ("interval list", "refresh: {interval: [1]}" + POOL, (1, 21), "refresh.interval: expected"),
    ("bad duration", "refresh:\n  timeout: 2x" + POOL, (2, 12), "bad duration '2x' (use e.g."),
    ("zero interval", "refresh: {interval: 0}" + POOL, (1, 21), "must be longer than 0s"),
    ("timeout > interval", "refresh: {timeout: 3s}" + POOL, (1, 20), "timeout 3s is longer"),
    ("nodes mapping", "pools:\n  - name: p\n    nodes: {}", (3, 12), "expected a list of nodes"),
    (
        "min_healthy string",
        'pools:\n  - name: p\n    min_healthy: "x"\n    nodes: [{name: n, url: "http://h"}]',
        (3, 18),
        "pools[0].min_healthy: expected a whole number >= 0, got the string 'x'",
    ),
    (
        "min_healthy too high",
        'pools:\n  - name: p\n    min_healthy: 2\n    nodes: [{name: n, url: "http://h"}]',
        (3, 18),
        "2 but the pool has 1 node(s)",
    ),
    (
        "duplicate name node/gateway",
        """
        gateways:
          - {name: edge, plugin: haproxy, endpoints: ["tcp://h:1"]}
        pools:
          - name: p
            nodes: [{name: n, url: "http://h"}, {name: edge, url: "http://h"}]
        """,
        (5, 48),
        "duplicate name 'edge' (first used at line 2)",
    ),
    (
        "duplicate name pool/node",
        'pools:\n  - name: p\n    nodes:\n      - {name: p, url: "http://h"}',
        (4, 16),
        "duplicate name 'p' (first used at line 2)",
    ),
    (
        "dangling gateway",
        """
        gateways: [{name: edge, plugin: haproxy, endpoints: ["tcp://h:1"]}]
        pools:
          - name: p
            gateway: edg
            backend: b
            nodes: [{name: n, url: "http://h"}]
        """,
        (4, 14),
        "pools[0].gateway: no gateway named 'edg' (did you mean 'edge'?)",
    ),
    (
        "dangling standby",
        'pools:\n  - name: p\n    standby: q\n    nodes: [{name: n, url: "http://h"}]',
        (3, 14),
        "pools[0].standby: no pool named 'q'",
    ),
    (
        "standby itself",
        'pools:\n  - name: p\n    standby: p\n    nodes: [{name: n, url: "http://h"}]',
        (3, 14),
        "a pool cannot be its own standby",
    ),
    (
        "backend without gateway",
        'pools:\n  - name: p\n    backend: b\n    nodes: [{name: n, url: "http://h"}]',
        (3, 5),
        "pools[0].backend: needs a 'gateway'",
    ),
    (
        "gateway without backend",
        """
        gateways: [{name: edge, plugin: haproxy, endpoints: ["tcp://h:1"]}]
        pools:
          - name: p
            gateway: edge
            nodes: [{name: n, url: "http://h"}]
        """,
        (3, 5),
        "'backend' is required when 'gateway' is set",
    ),
    (
        "server without gateway",
        'pools:\n  - name: p\n    nodes:\n      - {name: n, url: "http://h", server: s}',
        (4, 36),
        "the pool has no 'gateway'",
    ),
    (
        "neither url nor agent",
        "pools:\n  - name: p\n    nodes:\n      - name: n\n        engine: vllm",
        (4, 9),
        "pools[0].nodes[0]: needs a 'url' (the engine) or an 'agent'",
    ),
    ("url scheme", POOL.replace("http://h:1", "ftp://h"), (4, 24), "must start with http://"),
    ("url no host", POOL.replace("http://h:1", "http://:80"), (4, 24), "names no host"),
    ("url spaces", POOL.replace("http://h:1", "http://h /x"), (4, 24), "contains spaces"),
    ("url port", POOL.replace("http://h:1", "http://h:99999"), (4, 24), "port out of range"),
    ("url port text", POOL.replace("http://h:1", "http://h:ab"), (4, 24), "bad URL"),
    ("url credentials", POOL.replace("http://h:1", "http://u:pw@h"), (4, 24), "credentials"),
    (
        "bad endpoint",
        "gateways:\n  - name: edge\n    plugin: haproxy\n"
        '    endpoints: ["tcp://h:1", "tcp://h", "unix://run/x.sock", "http://h:1"]' + POOL,
        (4, 30),
        "gateways[0].endpoints[1]: bad endpoint 'tcp://h': expected tcp://HOST:PORT",
    ),
    (
        "unix endpoint",
        'gateways: [{name: g, plugin: p, endpoints: ["unix://run/x.sock"]}]' + POOL,
        (1, 45),
        "needs an absolute path",
    ),
    (
        "no endpoints",
        "gateways: [{name: g, plugin: p, endpoints: []}]" + POOL,
        (1, 44),
        "gateways[0].endpoints: empty",
    ),
    (
        "engine did-you-mean",
        POOL.replace("{name: n,", "{name: n, engine: vlm,"),
        (4, 27),
        "unknown engine 'vlm' (did you mean 'vllm'?)",
    ),
    (
        "literal secret",
        POOL.replace("{name: n,", "{name: n, token: abc,"),
        (4, 19),
        "pools[0].nodes[0].token: secrets only by reference: use token_env or token_file",
    ),
    (
        "token_env and token_file",
        POOL.replace("{name: n,", "{name: n, token_env: T, token_file: /t,"),
        (4, 33),
        "use token_env or token_file, not both",
    ),
    (
        "duplicate key",
        "pools:\n  - name: p\n    name: q\n    nodes: [{name: n, url: 'http://h'}]",
        (3, 5),
        "pools[0]: duplicate key 'name' (first at line 2)",
    ),
    ("bad name", POOL.replace("name: n,", "name: -n,"), (4, 16), "bad name '-n'"),
    ("warn above crit", "alerts: {waiting: {warn: 9, crit: 3}}" + POOL, (1, 19), "warn 9 is above"),
    ("fraction", "alerts:\n  error_rate: {crit: 2}" + POOL, (2, 22), "a fraction from 0 to 1"),
    ("top level list", "- pools: []\n", (1, 1), "top level: expected a mapping with 'pools'"),
    ("empty file", "", (1, 1), "empty config: expected a mapping with 'pools'"),
    ("no pools", "refresh: {interval: 2s}\n", (1, 1), "no pools"),
    ("empty pools", "pools: []\n", (1, 8), "no pools"),
]


@pytest.mark.parametrize(
    ("content", "where", "message"),
    [case[1:] for case in ERRORS],
    ids=[case[0] for case in ERRORS],
)
def test_each_error_is_reported_at_its_line_and_column(
    tmp_path: Path, content: str, where: tuple[int, int], message: str
) -> None:
    issues = issues_of(tmp_path, content)

    matching = [issue for issue in issues if message in issue.message]
    assert matching, f"no issue says {message!r}: {[str(issue) for issue in issues]}"
    assert (matching[0].line, matching[0].col) == where, str(matching[0])


def test_every_issue_is_reported_sorted_and_formatted(tmp_path: Path) -> None:
    issues = issues_of(
        tmp_path,
        """
        refresh: {interval: 2x}
        pools:
          - name: p
            nodes:
              - {name: a, url: "ftp://a"}
              - {name: a, engine: vlm}
        """,
    )

    assert [(issue.line, issue.col) for issue in issues] == [
        (1, 21),
        (5, 24),
        (6, 9),
        (6, 16),
        (6, 27),
    ]
    message = "refresh.interval: bad duration '2x' (use e.g. 500ms, 2s, 1m)"
    assert str(issues[0]) == f"{tmp_path / 'fleet.yaml'}:1:21: {message}"


def test_load_config_raises_with_the_first_issues_and_a_count(tmp_path: Path) -> None:
    nodes = "".join(f"      - {{name: n{index}}}\n" for index in range(8))
    path = write(tmp_path, "pools:\n  - name: p\n    nodes:\n" + nodes)

    with pytest.raises(InvalidConfigError) as raised:
        load_config(path)

    assert isinstance(raised.value, ConfigError)
    assert len(raised.value.issues) == 8
    lines = str(raised.value).splitlines()
    assert lines[:5] == [str(issue) for issue in raised.value.issues[:5]]
    assert lines[5:] == ["and 3 more"]


# --- hostile files -----------------------------------------------------------------------------


def billion_laughs(first: str, level: str) -> str:
    """Ten anchors, each made of nine aliases of the one before: 9**9 nodes once expanded."""
    lines = [first]
    for index in range(1, 10):
        lines.append(level.format(index=index, aliases=", ".join([f"*a{index - 1}"] * 9)))
    return "\n".join(lines)


@pytest.mark.usefixtures("loader")
@pytest.mark.parametrize(
    "content",
    [
        billion_laughs(
            "a0: &a0 [" + ", ".join(["lol"] * 9) + "]", "a{index}: &a{index} [{aliases}]"
        )
        + "\npools: *a9\n",
        billion_laughs("a0: &a0 {x: 1}", "a{index}: &a{index} {{<<: [{aliases}]}}")
        + "\nrefresh: *a9\n",
    ],
    ids=["lists", "merge keys"],
)
def test_billion_laughs_is_refused_quickly(tmp_path: Path, content: str) -> None:
    started = time.perf_counter()
    issues = issues_of(tmp_path, content)
    elapsed = time.perf_counter() - started

    assert elapsed < 1.0
    assert len(issues) == 1
    assert issues[0].message.startswith("too many alias expansions (> 1000000): refusing")
    assert issues[0].line == 7  # the first level that alone expands past the cap


MALFORMED = [
    ("empty", b"", "empty config"),
    ("comments only", b"# nothing here\n", "empty config"),
    ("null document", b"~\n", "empty config"),
    ("NUL byte", b"pools:\n  - \x00x\n", "NUL byte at offset 11"),
    ("invalid UTF-8", b"pools:\n  - name: \xff\xfe\n", "not UTF-8 text: byte 0xff at offset 17"),
    ("control character", b"pools: \x07\n", "control character U+0007"),
    ("tab indent", b"pools:\n\t- name: a\n", "a tab: indent YAML with spaces"),
    ("unclosed bracket", b"pools: [ {name: a\n", "flow mapping"),
    ("unclosed quote", b'pools: "abc\n', "quoted scalar"),
    ("deep nesting", b"[" * 20_000, "nesting"),
    ("deep block nesting", b"".join(b" " * i + b"- \n" for i in range(300)), "nesting"),
    ("two documents", b"pools: []\n---\npools: []\n", "single document"),
    ("recursive alias", b"a: &a [*a]\npools: []\n", "recursive alias"),
    ("recursive merge", b"a: &a {<<: *a}\n", "recursive alias"),
    ("undefined alias", b"pools: *nowhere\n", "undefined alias"),
    ("duplicate anchor", b"a: &x 1\nb: &x 2\n", "duplicate anchor"),
    ("binary tag", b"pools: !!binary aGVsbG8=\n", "tagged !!binary"),
    ("bad explicit int", b"pools:\n  - name: p\n    min_healthy: !!int x\n", "not a valid !!int"),
    ("bad explicit bool", b"pools: !!bool maybe\n", "'maybe' tagged !!bool"),
    ("bad merge", b"pools:\n  - <<: 3\n    name: p\n", "'<<' merges a mapping"),
    ("list key", b"? [a]\n: 1\npools: []\n", "a key must be plain text"),
    ("scalar document", b"just words\n", "top level: expected a mapping"),
    ("top-level list", b"- a\n- b\n", "top level: expected a mapping"),
]


@pytest.mark.usefixtures("loader")
@pytest.mark.parametrize(
    ("content", "message"),
    [case[1:] for case in MALFORMED],
    ids=[case[0] for case in MALFORMED],
)
def test_malformed_files_give_issues_not_exceptions(
    tmp_path: Path, content: bytes, message: str
) -> None:
    issues = issues_of(tmp_path, content)

    assert any(message in issue.message for issue in issues), [str(i) for i in issues]
    assert all(issue.line >= 1 and issue.col >= 1 for issue in issues)


def test_malformed_positions(tmp_path: Path) -> None:
    (nul,) = issues_of(tmp_path, b"pools:\n  - \x00x\n")
    assert (nul.line, nul.col) == (2, 5)
    (tab,) = issues_of(tmp_path, b"pools:\n\t- name: a\n")
    assert (tab.line, tab.col) == (2, 1)
    (utf8,) = issues_of(tmp_path, b"a: 1\npools: [\xc3\x28]\n")
    assert (utf8.line, utf8.col) == (2, 9)


@pytest.mark.usefixtures("loader")
def test_random_input_never_raises(tmp_path: Path) -> None:
    rng = random.Random(20240611)
    alphabet = "[]{}:-,&*!|>'\"\t\n #?~%@`<.0a1b\\"
    blobs = [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200))) for _ in range(40)]
    blobs += [
        "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 60))).encode()
        for _ in range(300)
    ]
    for blob in blobs:
        fleet, issues = check_config(write(tmp_path, blob))
        assert fleet is None and issues, blob
        assert all(issue.line >= 1 and issue.col >= 1 for issue in issues), blob


def test_huge_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    with path.open("wb") as handle:
        handle.truncate(9 * 1024 * 1024)  # sparse: nothing is written

    fleet, issues = check_config(path)

    assert fleet is None
    assert [(issue.line, issue.col) for issue in issues] == [(1, 1)]
    assert "over the 8 MiB limit: refusing to read it" in issues[0].message


@pytest.mark.parametrize("name", ["missing.yaml", "."], ids=["missing", "directory"])
def test_unreadable_file_is_one_issue(tmp_path: Path, name: str) -> None:
    fleet, issues = check_config(tmp_path / name)

    assert fleet is None
    assert len(issues) == 1
    assert issues[0].message.startswith("cannot read: ")


# --- durations --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("2s", 2.0), ("1.5s", 1.5), ("1m", 60.0), ("1h", 3600.0), ("3", 3.0),
     (" 2 s ", 2.0), (".25s", 0.25), (2, 2.0), (0.1, 0.1), (0, 0.0)],
)  # fmt: skip
def test_parse_duration(text: str | int | float, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["2x", "", "s", "-1s", "1.2.3s", "1e3", "inf", -1, float("nan")])
def test_parse_duration_rejects(text: str | int | float) -> None:
    with pytest.raises(
        ValueError, match=re.escape(f"bad duration '{text}' (use e.g. 500ms, 2s, 1m)")
    ):
        parse_duration(text)


# --- where the config is found -------------------------------------------------------------


@pytest.fixture
def places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A working directory, an XDG config home and a home, each with no fleet.yaml yet."""
    places = {name: tmp_path / name for name in ("cwd", "xdg", "home", "other")}
    for place in places.values():
        place.mkdir()
    monkeypatch.chdir(places["cwd"])
    monkeypatch.setenv("HOME", str(places["home"]))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(places["xdg"]))
    monkeypatch.delenv("FLEETDECK_CONFIG", raising=False)
    return places


def user_config(base: Path) -> Path:
    (base / "fleetdeck").mkdir(parents=True)
    return write(base / "fleetdeck", POOL)


def test_find_config_order(places: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    assert find_config(None) is None
    in_xdg = user_config(places["xdg"])
    assert find_config(None) == in_xdg
    write(places["cwd"], POOL)
    assert find_config(None) == Path("fleet.yaml")
    from_env = write(places["other"], POOL, "env.yaml")
    monkeypatch.setenv("FLEETDECK_CONFIG", str(from_env))
    assert find_config(None) == from_env
    explicit = write(places["other"], POOL, "explicit.yaml")
    assert find_config(str(explicit)) == explicit


def test_find_config_defaults_to_home_config(
    places: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("XDG_CONFIG_HOME")
    in_home = user_config(places["home"] / ".config")

    assert find_config(None) == in_home


def test_find_config_named_file_must_exist(
    places: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    write(places["cwd"], POOL)
    with pytest.raises(ConfigError, match=r"config file /no/such.yaml \(from -c\) does not exist"):
        find_config("/no/such.yaml")
    monkeypatch.setenv("FLEETDECK_CONFIG", "/no/env.yaml")
    with pytest.raises(ConfigError, match=r"/no/env.yaml \(from FLEETDECK_CONFIG\)"):
        find_config(None)


# --- fleetdeck config check ----------------------------------------------------------------


@pytest.fixture
def cli(places: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Keep the command's log in the test's directory and drop its handlers afterwards."""
    monkeypatch.setenv("XDG_STATE_HOME", str(places["other"]))
    logger = logging.getLogger("fleetdeck")
    before = list(logger.handlers)
    yield
    for handler in set(logger.handlers) - set(before):
        logger.removeHandler(handler)
        handler.close()


@pytest.mark.usefixtures("cli")
def test_config_check_valid(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(EXAMPLES / "fleet.reference.yaml")

    assert main(["config", "check", path]) == 0
    assert capsys.readouterr().out == f"{path}: ok (4 nodes, 2 pools, 1 gateways)\n"


@pytest.mark.usefixtures("cli")
def test_config_check_invalid_prints_every_issue(
    places: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(places["other"], "refresh: {interval: 2x}\npools: [{name: p, nodes: {}}]\n")

    assert main(["config", "check", "-c", str(path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"{path}:1:21: refresh.interval: bad duration '2x' (use e.g. 500ms, 2s, 1m)",
        f"{path}:2:26: pools[0].nodes: expected a list of nodes, got a mapping",
    ]


@pytest.mark.usefixtures("cli")
def test_config_check_finds_the_file(
    places: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["config", "check"]) == 1
    assert "no fleet.yaml found" in capsys.readouterr().err
    monkeypatch.setenv("FLEETDECK_CONFIG", str(places["other"] / "gone.yaml"))
    assert main(["config", "check"]) == 1
    assert "gone.yaml (from FLEETDECK_CONFIG) does not exist" in capsys.readouterr().err
    monkeypatch.delenv("FLEETDECK_CONFIG")
    write(places["cwd"], POOL)
    assert main(["config", "check"]) == 0
    assert capsys.readouterr().out == "fleet.yaml: ok (1 nodes, 1 pools, 0 gateways)\n"


@pytest.mark.usefixtures("cli")
def test_config_check_unreadable_file(
    places: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    missing = places["other"] / "missing.yaml"

    assert main(["config", "check", str(missing)]) == 1
    assert capsys.readouterr().out == f"{missing}:1:1: cannot read: No such file or directory\n"


@pytest.mark.usefixtures("cli")
@pytest.mark.parametrize(
    "argv", [["config"], ["config", "verify"], ["config", "check", "a.yaml", "b.yaml"]]
)
def test_config_check_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        main(argv)

    assert raised.value.code == 64
    assert capsys.readouterr().err.startswith("fleetdeck: ")


@pytest.mark.usefixtures("cli")
def test_config_check_file_given_twice(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", "a.yaml", "-c", "b.yaml"]) == 64
    assert "not both" in capsys.readouterr().err


# --- actions: capacity, rolling width, read-only, operator commands -------------------------

ACTIONS_FLEET = """
read_only: true
commands:
  - name: restart-engine
    key: R
    scope: node
    argv: [ssh, "{node}", systemctl, restart, vllm]
    dangerous: true
    timeout: 10s
  - {name: pool-report, scope: pool, argv: [echo, "{pool}", "{backend}"], confirm: false}
gateways:
  - {name: edge, plugin: haproxy, endpoints: ["tcp://127.0.0.1:9999"]}
pools:
  - name: p
    gateway: edge
    backend: be_p
    capacity: 64
    max_unavailable: 2
    nodes:
      - {name: a, url: "http://127.0.0.1:8001"}
      - {name: b, url: "http://127.0.0.1:8002", capacity: 8}
      - {name: c, url: "http://127.0.0.1:8003"}
"""


def test_action_settings_are_read(tmp_path: Path) -> None:
    fleet = load_config(write(tmp_path, ACTIONS_FLEET))
    assert fleet.read_only
    assert fleet.pool("p").max_unavailable == 2
    assert [n.capacity for n in fleet.nodes] == [64, 8, 64]
    restart, report = fleet.commands
    assert (restart.key, restart.scope, restart.dangerous, restart.confirm) == (
        "R",
        "node",
        True,
        True,
    )
    assert restart.argv == ("ssh", "{node}", "systemctl", "restart", "vllm")
    assert restart.timeout == 10.0
    assert (report.key, report.confirm, report.dangerous, report.timeout) == (
        None,
        False,
        False,
        30.0,
    )


def test_action_settings_default(tmp_path: Path) -> None:
    fleet = load_config(
        write(tmp_path, "pools: [{name: p, nodes: [{name: a, url: 'http://h:1'}]}]")
    )
    assert not fleet.read_only and fleet.commands == ()
    assert fleet.pool("p").max_unavailable == 1 and fleet.nodes[0].capacity is None


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (
            "{name: x, scope: pool, argv: [echo, '{node}']}",
            "unknown placeholder '{node}' for scope pool",
        ),
        ("{name: x, scope: rack, argv: [echo]}", "unknown scope 'rack'"),
        (
            "{name: x, key: d, scope: node, argv: [echo]}",
            "key 'd' is one of the console's own keys",
        ),
        ("{name: x, scope: node, argv: []}", "commands[0].argv: empty"),
        ("{name: x, scope: node, argv: [echo], confirm: maybe}", "expected true or false"),
    ],
)
def test_bad_commands_are_reported(tmp_path: Path, command: str, message: str) -> None:
    content = (
        f"commands: [{command}]\npools: [{{name: p, nodes: [{{name: a, url: 'http://h:1'}}]}}]\n"
    )
    issues = issues_of(tmp_path, content)
    assert any(message in issue.message for issue in issues), issues
    assert all(issue.line == 1 for issue in issues)


def test_command_keys_must_differ(tmp_path: Path) -> None:
    content = """
    commands:
      - {name: x, key: R, scope: node, argv: [echo]}
      - {name: y, key: R, scope: node, argv: [echo]}
    pools: [{name: p, nodes: [{name: a, url: 'http://h:1'}]}]
    """
    (issue,) = issues_of(tmp_path, content)
    assert (issue.line, issue.message) == (3, "commands: 'y' key 'R' already used at line 2")


def test_capacity_must_be_positive(tmp_path: Path) -> None:
    content = "pools: [{name: p, nodes: [{name: a, url: 'http://h:1', capacity: 0}]}]\n"
    (issue,) = issues_of(tmp_path, content)
    assert "pools[0].nodes[0].capacity: must be at least 1" in issue.message
