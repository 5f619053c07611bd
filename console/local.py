"""This host alone, read in-process: `fleetdeck` with no config and no subcommand.

The same telemetry code the node agent serves (NVML and psutil) is read directly, with no
server: a transport answers the collector's `GET /v1/snapshot` from an in-process `Telemetry`,
so the host goes through exactly the path every agent of a fleet does and shows as a one-node
fleet.
"""

from __future__ import annotations

import asyncio
import json
import socket

import httpx

from console.agent.telemetry import Telemetry
from console.fleet import FleetConfig, NodeConfig, Refresh, single_node_fleet

POOL = "local"


class LocalTransport(httpx.AsyncBaseTransport):
    """Answers every request with this host's agent snapshot, swept in a worker thread."""

    def __init__(self, telemetry: Telemetry) -> None:
        self._telemetry = telemetry

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        snapshot = await asyncio.to_thread(self._telemetry.snapshot)
        return httpx.Response(200, content=json.dumps(snapshot).encode(), request=request)

    async def aclose(self) -> None:
        await asyncio.to_thread(self._telemetry.close)


def local_fleet(interval: float, node: str | None = None) -> FleetConfig:
    name = node or socket.gethostname().split(".")[0] or "localhost"
    return single_node_fleet(
        NodeConfig(
            name=name,
            pool=POOL,
            engine="auto",
            url=None,
            metrics_url=None,
            agent=f"local://{name}",
            dcgm=None,
            server=None,
            refresh=Refresh(interval=interval, timeout=min(interval, 5.0)),
        )
    )
