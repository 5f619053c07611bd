"""A simulated fleet on loopback, and a way to run the real `fleetdeck` command against it."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from console.sim import SimFleet

SCHEMA = Path(__file__).resolve().parents[2] / "console" / "schemas" / "status.schema.json"


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    seconds: float

    def json(self) -> dict[str, Any]:
        return json.loads(self.stdout)


async def fleetdeck(*args: str, limit: float = 60.0) -> Run:
    """Run the real command line in a child process (the sim keeps serving meanwhile)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    env = dict(os.environ, XDG_STATE_HOME=os.environ.get("XDG_STATE_HOME", "/tmp"))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "console",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), limit)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return Run(process.returncode, out.decode(), err.decode(), loop.time() - started)


def write_fleet(fleet: SimFleet, path: Path, *, interval: str = "2s", timeout: str = "1s") -> Path:
    """A fleet.yaml for the sim's nodes, one pool per engine kind."""
    pools: dict[str, list[dict[str, str]]] = {}
    for node in fleet.nodes:
        pools.setdefault(node.engine, []).append(
            {"name": node.name, "engine": node.engine, "url": node.url, "agent": node.agent}
        )
    config = {
        "refresh": {"interval": interval, "timeout": timeout},
        "pools": [{"name": f"pool-{kind}", "nodes": nodes} for kind, nodes in pools.items()],
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


class Control:
    """The sim's control API."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def pin(self, name: str, **pins: Any) -> None:
        response = await self.client.put(f"/sim/nodes/{name}", json=pins)
        assert response.status_code == 200, response.text

    async def fault(self, name: str, fault: Any) -> None:
        await self.pin(name, fault=fault)

    async def restart(self, name: str) -> None:
        response = await self.client.post(f"/sim/nodes/{name}/restart")
        assert response.status_code == 200, response.text

    async def truth(self) -> dict[str, dict[str, Any]]:
        response = await self.client.get("/sim/nodes")
        return {node["name"]: node for node in response.json()["nodes"]}


@pytest.fixture
async def sim_factory() -> AsyncIterator[Any]:
    started: list[SimFleet] = []

    async def start(
        nodes: int,
        engines: Sequence[str] = ("vllm", "sglang", "tgi", "triton"),
        gpus: int = 2,
        static: bool = False,
    ) -> SimFleet:
        fleet = SimFleet(nodes=nodes, seed=7, engines=engines, gpus=gpus, static=static)
        await fleet.start()
        started.append(fleet)
        return fleet

    yield start
    for fleet in started:
        await fleet.stop()


@pytest.fixture
async def control_factory() -> AsyncIterator[Any]:
    clients: list[httpx.AsyncClient] = []

    def make(fleet: SimFleet) -> Control:
        client = httpx.AsyncClient(base_url=fleet.control_url, timeout=5.0)
        clients.append(client)
        return Control(client)

    yield make
    for client in clients:
        await client.aclose()
