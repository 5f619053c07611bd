"""`fleetdeck demo --haproxy`: the demo's fleet behind real HAProxy replicas, its modelled load
following what they report while `fleetdeck drain` and `failover` act on them from another
process.

The demo's fleet of 8 nodes: pool-a (node-001, node-005) routed, its standby pool-b
(node-002, node-006); pool-c (node-003, node-007) routed, its standby pool-d.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from console.builtin import haproxy
from console.demo import demo_fleet
from console.sim import SimFleet
from console.sim.haproxy import MAP_NAME
from console.sim.haproxy_gateway import HaproxyGateway
from console.sim.loadflow import Intake
from tests.integration.conftest import Run, fleetdeck

BOUND_S = 5.0  # no wait here lasts longer
WATCH_S = 1.0  # how long a counter is watched to see it move or not
Nodes = dict[str, dict[str, Any]]


@dataclass
class Demo:
    fleet: SimFleet
    gateway: HaproxyGateway
    config: Path
    audit: Path
    control: httpx.AsyncClient

    async def run(self, action: str, *args: str) -> Run:
        return await fleetdeck(
            action, "-c", str(self.config), "--audit-log", str(self.audit), *args, limit=BOUND_S * 4
        )

    async def nodes(self) -> Nodes:
        """Every node's ground truth, read through the sim's control API."""
        answer = await self.control.get("/sim/nodes")
        answer.raise_for_status()
        return {node["name"]: node for node in answer.json()["nodes"]}

    async def until(self, ready: Callable[[Nodes], bool], what: str) -> Nodes:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + BOUND_S
        while not ready(nodes := await self.nodes()):
            if loop.time() > deadline:
                pytest.fail(f"{what}: not within {BOUND_S:g} s")
            await asyncio.sleep(0.1)
        return nodes


@pytest.fixture
async def demo(tmp_path: Path) -> AsyncIterator[Demo]:
    async with demo_fleet(nodes=8, seed=0, haproxy=True) as fleet:
        assert isinstance(fleet.gateway, HaproxyGateway)
        config = tmp_path / "fleet.yaml"
        config.write_text(fleet.config_yaml(), encoding="utf-8")
        async with httpx.AsyncClient(base_url=fleet.control_url, timeout=BOUND_S) as control:
            yield Demo(fleet, fleet.gateway, config, tmp_path / "audit.jsonl", control)


def total(nodes: Nodes, name: str) -> float:
    return float(nodes[name]["requests_total"])


def in_flight(nodes: Nodes, *names: str) -> float:
    return sum(nodes[name]["running"] + nodes[name]["waiting"] for name in names)


async def test_the_config_names_the_haproxy_replicas_and_their_route_map(demo: Demo) -> None:
    text = demo.config.read_text()
    assert f'"map": "{MAP_NAME}", "key": "pool-a"' in text and "standby: pool-b" in text
    driver = haproxy.HaproxyDriver(1.0)
    for endpoint in demo.gateway.endpoints:
        assert endpoint in text
        state = await driver.read(endpoint, (MAP_NAME,))
        assert state.maps == {MAP_NAME: {"pool-a": "pool-a", "pool-c": "pool-c"}}
        assert {server for _, server in state.servers} == {n.name for n in demo.fleet.nodes}


async def test_drain_stops_a_nodes_traffic_and_failover_fills_the_standby(demo: Demo) -> None:
    before = await demo.nodes()
    assert before["node-001"]["requests_per_s"] > 0 and before["node-002"]["requests_per_s"] == 0

    drained = await demo.run("drain", "node-001", "--yes", "--reason", "test")
    assert drained.code == 0, drained.stdout + drained.stderr
    stopped = await demo.until(
        lambda nodes: nodes["node-001"]["requests_per_s"] == 0, "node-001's traffic to stop"
    )
    await asyncio.sleep(WATCH_S)
    later = await demo.nodes()
    assert total(later, "node-001") == total(stopped, "node-001")
    for other in ("node-005", "node-003"):  # its pool's other node and another pool's
        assert total(later, other) > total(stopped, other)
    assert later["node-005"]["requests_per_s"] > before["node-005"]["requests_per_s"]

    failed_over = await demo.run("failover", "pool-a", "--yes", "--reason", "test")
    assert failed_over.code == 0, failed_over.stdout + failed_over.stderr
    moved = await demo.until(
        lambda nodes: nodes["node-002"]["requests_per_s"] > 0, "pool-a's load to reach pool-b"
    )
    assert moved["node-005"]["requests_per_s"] == 0
    assert in_flight(before, "node-002", "node-006") == 0
    await demo.until(
        lambda nodes: (
            in_flight(nodes, "node-002", "node-006") > in_flight(moved, "node-002", "node-006") + 5
        ),
        "pool-b's running and waiting to grow",
    )


async def test_a_replica_that_stops_answering_keeps_routing_as_it_last_did(demo: Demo) -> None:
    first, second = demo.gateway.replicas
    driver = haproxy.HaproxyDriver(1.0)
    await driver.set_server_state(first.runtime_endpoint, "pool-a", "node-001", "DRAIN")
    await demo.gateway.follow_once()
    half = demo.fleet.models["node-001"].demand
    assert isinstance(half, Intake)
    ((share, pool),) = half.shares  # a half of pool-a's demand through the second replica
    assert share == pytest.approx(0.25) and {node.name for node in pool} == {"node-001", "node-005"}

    await second.kill()
    await demo.gateway.follow_once()
    assert demo.fleet.models["node-001"].demand == half


async def test_the_demo_command_runs_behind_haproxy() -> None:
    run = await fleetdeck(
        "demo", "--haproxy", "--nodes", "4", "--count", "2", "--interval", "500ms", "--no-incident"
    )
    assert run.code == 0, run.stderr
    assert "nodes up 4/4" in run.stdout and "gateway edge: 2/2 replicas" in run.stdout
    assert "behind real haproxy" in run.stdout
