"""A simulated fleet behind real HAProxy replicas, a fleet.yaml naming them, and the real
`fleetdeck` command line acting on it.

Pools: pool-a (node-001, node-002; routed by key pool-a, standby pool-b, min_healthy 1) and
pool-b (node-003, node-004), one backend each, servers named like the nodes.
"""

from __future__ import annotations

import asyncio
import json
import shlex
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import yaml

from console.builtin import haproxy
from console.gateway import ReplicaState
from console.sim import SimFleet
from console.sim.haproxy import (
    MAP_NAME,
    FrontendSpec,
    HaproxyProcess,
    Timing,
    backends_for,
)
from tests.gateway.conftest import _haproxy_installed  # noqa: F401  (autouse: skip or fail)
from tests.integration.conftest import Run, fleetdeck

SCHEMAS = Path(__file__).resolve().parents[2] / "console" / "schemas"
FAST = Timing(connect_s=0.2, server_s=10.0, check_interval_s=0.1)
COMPLETION = {"prompt": "ping", "max_tokens": 1}
SETTLE_S = 5.0


@dataclass
class Edge:
    fleet: SimFleet
    replicas: list[HaproxyProcess]
    config: Path
    audit: Path
    driver: haproxy.HaproxyDriver

    @property
    def endpoints(self) -> list[str]:
        return [r.runtime_endpoint for r in self.replicas]

    async def run(self, *args: str, limit: float = 60.0) -> Run:
        return await fleetdeck(
            *args[:1],
            "-c",
            str(self.config),
            "--audit-log",
            str(self.audit),
            *args[1:],
            limit=limit,
        )

    async def read(self, replica: int = 0) -> ReplicaState:
        return await self.driver.read(self.replicas[replica].runtime_endpoint, (MAP_NAME,))

    async def states(self, server: str, backend: str = "pool-a") -> list[str]:
        return [
            (await self.read(i)).servers[(backend, server)].state for i in range(len(self.replicas))
        ]

    async def settle(self, ready: Callable[[ReplicaState], bool], replica: int = 0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SETTLE_S
        while not ready(await self.read(replica)):
            if loop.time() > deadline:
                pytest.fail(f"replica {replica} did not settle within {SETTLE_S:g} s")
            await asyncio.sleep(0.05)

    async def served_by(self, count: int, key: str = "pool-a", replica: int = 0) -> list[str]:
        """The nodes that answered `count` completions sent through a frontend."""
        url = self.replicas[replica].frontend_url(key) + "/v1/completions"
        nodes = []
        async with httpx.AsyncClient(timeout=5.0) as client:
            for _ in range(count):
                response = await client.post(url, json=COMPLETION)
                assert response.status_code == 200, response.text
                nodes.append(response.json()["id"].removeprefix("cmpl-").rsplit("-", 1)[0])
        return nodes


async def run_printed(command: str) -> Run:
    """A command fleetdeck printed (retry, revert, re-apply, forget), run as it is pasted."""
    program, *words = shlex.split(command)
    assert program == "fleetdeck" and words[-1] == "--yes", command
    return await fleetdeck(*words)


def valid(document: dict[str, Any], schema: str) -> dict[str, Any]:
    """`document`, once checked against console/schemas/SCHEMA.schema.json."""
    jsonschema.validate(document, json.loads((SCHEMAS / f"{schema}.schema.json").read_text()))
    return document


def all_up(state: ReplicaState) -> bool:
    return bool(state.servers) and all(s.status == "UP" for s in state.servers.values())


def fleet_yaml(fleet: SimFleet, endpoints: list[str], **pool_a: Any) -> dict[str, Any]:
    def nodes(pool: str) -> list[dict[str, str]]:
        return [
            {"name": n.name, "engine": n.engine, "url": n.url, "agent": n.agent, "server": n.name}
            for n in fleet.nodes
            if n.pool == pool
        ]

    return {
        "refresh": {"interval": "1s", "timeout": "500ms"},
        # a one-second preflight window makes the sim's TTFT p95 noisy: these tests are about
        # the gateway, so latency alone must not refuse a failover
        "alerts": {"ttft_p95_s": {"warn": "30s", "crit": "60s"}},
        "gateways": [{"name": "edge", "plugin": "haproxy", "endpoints": endpoints}],
        "pools": [
            {
                "name": "pool-a",
                "gateway": "edge",
                "backend": "pool-a",
                "route": {"map": MAP_NAME, "key": "pool-a"},
                "standby": "pool-b",
                "min_healthy": 1,
                **pool_a,
                "nodes": nodes("pool-a"),
            },
            {"name": "pool-b", "gateway": "edge", "backend": "pool-b", "nodes": nodes("pool-b")},
        ],
    }


async def start_edge(
    tmp_path: Path, replicas: int = 2, engines: tuple[str, ...] = ("vllm",), **pool_a: Any
) -> tuple[SimFleet, list[HaproxyProcess], Edge]:
    fleet = SimFleet(nodes=4, seed=3, gpus=1, pools=2, engines=engines)
    await fleet.start()
    backends = backends_for(fleet.nodes)
    frontends = (FrontendSpec("pool-a", "pool-a"), FrontendSpec("pool-b", "pool-b"))
    processes = [HaproxyProcess(backends, frontends, timing=FAST) for _ in range(replicas)]
    for process in processes:
        await process.start()
    config = tmp_path / "fleet.yaml"
    document = fleet_yaml(fleet, [p.runtime_endpoint for p in processes], **pool_a)
    config.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    edge = Edge(fleet, processes, config, tmp_path / "audit.jsonl", haproxy.HaproxyDriver(1.0))
    for index in range(replicas):
        await edge.settle(all_up, index)
    return fleet, processes, edge


@pytest.fixture
async def edge(tmp_path: Path) -> AsyncIterator[Edge]:
    fleet, processes, running = await start_edge(tmp_path)
    try:
        yield running
    finally:
        for process in processes:
            await process.stop()
        await fleet.stop()
