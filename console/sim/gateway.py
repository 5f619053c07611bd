"""The sim fleet's gateway: an HTTP reverse proxy on loopback with HAProxy's runtime API.

Its topology is the one the console's HAProxy config writer uses: every pool is a backend
whose servers are the pool's nodes (`balance leastconn`); each route key has its own frontend
port whose backend the route map names (`use_backend %[str(KEY),map(MAP,DEFAULT)]`), so
`set map MAP KEY pool-b` fails that route over. Each replica has its own frontend ports,
runtime API port and state (server states, weights, map, counters: gateway_state.py), as
independent HAProxy processes do; all of them share the backends' nodes. A request is relayed
to the server least connections pick (relay.py), or answered 503 when there is none.

The modelled background flows through the gateway as well (loadflow.py): each replica carries
an equal share of each route's offered load, spread over what that replica can use, so a node
is offered what reaches it, and the stats count that traffic beside the real requests.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial

import httpx

from console.gateway import BackendState, ReplicaState
from console.httpserver import HttpServer, Request, Response
from console.sim.engine_server import EngineServer
from console.sim.gateway_state import (
    Availability,
    SimBackend,
    SimFrontend,
    SimServer,
    Traffic,
    health_check,
)
from console.sim.loadflow import LoadFlow, pool_demand
from console.sim.model import NodeModel
from console.sim.relay import NO_SERVER, relay, upstream_client
from console.sim.routing import LoadSplit
from console.sim.runtime_api import RuntimeApiServer, StatRow

ROUTE_MAP = "/etc/haproxy/route.map"
FIRST_PROXY_ID = 2  # HAProxy numbers proxies in declaration order after its own CLI proxy


class GatewayReplica:
    """One replica: frontends, runtime API and its own view of the shared backends."""

    def __init__(self, gateway: SimGateway) -> None:
        self.gateway = gateway
        clock, host = gateway.clock, gateway.host
        started = clock()
        self.maps: dict[str, dict[str, str]] = {ROUTE_MAP: dict(gateway.routes)}
        self.frontends = {
            key: SimFrontend(
                key, backend, FIRST_PROXY_ID + index, HttpServer(partial(self.forward, key), host)
            )
            for index, (key, backend) in enumerate(gateway.routes.items())
        }
        self.backends: dict[str, SimBackend] = {}
        self.servers: dict[tuple[str, str], SimServer] = {}
        first_backend = FIRST_PROXY_ID + len(self.frontends)
        for index, (backend, nodes) in enumerate(gateway.backends.items()):
            servers = [
                SimServer(
                    backend,
                    node,
                    sid,
                    gateway.models[node],
                    gateway.engines[node],
                    Availability(started),
                )
                for sid, node in enumerate(nodes, start=1)
            ]
            self.backends[backend] = SimBackend(
                backend, first_backend + index, servers, Availability(started)
            )
            self.servers.update({(backend, server.name): server for server in servers})
        self.api = RuntimeApiServer(self, host)
        self.splits: dict[str, LoadSplit] = {}  # per route key, at one request/s
        self.demand: Mapping[str, float] = {}  # per route key, requests/s, at the last count
        self.client: httpx.AsyncClient | None = None
        self._picks = 0

    @property
    def endpoint(self) -> str:
        return self.api.endpoint

    @property
    def frontend_urls(self) -> dict[str, str]:
        return {key: frontend.server.url for key, frontend in self.frontends.items()}

    async def start(self) -> None:
        self.client = upstream_client()
        for frontend in self.frontends.values():
            await frontend.server.start()
        await self.api.start()

    async def close(self) -> None:
        await self.api.close()
        for frontend in self.frontends.values():
            await frontend.server.close()
        if self.client is not None:
            await self.client.aclose()

    # -- the runtime API's view (runtime_api.Runtime) -------------------------------------

    def has_backend(self, backend: str) -> bool:
        return backend in self.backends

    def has_server(self, backend: str, server: str) -> bool:
        return (backend, server) in self.servers

    def initial_weight(self, backend: str, server: str) -> int:
        return self.servers[(backend, server)].initial_weight

    # each change is counted from now: reroute() counts the time before at the old split

    def set_state(self, backend: str, server: str, admin: str) -> None:
        self.servers[(backend, server)].admin = admin
        self.gateway.reroute()

    def set_weight(self, backend: str, server: str, weight: int) -> None:
        self.servers[(backend, server)].weight = weight
        self.gateway.reroute()

    def set_map(self, map_file: str, key: str, value: str) -> None:
        self.maps[map_file][key] = value
        self.gateway.reroute()

    def stat_rows(self) -> list[StatRow]:
        now = self.gateway.sync()
        rows = [frontend.stat_row() for frontend in self.frontends.values()]
        for backend in self.backends.values():
            rows += [server.stat_row(backend.iid, now) for server in backend.servers]
            rows.append(backend.stat_row(now))
        return rows

    # -- state and load -------------------------------------------------------------------

    def observe(self, now: float) -> None:
        """Take each node's health check and note what changed state."""
        for server in self.servers.values():
            server.check = health_check(server.node.fault)
            server.availability.observe(server.status, now)
        for backend in self.backends.values():
            backend.availability.observe(backend.status, now)

    def view(self) -> ReplicaState:
        """What a driver reading this replica would report."""
        return ReplicaState(
            endpoint=self.endpoint,
            servers={key: server.state() for key, server in self.servers.items()},
            backends={
                name: BackendState(
                    name,
                    backend.status,
                    scur=backend.traffic.in_flight,
                    qcur=0,
                    stot=backend.traffic.total,
                    hrsp_5xx=backend.traffic.errors,
                )
                for name, backend in self.backends.items()
            },
            maps={name: dict(entries) for name, entries in self.maps.items()},
        )

    def account(self, demand: Mapping[str, float], elapsed: float) -> None:
        """`elapsed` seconds of background at this replica's share of each route's
        `demand` (requests/s), split as it was last routed."""
        self.demand = demand
        for traffic in self._all_traffic():
            traffic.rate = 0.0
        for key, split in self.splits.items():
            offered, failing_total = demand[key], 0.0
            for (backend, name), share in split.servers.items():
                server = self.servers[(backend, name)]
                rate = offered * share
                failing = rate * server.node.conditions.error_rate
                server.traffic.flow(rate, failing, elapsed)
                self.backends[backend].traffic.flow(rate, failing, elapsed)
                failing_total += failing
            for backend, share in split.refused.items():
                if backend in self.backends:  # a map naming no backend refuses at the front
                    self.backends[backend].traffic.flow(offered * share, offered * share, elapsed)
                failing_total += offered * share
            self.frontends[key].traffic.flow(offered, failing_total, elapsed)

    def share_sessions(self) -> None:
        """Backends and frontends hold what their servers hold in flight (a server's part
        for a route in proportion to what that route sends it)."""
        for backend in self.backends.values():
            backend.traffic.sessions = sum(server.traffic.sessions for server in backend.servers)
        for key, split in self.splits.items():
            sessions = 0.0
            for server_key, share in split.servers.items():
                traffic = self.servers[server_key].traffic
                if traffic.rate > 0:
                    sessions += traffic.sessions * self.demand[key] * share / traffic.rate
            self.frontends[key].traffic.sessions = sessions

    def _all_traffic(self) -> list[Traffic]:
        return (
            [frontend.traffic for frontend in self.frontends.values()]
            + [backend.traffic for backend in self.backends.values()]
            + [server.traffic for server in self.servers.values()]
        )

    # -- proxying -------------------------------------------------------------------------

    def pick(self, backend: SimBackend) -> SimServer | None:
        """Least connections per weight over the usable servers; round-robin among equals."""
        usable = [server for server in backend.servers if server.usable]
        if not usable:
            return None
        chosen = min(
            usable,
            key=lambda server: ((server.traffic.in_flight + 1) / server.weight, server.last_pick),
        )
        self._picks += 1
        chosen.last_pick = self._picks
        return chosen

    async def forward(self, key: str, request: Request) -> Response:
        """Send `request` to a server of the backend the map names for the frontend's key."""
        frontend = self.frontends[key]
        backend = self.backends.get(self.maps[ROUTE_MAP].get(key, frontend.backend))
        server = None if backend is None else self.pick(backend)
        counted = [frontend.traffic]
        counted += [] if backend is None else [backend.traffic]
        counted += [] if server is None else [server.traffic]
        for traffic in counted:
            traffic.begin()
        response: Response | None = None
        try:
            if server is None:
                response = NO_SERVER
            else:
                assert self.client is not None, "the replica is not started"
                label = f"{server.backend}/{server.name}"
                response = await relay(self.client, server.engine.server.url, request, label)
            return response
        finally:
            status = None if response is None else response.status
            sent = 0 if response is None else len(response.body)
            for traffic in counted:
                traffic.end(status, len(request.body), sent)


