"""Simulated nodes behind two real HAProxy replicas, and the driver that reads and changes them.

The tests need `haproxy` (Debian's package; `scripts/test` installs it). Without it they are
skipped, except where the `CI` variable is set: there a missing HAProxy fails them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest

from console.builtin import haproxy
from console.gateway import ReplicaState
from console.sim import SimFleet
from console.sim.haproxy import (
    MAP_NAME,
    FrontendSpec,
    HaproxyProcess,
    Timing,
    backends_for,
    find_haproxy,
)
from tests.installed import require

MAPS = (MAP_NAME,)
TIMEOUT_S = 1.0  # the driver's bound on one exchange
SETTLE_S = 3.0  # how long a test waits for HAProxy's checks to show a change
FAST = Timing(connect_s=0.2, server_s=3.0, check_interval_s=0.1)


@pytest.fixture(autouse=True)
def _haproxy_installed() -> None:
    require(find_haproxy, "gateway")


@dataclass
class Gateway:
    """Two replicas of one gateway over pools pool-a (node-001, node-002) and pool-b
    (node-003, node-004), one routed key per pool."""

    fleet: SimFleet
    replicas: list[HaproxyProcess]
    driver: haproxy.HaproxyDriver

    async def settle(
        self,
        endpoint: str,
        ready: Callable[[ReplicaState], bool],
        limit: float = SETTLE_S,
    ) -> ReplicaState:
        """The replica's state once `ready` holds; fails after `limit` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        while True:
            state = await self.driver.read(endpoint, MAPS)
            if ready(state):
                return state
            if loop.time() > deadline:
                shown = {f"{b}/{s}": v.status for (b, s), v in state.servers.items()}
                pytest.fail(f"{endpoint} did not settle within {limit:g} s: {shown}")
            await asyncio.sleep(0.05)


def all_up(state: ReplicaState) -> bool:
    """Every server checked and UP (not "UP 1/2", still waiting for its first check)."""
    return bool(state.servers) and all(s.status == "UP" for s in state.servers.values())


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    async with SimFleet(nodes=4, seed=5, gpus=1, pools=2) as fleet:
        backends = backends_for(fleet.nodes)
        frontends = (FrontendSpec("pool-a", "pool-a"), FrontendSpec("pool-b", "pool-b"))
        replicas = [
            HaproxyProcess(backends, frontends, timing=FAST, unix_socket=True, user_socket=True),
            HaproxyProcess(backends, frontends, timing=FAST),
        ]
        try:
            for replica in replicas:
                await replica.start()
            running = Gateway(fleet, replicas, haproxy.HaproxyDriver(TIMEOUT_S))
            for replica in replicas:
                await running.settle(replica.runtime_endpoint, all_up)
            yield running
        finally:
            for replica in replicas:
                await replica.stop()
