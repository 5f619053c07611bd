"""The Prometheus source against a real Prometheus scraping sim nodes and agents: its view of
the fleet agrees with polling the same nodes directly."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from console.collector import Collector
from console.config import load_config
from console.model import NodeStatus, Snapshot
from console.plugin import Registry
from console.sim import SimFleet
from console.sim.prometheus import PrometheusProcess, scrape_jobs

INTERVAL_S = 1.0
WINDOW_S = 10.0


def _by_name(snapshot: Snapshot) -> dict[str, NodeStatus]:
    return {node.name: node for node in snapshot.nodes}


async def _snapshot(path: Path, registry: Registry) -> Snapshot:
    collector = Collector(load_config(path), registry, rate_window=WINDOW_S)
    try:
        await collector.scrape_all()
        return collector.current()
    finally:
        await collector.aclose()


def _source(url: str, extra: str = "") -> str:
    return (
        f"source:\n  plugin: prometheus\n  url: {url}\n  window: {WINDOW_S:g}s\n"
        f"  refresh: {{interval: 2s, timeout: 2s}}\n{extra}"
    )


async def test_gauges_agree_exactly_on_a_still_fleet(tmp_path: Path, registry: Registry) -> None:
    """A static fleet never moves, so Prometheus's newest samples and a direct scrape are the
    same sample: every gauge must be equal, discovered nodes in their pools, kinds detected."""
    async with SimFleet(nodes=4, seed=5, gpus=2, engines=("vllm", "sglang"), static=True) as sim:
        direct_path = tmp_path / "direct.yaml"
        direct_path.write_text(sim.config_yaml())
        async with PrometheusProcess(scrape_jobs(sim.nodes), interval=INTERVAL_S) as prometheus:
            await prometheus.wait_for("count(up == 1)", 2 * len(sim.nodes))
            sourced_path = tmp_path / "sourced.yaml"
            sourced_path.write_text(_source(prometheus.url))
            direct = await _snapshot(direct_path, registry)
            sourced = await _snapshot(sourced_path, registry)
    assert [s.banner for s in sourced.sources] == [None]
    assert sorted(p.name for p in sourced.pools) == sorted(p.name for p in direct.pools)
    ours, theirs = _by_name(sourced), _by_name(direct)
    assert ours.keys() == theirs.keys()
    for name, node in theirs.items():
        seen = ours[name]
        assert (seen.pool, seen.engine_kind, seen.up) == (node.pool, node.engine_kind, True)
        for figure in ("running", "waiting", "kv_cache_usage", "model"):
            assert getattr(seen.engine, figure) == getattr(node.engine, figure), (name, figure)
        assert seen.engine.running is not None
        assert len(seen.gpus) == len(node.gpus) == 2
        for mine, real in zip(seen.gpus, node.gpus, strict=True):
            for figure in ("util", "mem_used", "mem_total", "temp", "power", "power_limit"):
                assert getattr(mine, figure) == getattr(real, figure), (name, figure)
        assert seen.host is not None and node.host is not None
        assert (seen.host.cpu, seen.host.mem_used) == (node.host.cpu, node.host.mem_used)
        assert seen.age_s is not None and seen.age_s < 5 * INTERVAL_S


async def test_rates_agree_within_five_percent(tmp_path: Path, registry: Registry) -> None:
    """Rates computed by Prometheus over the window agree with the collector's own, taken
    from its scrapes over the same window, within 5%."""
    async with SimFleet(nodes=3, seed=2, gpus=1, engines=("vllm",)) as sim:
        direct_path = tmp_path / "direct.yaml"
        direct_path.write_text(sim.config_yaml().replace("interval: 2s", "interval: 1s"))
        async with PrometheusProcess(scrape_jobs(sim.nodes), interval=INTERVAL_S) as prometheus:
            direct = Collector(load_config(direct_path), registry, rate_window=WINDOW_S)
            polling = asyncio.create_task(direct.run())
            try:
                await prometheus.wait_for("count(up == 1)", 2 * len(sim.nodes))
                await asyncio.sleep(WINDOW_S + 2 * INTERVAL_S)
                sourced_path = tmp_path / "sourced.yaml"
                sourced_path.write_text(_source(prometheus.url))
                sourced = await _snapshot(sourced_path, registry)
                polled = direct.current()
            finally:
                polling.cancel()
                await asyncio.gather(polling, return_exceptions=True)
                await direct.aclose()
    ours, theirs = _by_name(sourced), _by_name(polled)
    for name, node in theirs.items():
        for figure in ("requests_per_s", "tokens_per_s", "prompt_tokens_per_s"):
            real, seen = getattr(node.engine, figure), getattr(ours[name].engine, figure)
            assert real is not None and seen is not None, (name, figure)
            assert seen == pytest.approx(real, rel=0.05), (name, figure)
        assert ours[name].engine.ttft_p95_s is not None


async def test_a_listed_fleet_takes_only_gpus_from_prometheus(
    tmp_path: Path, registry: Registry
) -> None:
    """Engines polled directly, GPUs read through Prometheus (no agent listed): the node shows
    both, and Prometheus's GPUs are the agent's."""
    async with SimFleet(nodes=2, seed=7, gpus=2, engines=("vllm",), static=True) as sim:
        direct_path = tmp_path / "direct.yaml"
        direct_path.write_text(sim.config_yaml())
        listed = "".join(f"      - {{name: {node.name}, url: {node.url}}}\n" for node in sim.nodes)
        async with PrometheusProcess(scrape_jobs(sim.nodes), interval=INTERVAL_S) as prometheus:
            await prometheus.wait_for("count(up == 1)", 2 * len(sim.nodes))
            path = tmp_path / "mixed.yaml"
            path.write_text(
                _source(prometheus.url, "  discover: false\n  figures: [gpus]\n")
                + f"pools:\n  - name: {sim.nodes[0].pool}\n    nodes:\n{listed}"
            )
            mixed = await _snapshot(path, registry)
            direct = await _snapshot(direct_path, registry)
    for name, node in _by_name(direct).items():
        seen = _by_name(mixed)[name]
        assert seen.targets[0].url.endswith("/metrics")  # the engine, polled directly
        assert seen.engine.running == node.engine.running
        assert [g.util for g in seen.gpus] == [g.util for g in node.gpus]
        assert seen.host is None  # not taken from the source
        assert {t.url.split(" ")[0] for t in seen.targets[1:]} == {prometheus.url}
