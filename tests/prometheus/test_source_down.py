"""A real Prometheus that stops answering, then dies: the view keeps its last figures, marks
them stale as they age, and says why on a banner; nothing waits or crashes."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from console.collector import Collector
from console.config import load_config
from console.model import Severity
from console.plugin import Registry
from console.render import snapshot_json
from console.sim import SimFleet
from console.sim.prometheus import PrometheusProcess, scrape_jobs

SCHEMA = Path(__file__).resolve().parents[2] / "console" / "schemas" / "status.schema.json"


class Clock:
    """Monotonic time the test moves on by hand (the waits themselves stay real)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_prometheus_slow_then_dead(tmp_path: Path, registry: Registry) -> None:
    schema = json.loads(SCHEMA.read_text())
    clock = Clock()
    async with (
        SimFleet(nodes=2, seed=4, gpus=1, engines=("vllm",), static=True) as sim,
        PrometheusProcess(scrape_jobs(sim.nodes), interval=1.0) as prometheus,
    ):
        await prometheus.wait_for("count(up == 1)", 4)
        path = tmp_path / "fleet.yaml"
        path.write_text(
            f"source: {{plugin: prometheus, url: {prometheus.url}, "
            "refresh: {interval: 1s, timeout: 500ms}}\n"
        )
        collector = Collector(load_config(path), registry, clock=clock)
        try:
            await collector.scrape_all()
            fresh = collector.current()
            assert [n.name for n in fresh.nodes] == [n.name for n in sim.nodes]
            assert fresh.sources[0].banner is None and fresh.severity is Severity.OK

            prometheus.pause()  # accepts connections, answers nothing
            await collector.scrape_all()
            clock.now += 1.0
            slow = collector.current()
            source = slow.sources[0]
            assert not source.up and source.error == "no answer within 0.5 s"
            assert source.banner is not None and "no answer within 0.5 s" in source.banner
            # the last figures stay on screen while they are fresh enough
            assert [n.engine.running for n in slow.nodes] == [n.engine.running for n in fresh.nodes]
            clock.now += 10.0  # past stale_after (3 intervals)
            aged = collector.current()
            assert all(n.stale and n.severity is Severity.UNKNOWN for n in aged.nodes)
            assert all(n.reasons[0].startswith("stale: last data") for n in aged.nodes)
            # nothing known is not critical: no pool pages on-call for Prometheus's outage
            assert aged.severity is Severity.UNKNOWN
            assert all(p.reasons == ("no node has fresh data",) for p in aged.pools)
            jsonschema.validate(snapshot_json(aged), schema)
            prometheus.resume()
            url = prometheus.url
            await prometheus.stop()

            await collector.scrape_all()
            dead = collector.current().sources[0]
            assert dead.error == "cannot connect: connection refused"
            assert dead.banner is not None and dead.banner.startswith(f"prometheus {url}:")
        finally:
            await collector.aclose()
