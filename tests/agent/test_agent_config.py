"""agent.yaml: defaults, every key read, every issue at its line and column, and the CLI flags
that override the file."""

from __future__ import annotations

import socket
import textwrap
from pathlib import Path

import pytest

from console.agent.config import (
    AgentConfig,
    DeployConfig,
    EngineConfig,
    HookConfig,
    Listen,
    TlsConfig,
    check_agent_config,
    load_agent_config,
    parse_listen,
)
from console.config import InvalidConfigError
from console.fleet import SecretRef

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def write(directory: Path, content: str, name: str = "agent.yaml") -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(content).lstrip("\n"), encoding="utf-8")
    return path


def issues_of(directory: Path, content: str) -> list[str]:
    """Each issue as `LINE:COL: message` (the file name left out)."""
    config, issues = check_agent_config(write(directory, content))
    assert (config is None) == bool(issues)
    assert all(issue.file.endswith("agent.yaml") for issue in issues)
    return [f"{issue.line}:{issue.col}: {issue.message}" for issue in issues]


def test_an_empty_file_means_every_default(tmp_path: Path) -> None:
    config = load_agent_config(write(tmp_path, ""))
    assert config == AgentConfig(path=str(tmp_path / "agent.yaml"), node=socket.gethostname())
    assert config.listen == Listen("127.0.0.1", 9401) and config.listen.is_loopback
    assert config.token is None and not config.protect_reads and config.tls is None
    assert config.interval == 1.0 and config.engine == EngineConfig()
    assert config.deploy is None and config.hooks == ()


def test_every_key_is_read_and_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    config = load_agent_config(
        write(
            tmp_path,
            """
            node: gpu-07
            listen: "[::1]:9500"
            token_file: secrets/agent.token
            protect_reads: true
            tls: {cert: tls/cert.pem, key: tls/key.pem}
            interval: 500ms
            engine:
              port: 8000
              process_name: vllm
              kind: vllm
              metrics_path: /v1/metrics
              health_path: /ready
            model_dir: /models
            deploy:
              current: rev-7
              history_file: state/history.json
              command: [systemctl, restart, "vllm@{rev}"]
              timeout: 5m
              health_timeout: 90s
            hooks:
              stop_accepting:
                command: [/usr/local/bin/drain, "--why={reason}"]
                timeout: 10s
              resume: {command: [/usr/local/bin/undrain]}
            """,
        )
    )
    assert config.node == "gpu-07"
    assert config.listen == Listen("::1", 9500) and config.listen.is_loopback
    assert str(config.listen) == "[::1]:9500"
    assert config.token == SecretRef(file=str(tmp_path / "secrets/agent.token"))
    assert config.protect_reads is True
    assert config.tls == TlsConfig(str(tmp_path / "tls/cert.pem"), str(tmp_path / "tls/key.pem"))
    assert config.interval == 0.5
    assert config.engine == EngineConfig(8000, "vllm", "vllm", "/v1/metrics", "/ready")
    assert config.engine.metrics_url == "http://127.0.0.1:8000/v1/metrics"
    assert config.model_dir == "/models"
    assert config.deploy == DeployConfig(
        history_file=str(tmp_path / "state/history.json"),
        command=("systemctl", "restart", "vllm@{rev}"),
        current="rev-7",
        timeout=300.0,
        health_url="http://127.0.0.1:8000/ready",
        health_timeout=90.0,
    )
    assert config.hooks == (
        HookConfig("stop_accepting", ("/usr/local/bin/drain", "--why={reason}"), 10.0),
        HookConfig("resume", ("/usr/local/bin/undrain",), 30.0),
    )


def test_the_current_revision_can_come_from_a_file(tmp_path: Path) -> None:
    (tmp_path / "REVISION").write_text("rev-12\n", encoding="utf-8")
    config = load_agent_config(
        write(
            tmp_path,
            """
            deploy:
              revision_file: REVISION
              history_file: history.json
              command: [switch-model, "{rev}"]
            """,
        )
    )
    assert config.deploy is not None and config.deploy.current == "rev-12"
    assert config.deploy.health_url is None  # no engine port: the exit code is the verdict
    assert config.deploy.timeout == 600.0 and config.deploy.health_timeout == 300.0


def test_a_token_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_agent_config(write(tmp_path, "token_env: AGENT_TOKEN\nlisten: 0.0.0.0:9401\n"))
    assert config.token == SecretRef(env="AGENT_TOKEN") and not config.listen.is_loopback
    monkeypatch.setenv("AGENT_TOKEN", "s3cret\n")
    assert config.token.resolve() == "s3cret"


