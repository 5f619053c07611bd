"""Nodes the Prometheus source discovered are acted on through the real gateway: a fleet.yaml
that lists only the gateway, a real Prometheus scraping sim engines and agents, and real
HAProxy replicas in front of them. The sim's agents listen on ports of their own, which no
`{node}` template can name, so the source is given no agent template."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from console.actions import Actions
from console.audit import AuditLog
from console.builtin import haproxy
from console.collector import Collector
from console.config import load_config
from console.gateway import GatewayDriver
from console.model import Snapshot
from console.plans import Request
from console.plugin import Registry
from console.sim import SimFleet
from console.sim.haproxy import HaproxyProcess
from console.sim.haproxy_gateway import HaproxyGateway
from console.sim.prometheus import PrometheusProcess, scrape_jobs
from tests.gateway.conftest import (
    TIMEOUT_S,
    Gateway,
    _haproxy_installed,  # noqa: F401  (autouse: skip or fail)
    all_up,
)

REPLICAS = 2


@dataclass
class Sourced:
    """The sim behind real HAProxy replicas, read through Prometheus, and the console's
    collector and actions on a fleet.yaml that lists only the gateway."""

    sim: SimFleet
    replicas: list[HaproxyProcess]
    driver: GatewayDriver
    collector: Collector
    actions: Actions
    audit: Path

    async def states(self, backend: str, server: str) -> list[str]:
        """The server's state on every replica, read from HAProxy itself."""
        return [
            (await self.driver.read(r.runtime_endpoint, ())).servers[(backend, server)].state
            for r in self.replicas
        ]

    async def refreshed(self) -> Snapshot:
        """A whole round (Prometheus and every replica), then the snapshot on it."""
        await self.collector.scrape_all()
        return self.collector.current()


@pytest.fixture
async def sourced(tmp_path: Path, registry: Registry) -> AsyncIterator[Sourced]:
    async with SimFleet(
        nodes=4,
        seed=3,
        gpus=1,
        pools=2,
        engines=("vllm", "sglang"),
        gateway=True,
        gateway_replicas=REPLICAS,
        haproxy=True,
    ) as sim:
        assert isinstance(sim.gateway, HaproxyGateway)
        replicas = sim.gateway.replicas
        async with PrometheusProcess(scrape_jobs(sim.nodes), interval=1.0) as prometheus:
            gateway = Gateway(sim, replicas, haproxy.HaproxyDriver(TIMEOUT_S))
            for replica in replicas:  # checked UP long before Prometheus's first scrape ends
                await gateway.settle(replica.runtime_endpoint, all_up)
            await prometheus.wait_for("count(up == 1)", 2 * len(sim.nodes))
            document = {
                "refresh": {"interval": "1s", "timeout": "500ms"},
                "gateways": [
                    {"name": "edge", "plugin": "haproxy", "endpoints": sim.gateway.endpoints}
                ],
                "source": {
                    "plugin": "prometheus",
                    "url": prometheus.url,
                    "refresh": {"interval": "2s", "timeout": "2s"},
                    "gateway": "edge",
                    "server": "{node}",
                    "backend": "{pool}",
                },
            }
            path = tmp_path / "fleet.yaml"
            path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
            config = load_config(path)
            assert config.pools == () and config.nodes == ()
            collector = Collector(config, registry)
            audit = tmp_path / "audit.jsonl"
            try:
                actions = Actions(config, collector, AuditLog(audit))
                yield Sourced(sim, replicas, gateway.driver, collector, actions, audit)
            finally:
                await collector.aclose()


async def test_discovered_nodes_are_drained_through_the_real_gateway(sourced: Sourced) -> None:
    sim, actions = sourced.sim, sourced.actions
    endpoints = [r.runtime_endpoint for r in sourced.replicas]
    # before the first refresh the source has discovered nothing: nothing to act on
    early = actions.plan(Request("drain", "node-002"))
    assert early.refusal is not None and early.refusal.startswith("no node named 'node-002'")

    first = await sourced.refreshed()
    assert [s.banner for s in first.sources] == [None]
    assert {n.name: n.pool for n in first.nodes} == {n.name: n.pool for n in sim.nodes}
    pools = {p.name: p.nodes for p in actions.config.pools}
    assert pools == {"pool-a": ("node-001", "node-002"), "pool-b": ("node-003", "node-004")}
    assert all(n.up and n.state == "UP" for n in first.nodes), [
        (n.name, n.up, n.state, n.reasons) for n in first.nodes
    ]

    # a name Prometheus holds no series for is refused, audited, and touches nothing
    unknown = actions.plan(Request("drain", "node-005"))  # the sim has four nodes
    assert unknown.refusal is not None
    assert unknown.refusal.startswith("no node named 'node-005' (did you mean node-001")
    refused = await actions.execute(unknown)
    assert (refused.status, refused.exit_code, refused.changes) == ("refused", 1, ())
    assert refused.detail == unknown.refusal

    plan = actions.plan(Request("drain", "node-003", reason="INC-42"))
    assert plan.refusal is None and not plan.noop, plan.lines()
    assert (plan.gateway, plan.nodes, plan.pools) == ("edge", ("node-003",), ("pool-b",))
    assert sorted(plan.replicas) == sorted(endpoints)
    assert dict(plan.details) == {"backend": "pool-b", "server": "node-003", "state": "DRAIN"}
    outcome = await actions.execute(plan)
    assert (outcome.status, outcome.exit_code) == ("verified", 0), outcome.detail
    assert sorted(c.where for c in outcome.changes if c.ok) == sorted(endpoints)
    assert await sourced.states("pool-b", "node-003") == ["DRAIN"] * REPLICAS
    for other in (n for n in sim.nodes if n.name != "node-003"):
        assert await sourced.states(other.pool, other.name) == ["UP"] * REPLICAS
    drained = {n.name: n.state for n in (await sourced.refreshed()).nodes}
    assert drained == {"node-001": "UP", "node-002": "UP", "node-003": "DRAIN", "node-004": "UP"}

    back = await actions.execute(actions.plan(Request("undrain", "node-003")))
    assert (back.status, back.exit_code) == ("verified", 0), back.detail
    assert await sourced.states("pool-b", "node-003") == ["UP"] * REPLICAS
    assert all(n.state == "UP" for n in (await sourced.refreshed()).nodes)
    records = [json.loads(line) for line in sourced.audit.read_text().splitlines()]
    assert [(r["kind"], r["action"], r.get("outcome")) for r in records] == [
        ("intent", "drain", None),
        ("result", "drain", "refused"),
        ("intent", "drain", None),
        ("result", "drain", "verified"),
        ("intent", "undrain", None),
        ("result", "undrain", "verified"),
    ]
    assert records[2]["reason"] == "INC-42" and records[2]["plan"]["server"] == "node-003"
