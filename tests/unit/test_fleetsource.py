"""The fleet a source discovers: templates, listed entries first, pools and gateways."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from console.config import check_config, load_config
from console.fleet import SourceConfig
from console.fleetsource import merged_fleet, same_members
from console.model import FleetReading, NodeFigures

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fleet.prometheus.yaml"


def _reading(*nodes: NodeFigures) -> FleetReading:
    return FleetReading(time=0.0, nodes={node.name: node for node in nodes})


def test_example_loads_with_its_source() -> None:
    fleet = load_config(EXAMPLE)
    source = fleet.source
    assert source is not None
    assert (source.plugin, source.window, source.refresh.interval) == ("prometheus", 60.0, 15.0)
    assert (source.labels.node, source.labels.gateway, source.gateway) == (
        "node",
        "gateway",
        "edge",
    )
    assert source.agent == "http://{node}:9401"


def test_discovered_nodes_join_listed_pools_and_new_ones() -> None:
    listed = load_config(EXAMPLE)
    reading = _reading(
        NodeFigures("us-7", "llama-us", engine_kind="vllm"),
        NodeFigures("eu-1", "llama-eu", engine_kind="sglang"),
        NodeFigures("us-canary", "somewhere-else"),  # listed: the file wins
        NodeFigures("stray", None),
    )
    fleet = merged_fleet(listed, reading)
    assert [(p.name, p.nodes) for p in fleet.pools] == [
        ("llama-us", ("us-canary", "us-7")),
        ("llama-eu", ("eu-1",)),
        ("unpooled", ("stray",)),
    ]
    us7, eu1 = fleet.node("us-7"), fleet.node("eu-1")
    assert (us7.engine, us7.server, us7.agent) == ("vllm", "us-7", "http://us-7:9401")
    assert (eu1.engine, eu1.pool, eu1.url) == ("sglang", "llama-eu", None)
    # a discovered pool sits behind the source's gateway, its backend from the template
    eu = fleet.pool("llama-eu")
    assert (eu.gateway, eu.backend, eu.min_healthy) == ("edge", "llama-eu", 0)
    assert fleet.pool("llama-us").backend == "llama_us"  # listed settings kept
    assert not same_members(fleet, listed)
    assert same_members(merged_fleet(listed, reading), fleet)


def test_a_gateway_label_picks_a_listed_gateway_only() -> None:
    listed = load_config(EXAMPLE)
    source = replace(listed.source, gateway=None, server="{pool}-{node}")
    assert isinstance(source, SourceConfig)
    fleet = merged_fleet(
        replace(listed, source=source),
        _reading(
            NodeFigures("a-1", "pa", gateway="edge"),
            NodeFigures("b-1", "pb", gateway="no-such-gateway"),
        ),
    )
    assert (fleet.pool("pa").gateway, fleet.node("a-1").server) == ("edge", "pa-a-1")
    assert (fleet.pool("pb").gateway, fleet.node("b-1").server) == (None, None)


def test_without_discovery_the_listed_fleet_stands() -> None:
    listed = load_config(EXAMPLE)
    quiet = replace(listed, source=replace(listed.source, discover=False))
    assert merged_fleet(quiet, _reading(NodeFigures("new", "p"))) is quiet
    assert merged_fleet(listed, None) is listed


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("source: {plugin: prometheus}\n", "1:9: source: missing 'url'"),
        (
            "source: {plugin: prometheus, url: http://p:9090, window: 0s}\n",
            "1:58: source.window: must be longer than 0s",
        ),
        (
            "source: {plugin: prometheus, url: http://p:9090, labels: {pool: 1x}}\n",
            "1:65: source.labels.pool: '1x' is not a Prometheus label name",
        ),
        (
            "source: {plugin: prometheus, url: http://p:9090, backend: '{node}'}\n",
            "1:59: source.backend: unknown placeholder '{node}'; one of {pool}",
        ),
        (
            "source: {plugin: prometheus, url: http://p:9090, token: abc}\n",
            "1:50: source.token: secrets only by reference: use token_env or token_file",
        ),
        (
            "source: {plugin: prometheus, url: http://p:9090, discover: false}\n",
            "1:1: no pools: a fleet needs at least one pool under 'pools'",
        ),
    ],
)
def test_source_mistakes_name_the_place(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(text)
    fleet, issues = check_config(path)
    assert fleet is None
    assert [f"{i.line}:{i.col}: {i.message}" for i in issues] == [message]


def test_example_documents_every_source_key() -> None:
    from console.config import _SOURCE_KEYS, _SOURCE_LABEL_KEYS

    text = EXAMPLE.read_text(encoding="utf-8")
    for key in (*_SOURCE_KEYS, *_SOURCE_LABEL_KEYS):
        if key == "token_file":  # named in token_env's comment: the two are one choice
            assert "token_file" in text
            continue
        assert re.search(rf"\b{key}:.*#|#.*\n\s*{key}:", text), f"'{key}' has no comment"


def test_listed_pools_keep_the_files_order(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(
        "source: {plugin: prometheus, url: http://p:9090}\n"
        "pools: [{name: zeta, nodes: []}, {name: alpha}]\n"
    )
    fleet = merged_fleet(load_config(path), _reading(NodeFigures("n1", "beta")))
    assert [p.name for p in fleet.pools] == ["zeta", "alpha", "beta"]
