"""The embedded default: a simulated fleet on loopback, watched live, with a scripted incident.

The fleet sits behind a gateway of two replicas, the sim's own or real `haproxy` processes; a
fleet.yaml naming it lets `fleetdeck drain|failover ...` act on it from another shell. The
incident is driven through the sim's control API, exactly as a drill would drive it: a bad
deploy raises one node's error rate, a traffic spike grows another's queue, and a GPU falls off
the bus on a third. Each step is printed when it happens, so a newcomer sees what to look for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from console.sim import SimFleet
from console.sim.haproxy import find_haproxy

CONTROL_TIMEOUT = 5.0
GPUS = 8
GATEWAY_REPLICAS = 2


@dataclass(frozen=True)
class Step:
    at: float  # seconds after the start
    node: int  # index into the sim's nodes
    change: dict[str, Any]  # body of PUT /sim/nodes/NAME
    says: str  # what an operator would notice


INCIDENT = (  # on primary pools (pool-a, pool-c), which carry the traffic
    Step(
        20,
        0,
        {"fault": "bad_deploy"},
        "bad deploy on {node}: errors up; roll back: b, or fleetdeck rollback {node}",
    ),
    Step(40, 2, {"waiting": 180, "running": 8}, "traffic spike on {node}: its queue grows"),
    Step(
        60,
        4,
        {"fault": {"kind": "xid", "gpu": 3}},
        "{node}: GPU 3 fell off the bus; drain: d, or fleetdeck drain {node}",
    ),
    Step(130, 2, {"waiting": None, "running": None}, "spike on {node} is over"),
)


def demo_fleet(nodes: int, seed: int, haproxy: bool = False) -> SimFleet:
    """The demo's fleet, not started: with `haproxy`, its gateway is real haproxy processes
    (FleetdeckError at once when haproxy is not installed)."""
    if haproxy:
        find_haproxy()
    return SimFleet(
        nodes=nodes,
        seed=seed,
        gpus=GPUS,
        gateway=True,
        gateway_replicas=GATEWAY_REPLICAS,
        haproxy=haproxy,
    )


async def run_incident(
    control_url: str,
    node_names: Sequence[str],
    say: Callable[[str], None],
    steps: Sequence[Step] = INCIDENT,
) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with httpx.AsyncClient(base_url=control_url, timeout=CONTROL_TIMEOUT) as client:
        for step in steps:
            if step.node >= len(node_names):
                continue
            await asyncio.sleep(max(0.0, started + step.at - loop.time()))
            name = node_names[step.node]
            response = await client.put(f"/sim/nodes/{name}", json=step.change)
            if response.status_code != 200:
                say(f"incident step for {name} refused: HTTP {response.status_code}")
                continue
            say(step.says.format(node=name))