def test_every_issue_is_reported_at_its_line_and_column(tmp_path: Path) -> None:
    issues = issues_of(
        tmp_path,
        """
        node: "bad name"
        listen: 9401
        token: hunter2
        token_file: t
        token_env: "1BAD"
        protect_reads: sometimes
        tls: {cert: c.pem}
        interval: 0s
        engine: {port: 70000, kind: vlm, metrics_path: metrics, flavour: x}
        deploy:
          current: a
          revision_file: b
          command: [switch, "{revision}", "{"]
          timeout: soon
        hooks:
          stop_accepting: {command: [drain, "{reason}", "{rev}"]}
          "bad name": {command: [x]}
          resume: [undrain]
          drain: {timeout: 5s}
        """,
    )
    assert issues == [
        "1:7: node: bad name 'bad name' (letters, digits, '.', '_', '-'; starting with a "
        "letter or digit)",
        "2:9: listen: bad address '9401': expected HOST:PORT, e.g. 127.0.0.1:9401",
        "3:1: token: secrets only by reference: use token_env or token_file",
        "5:12: token_env: '1BAD' is not an environment variable name",
        "6:16: protect_reads: expected true or false, got the string 'sometimes'",
        "7:6: tls: missing 'key'",
        "8:11: interval: must be longer than 0s",
        "9:16: engine.port: 70000 is not a port (1-65535)",
        "9:29: engine.kind: unknown engine 'vlm' (did you mean 'vllm'?); one of vllm, sglang, "
        "tgi, triton, nim, auto",
        "9:48: engine.metrics_path: expected a URL path like /metrics, got 'metrics'",
        "9:57: unknown key 'flavour' in engine",
        "11:3: deploy: missing 'history_file'",
        "12:3: deploy: use current or revision_file, not both",
        "13:21: deploy.command[1]: unknown placeholder '{revision}': only {rev}",
        "13:35: deploy.command[2]: Single '{' encountered in format string (write a literal "
        "brace as {{ or }})",
        "14:12: deploy.timeout: bad duration 'soon' (use e.g. 500ms, 2s, 1m)",
        "16:49: hooks.stop_accepting.command[2]: unknown placeholder '{rev}': only {reason}",
        "17:3: hooks.bad name: a hook name is letters, digits, '_' and '-'",
        "18:11: hooks.resume: expected a mapping with 'command', got a list",
        "19:10: hooks.drain: missing 'command': an argv list, e.g. [engine-drain, "
        "'--reason={reason}']",
    ]


def test_a_deploy_command_must_name_the_revision(tmp_path: Path) -> None:
    issues = issues_of(
        tmp_path,
        """
        deploy:
          history_file: h.json
          command: [systemctl, restart, vllm]
        """,
    )
    assert issues == ["3:12: deploy.command: no {rev}: what would it deploy?"]


def test_an_unreadable_revision_file_is_an_issue_at_its_key(tmp_path: Path) -> None:
    issues = issues_of(
        tmp_path,
        """
        deploy:
          revision_file: missing
          history_file: h.json
          command: [switch, "{rev}"]
        """,
    )
    assert issues == [
        f"2:18: deploy.revision_file: cannot read {tmp_path / 'missing'}: No such file or directory"
    ]


def test_broken_yaml_and_a_non_mapping_are_reported_with_a_position(tmp_path: Path) -> None:
    (broken,) = issues_of(tmp_path, "node: [gpu\n")
    assert broken.startswith("2:1: while parsing a flow sequence (line 1, column 7): ")
    assert issues_of(tmp_path, "- node\n") == [
        "1:1: top level: expected a mapping of agent settings, got a list"
    ]


def test_load_raises_a_config_error_listing_the_issues(tmp_path: Path) -> None:
    path = write(tmp_path, "interval: never\n")
    with pytest.raises(InvalidConfigError) as raised:
        load_agent_config(path)
    assert (
        str(raised.value) == f"{path}:1:11: interval: bad duration 'never' (use e.g. 500ms, 2s, 1m)"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:9401", Listen("127.0.0.1", 9401)),
        ("0.0.0.0:0", Listen("0.0.0.0", 0)),
        ("[::]:9401", Listen("::", 9401)),
        ("localhost:80", Listen("localhost", 80)),
    ],
)
def test_listen_addresses(text: str, expected: Listen) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("9401", "expected HOST:PORT"),
        ("host:http", "'http' is not a port"),
        ("host:70000", "'70000' is not a port"),
        ("::1:9401", "write an IPv6 address in brackets"),
    ],
)
def test_bad_listen_addresses_say_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_listen(text)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.3.4.5", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("10.0.0.7", False),
        ("::", False),
        ("gpu-07.internal", False),
    ],
)
def test_only_loopback_addresses_count_as_loopback(host: str, loopback: bool) -> None:
    assert Listen(host, 9401).is_loopback is loopback


def test_the_reference_example_is_valid_and_documents_every_key(tmp_path: Path) -> None:
    reference = EXAMPLES / "agent.reference.yaml"
    config, issues = check_agent_config(reference)
    assert issues == [] and config is not None
    text = reference.read_text(encoding="utf-8")
    from console.agent import config as module

    for key in (
        *module._TOP_KEYS,
        *module._TLS_KEYS,
        *module._ENGINE_KEYS,
        *module._DEPLOY_KEYS,
        *module._HOOK_KEYS,
    ):
        assert f"{key}:" in text, f"{key} is not documented in {reference.name}"