class SimGateway:
    """A gateway of `replicas` independent replicas over the fleet's nodes.

    `backends` maps each backend to its nodes (each a server of the same name), `routes` each
    route key to the backend that serves it by default; a route's offered load is the demand
    of its default backend's nodes.
    """

    def __init__(
        self,
        name: str,
        backends: Mapping[str, Sequence[str]],
        routes: Mapping[str, str],
        models: Mapping[str, NodeModel],
        engines: Mapping[str, EngineServer],
        host: str = "127.0.0.1",
        replicas: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if replicas < 1:
            raise ValueError("a gateway needs at least one replica")
        unknown = sorted(set(routes.values()) - set(backends))
        if unknown:
            raise ValueError(f"route to unknown backend {unknown[0]!r}")
        self.name = name
        self.map_file = ROUTE_MAP
        self.backends = {backend: tuple(nodes) for backend, nodes in backends.items()}
        self.routes = dict(routes)
        self.models = models
        self.engines = engines
        self.host = host
        self.clock = clock
        self.epoch = min(models[node].epoch for nodes in backends.values() for node in nodes)
        self.flow = LoadFlow(self.backends, self.routes, ROUTE_MAP, models)
        self.replicas = [GatewayReplica(self) for _ in range(replicas)]
        self._synced = clock()
        self._in_flight_shares: dict[str, list[float]] = {}  # node -> share per replica
        self.reroute()

    @property
    def endpoints(self) -> list[str]:
        return [replica.endpoint for replica in self.replicas]

    @property
    def endpoint(self) -> str:
        return self.replicas[0].endpoint

    @property
    def frontends(self) -> dict[str, str]:
        """The first replica's frontend URL per route key."""
        return self.replicas[0].frontend_urls

    async def start(self) -> None:
        for replica in self.replicas:
            await replica.start()

    async def close(self) -> None:
        for replica in self.replicas:
            await replica.close()

    def views(self) -> list[ReplicaState]:
        self.sync()
        return [replica.view() for replica in self.replicas]

    def sync(self) -> float:
        """Count the background up to now at the current split; returns now."""
        now = self.clock()
        elapsed = max(0.0, now - self._synced)
        self._synced = now
        demand = {
            key: pool_demand(pool, now - self.epoch) / len(self.replicas)
            for key, pool in self.flow.pools.items()
        }
        for replica in self.replicas:
            replica.observe(now)
            replica.account(demand, elapsed)
        self._share_in_flight()
        return now

    def reroute(self) -> None:
        """Split each route again after a change of state, weight, map or health, and offer
        every node what now reaches it (its counters counted up to now at the old rate)."""
        self.sync()
        for replica in self.replicas:
            replica.splits = self.flow.splits(replica.view())
        self.flow.offer([replica.splits for replica in self.replicas])
        self.sync()

    def _share_in_flight(self) -> None:
        """Give each replica's servers their part of their node's background in flight: the
        part of its intake that replica sends (the last known when nothing reaches it now,
        for what is still in flight finishes there)."""
        for key in self.replicas[0].servers:
            servers = [replica.servers[key] for replica in self.replicas]
            node = servers[0].node
            node.advance()
            rates = [server.traffic.rate for server in servers]
            if sum(rates) > 0:
                self._in_flight_shares[node.name] = [rate / sum(rates) for rate in rates]
            shares = self._in_flight_shares.get(node.name, [0.0] * len(servers))
            running = node.pins.get("running", node.conditions.running)
            for server, share in zip(servers, shares, strict=True):
                server.traffic.sessions = running * share
        for replica in self.replicas:
            replica.share_sessions()
