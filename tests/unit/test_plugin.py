"""The plugin registry: built-ins and third parties through the same entry-point group, user
plugin files, and broken plugins reported and skipped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from console.errors import PluginError
from console.plugin import load_registry

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "metrics"

THIRD_PARTY = """
from console.mapping import EngineMapping


def register(registry):
    registry.add_mapping(EngineMapping.from_dict({
        "kind": "llamacpp",
        "detect": ["llamacpp:requests_processing"],
        "engine": {
            "running": "llamacpp:requests_processing",
            "waiting": "llamacpp:requests_deferred",
        },
    }, origin="thirdparty_plugin"))
"""


def _install_fake_distribution(site: Path) -> None:
    """A third party's installed package, as pip would leave it: a module and its dist-info."""
    (site / "thirdparty_plugin.py").write_text(THIRD_PARTY)
    (site / "thirdparty_broken.py").write_text("raise RuntimeError('missing dependency')\n")
    info = site / "fleetdeck_thirdparty-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: fleetdeck-thirdparty\nVersion: 0.1\n"
    )
    (info / "entry_points.txt").write_text(
        textwrap.dedent(
            """\
            [fleetdeck.plugins]
            llamacpp = thirdparty_plugin
            broken = thirdparty_broken
            hollow = json
            """
        )
    )


def test_third_party_entry_points_load_beside_the_built_ins(tmp_path: Path) -> None:
    _install_fake_distribution(tmp_path)
    probe = (
        "import json; from console.plugin import load_registry; r = load_registry(); "
        "print(json.dumps({'loaded': r.loaded, 'mappings': sorted(r.mappings), "
        "'errors': [str(e) for e in r.errors]}))"
    )
    env = dict(os.environ, PYTHONPATH=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path / "none"))
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    found = json.loads(result.stdout)
    assert {"agent", "engines", "llamacpp"} <= set(found["loaded"])
    assert {"llamacpp", "vllm"} <= set(found["mappings"])
    errors = "\n".join(found["errors"])
    assert "plugin broken" in errors and "missing dependency" in errors
    assert "plugin hollow" in errors and "register(registry)" in errors
    assert len(found["errors"]) == 2


def test_user_plugin_folder(tmp_path: Path) -> None:
    (tmp_path / "good.py").write_text(
        "def register(registry):\n    registry.add_source('echo', lambda node, url, r: None)\n"
    )
    (tmp_path / "syntax.py").write_text("def register(:\n")
    (tmp_path / "raises.py").write_text("def register(registry):\n    raise ValueError('nope')\n")
    registry = load_registry(user_dir=tmp_path)
    assert "echo" in registry.sources and "good" in registry.loaded
    messages = [str(e) for e in registry.errors]  # files load in name order
    assert len(messages) == 2
    assert messages[0] == "plugin raises: register() failed: ValueError('nope')"
    assert messages[1] == f"{tmp_path / 'syntax.py'}:1:14: invalid syntax"
    assert "engine" in registry.sources  # the built-ins are untouched by the broken files


def test_unknown_source_names_the_node() -> None:
    from console.fleet import NodeConfig, Refresh

    registry = load_registry(user_dir=Path("/nonexistent"))
    node = NodeConfig("n1", "p", "vllm", "http://h:1", None, None, None, None, Refresh())
    with pytest.raises(PluginError, match="node n1: no plugin provides the 'prometheus' source"):
        registry.source("prometheus", node, "http://h:1/metrics")


def test_engine_sources_of_one_registry_share_parsed_label_sets() -> None:
    """A fleet's nodes serve the same label text: one parsed set per text, not per node."""
    from console.fleet import NodeConfig, Refresh

    page = (FIXTURES / "sglang-datadog-fixture-v0.5.10-opt125m.prom").read_bytes()
    registry = load_registry(user_dir=Path("/nonexistent"))
    sources = [
        registry.source(
            "engine",
            NodeConfig(f"n{i}", "p", "sglang", "http://h:1", None, None, None, None, Refresh()),
            "http://h:1/metrics",
        )
        for i in range(3)
    ]
    first = sources[0].decode(page)
    shared = sources[0]._labels  # type: ignore[attr-defined]
    learned = len(shared)
    assert learned > 0
    for source in sources[1:]:
        assert source.decode(page) == first
        assert source._labels is shared  # type: ignore[attr-defined]
    assert len(shared) == learned
    again = [source.decode(page) for source in sources]
    assert again == [first] * 3
