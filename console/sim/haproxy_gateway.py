"""The sim fleet's gateway served by real HAProxy processes instead of the sim's own.

The topology is the sim gateway's (gateway.py): every pool a backend whose servers are named
like its nodes, one frontend per route key picking its backend through the route map, here
`route.map` (see haproxy.py). The nodes' modelled load follows what the replicas really
report: about twice a second every replica is read through the haproxy plugin's driver, the
console's own `GatewayWatch` keeping each replica's last good read, and the views go through
the same load flow as the sim gateway's (loadflow.py). Drain a node on the real HAProxy and
its modelled traffic stops; fail a route over and the standby's queues grow.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence

from console.fleet import GatewayConfig, Refresh
from console.gateways import GatewayWatch
from console.plugin import load_registry
from console.sim.engine_server import EngineServer
from console.sim.haproxy import (
    MAP_NAME,
    BackendSpec,
    FrontendSpec,
    HaproxyProcess,
    ServerSpec,
)
from console.sim.loadflow import LoadFlow, RouteSplits
from console.sim.model import NodeModel

PLUGIN = "haproxy"
FOLLOW_S = 0.5  # how often the replicas are read
READ_TIMEOUT_S = 1.0  # the driver's bound on one read of one replica


class HaproxyGateway:
    """A gateway of `replicas` HAProxy processes over the fleet's nodes, started once the
    nodes' engines listen; the same arguments as `SimGateway`."""

    map_file = MAP_NAME

    def __init__(
        self,
        name: str,
        backends: Mapping[str, Sequence[str]],
        routes: Mapping[str, str],
        models: Mapping[str, NodeModel],
        engines: Mapping[str, EngineServer],
        replicas: int = 1,
    ) -> None:
        if replicas < 1:
            raise ValueError("a gateway needs at least one replica")
        self.name = name
        self.backends = {backend: tuple(nodes) for backend, nodes in backends.items()}
        self.routes = dict(routes)
        self.engines = engines
        self.replica_count = replicas
        self.flow = LoadFlow(self.backends, self.routes, MAP_NAME, models)
        self.replicas: list[HaproxyProcess] = []
        self.watch: GatewayWatch | None = None
        self._splits: list[RouteSplits] = []  # what the nodes were last offered by
        self._wake = asyncio.Event()
        self._follower: asyncio.Task[None] | None = None

    @property
    def endpoints(self) -> list[str]:
        return [replica.runtime_endpoint for replica in self.replicas]

    @property
    def endpoint(self) -> str:
        return self.replicas[0].runtime_endpoint

    @property
    def frontends(self) -> dict[str, str]:
        """The first replica's frontend URL per route key."""
        return {key: self.replicas[0].frontend_url(key) for key in self.routes}

    async def start(self) -> None:
        """Start the replicas over the engines' ports, offer the nodes what they route, and
        keep following them."""
        servers = {
            backend: tuple(
                ServerSpec(node, self.engines[node].server.host, self.engines[node].server.port)
                for node in nodes
            )
            for backend, nodes in self.backends.items()
        }
        specs = tuple(BackendSpec(backend, each) for backend, each in servers.items())
        frontends = tuple(FrontendSpec(key, backend) for key, backend in self.routes.items())
        try:
            for _ in range(self.replica_count):
                self.replicas.append(HaproxyProcess(specs, frontends))
                await self.replicas[-1].start()
            config = GatewayConfig(
                self.name, PLUGIN, tuple(self.endpoints), Refresh(FOLLOW_S, READ_TIMEOUT_S)
            )
            self.watch = GatewayWatch(config, load_registry().gateway(config), (MAP_NAME,))
            await self.follow_once()
        except BaseException:
            await self.close()
            raise
        self._follower = asyncio.create_task(self._follow())

    async def close(self) -> None:
        follower, self._follower = self._follower, None
        if follower is not None:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower
        for replica in self.replicas:
            await replica.stop()
        self.replicas = []

    def reroute(self) -> None:
        """A node changed: HAProxy's own checks will see it, so read the replicas again now
        rather than at the next turn."""
        self._wake.set()

    async def follow_once(self) -> None:
        """Read every replica and offer each node what they now route to it (a replica that
        does not answer counts as it last answered)."""
        assert self.watch is not None, "the gateway has not been started"
        await self.watch.read()
        views = [read.state for read in self.watch.replicas.values() if read.state is not None]
        splits: list[RouteSplits] = [self.flow.splits(view) for view in views]
        if views and splits != self._splits:
            self.flow.offer(splits)
            self._splits = splits

    async def _follow(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), FOLLOW_S)
            self._wake.clear()
            await self.follow_once()
