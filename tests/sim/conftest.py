"""A small simulated fleet on loopback and clients for its three kinds of port."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from console.sim import SimFleet
from console.sim.engines import ENGINE_KINDS

TIMEOUT = httpx.Timeout(5.0)


@pytest.fixture
async def fleet() -> AsyncIterator[SimFleet]:
    """Four nodes, one of each engine kind, two GPUs each."""
    async with SimFleet(nodes=4, seed=3, gpus=2) as running:
        yield running


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=TIMEOUT) as http:
        yield http


@pytest.fixture
def control(fleet: SimFleet, client: httpx.AsyncClient) -> Any:
    """Calls on the control API: `await control("PUT", "node-001", json={...})`."""

    async def call(method: str, node: str = "", suffix: str = "", **kwargs: Any) -> Any:
        path = "/sim/nodes" + (f"/{node}" if node else "") + suffix
        return await client.request(method, fleet.control_url + path, **kwargs)

    return call


@pytest.fixture(scope="session")
def read_page() -> Any:
    """Reads an engine page through the project's own parser and mapping files, as the
    collector does: `read_page(kind, text) -> EngineSample`."""
    from pathlib import Path

    from console.mapping import load_mapping_file
    from console.promtext import parse

    folder = Path(__file__).resolve().parents[2] / "plugins" / "engines"
    mappings = {kind: load_mapping_file(folder / f"{kind}.yaml") for kind in ENGINE_KINDS}

    def read(kind: str, text: str) -> Any:
        page = parse(text)
        assert not page.issues, page.issues[:3]
        reading = mappings[kind].apply(page)
        assert reading.engine is not None
        return reading.engine

    return read
