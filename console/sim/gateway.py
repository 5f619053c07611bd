"""The sim fleet's gateway: an HTTP reverse proxy on loopback with HAProxy's runtime API.

Its topology is the one the console's HAProxy config writer uses: every pool is a backend
whose servers are the pool's nodes (`balance leastconn`); each route key has its own frontend
port whose backend the route map names (`use_backend %[str(KEY),map(MAP,DEFAULT)]`), so
`set map MAP KEY pool-b` fails that route over. Each replica has its own frontend ports,
runtime API port and state (server states, weights, map, counters), as independent HAProxy
processes do; all of them share the backends' nodes.

Health checks are read off the nodes' faults: an engine that refuses, hangs, answers 500 or
answers slower than the check timeout is DOWN. The modelled background flows through the
gateway as well: each replica carries an equal share of each route's offered load (the demand
of the route's own pool), spread by `routing.split_load` over what that replica can use, so a
node is offered what reaches it, and the stats count that traffic beside the real requests.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial

import httpx

from console.fleet import Route
from console.gateway import BackendState, ReplicaState, ServerState
from console.httpserver import HttpServer, Request, Response
from console.sim.engine_server import EngineServer
from console.sim.faults import Fault
from console.sim.model import NodeModel
from console.sim.routing import LoadSplit, Offer, split_load
from console.sim.runtime_api import BACKEND, FRONTEND, SERVER, RuntimeApiServer, StatRow
from console.sim.traffic import own_demand

log = logging.getLogger("fleetdeck.sim.gateway")

ROUTE_MAP = "/etc/haproxy/route.map"
CHECK_TIMEOUT_S = 1.0  # an engine slower than this to answer its health check is DOWN
UPSTREAM_TIMEOUT = httpx.Timeout(30.0, connect=1.0)  # HAProxy's `timeout server`, `connect`
FIRST_PROXY_ID = 2  # HAProxy numbers proxies in declaration order after its own CLI proxy
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding"}
    | {"upgrade", "host", "content-length", "content-type"}
)
NO_SERVER = Response(  # what HAProxy 2.6 answers when no server can take a request
    503,
    b"<html><body><h1>503 Service Unavailable</h1>\n"
    b"No server is available to handle this request.\n</body></html>\n",
    "text/html",
    (("Cache-Control", "no-cache"),),
)
SERVER_TIMEOUT = Response(
    504,
    b"<html><body><h1>504 Gateway Time-out</h1>\n"
    b"The server didn't respond in time.\n</body></html>\n",
    "text/html",
    (("Cache-Control", "no-cache"),),
)


@dataclass(frozen=True, slots=True)
class Check:
    """What a health check finds, in the words of HAProxy's stats."""

    ok: bool
    status: str  # check_status
    code: int | None  # check_code
    description: str  # check_desc
    detail: str = ""  # last_chk
    duration_ms: int = 1


CHECK_PASSED = Check(True, "L7OK", 200, "Layer7 check passed")


def health_check(fault: Fault | None) -> Check:
    """The check of an engine with this fault (`GET /health`, as the real config checks)."""
    kind = None if fault is None else fault.kind
    if kind == "refuse":
        return Check(False, "L4CON", None, "Layer4 connection problem", "Connection refused", 0)
    slow_s = (fault.seconds or 0.0) if fault is not None and kind == "slow" else 0.0
    if kind == "hang" or slow_s >= CHECK_TIMEOUT_S:
        return Check(False, "L7TOUT", None, "Layer7 timeout", "", int(CHECK_TIMEOUT_S * 1000))
    if kind == "http500":
        return Check(False, "L7STS", 500, "Layer7 wrong status", "Internal Server Error")
    if slow_s:
        return Check(True, "L7OK", 200, "Layer7 check passed", "", int(slow_s * 1000))
    return CHECK_PASSED


@dataclass(slots=True)
class Traffic:
    """Requests through one frontend, backend or server of one replica: the real ones it
    proxied and the modelled background."""

    scur: int = 0  # real requests in flight
    stot: int = 0
    smax: int = 0
    responses: list[int] = field(default_factory=lambda: [0] * 6)  # 1xx..5xx, other
    bytes_in: int = 0
    bytes_out: int = 0
    modelled: float = 0.0  # background requests so far
    modelled_5xx: float = 0.0
    rate: float = 0.0  # background requests/s now
    sessions: float = 0.0  # background requests in flight now

    @property
    def in_flight(self) -> int:
        return self.scur + round(self.sessions)

    @property
    def total(self) -> int:
        return self.stot + int(self.modelled)

    @property
    def errors(self) -> int:
        return self.responses[4] + int(self.modelled_5xx)

    def begin(self) -> None:
        self.scur += 1
        self.stot += 1
        self.smax = max(self.smax, self.in_flight)

    def end(self, status: int | None, bytes_in: int, bytes_out: int) -> None:
        """One real request done; `status` None when the client left before the answer."""
        self.scur -= 1
        self.bytes_in += bytes_in
        self.bytes_out += bytes_out
        if status is not None:
            self.responses[status // 100 - 1 if 100 <= status < 600 else 5] += 1

    def flow(self, rate: float, failing: float, elapsed: float) -> None:
        """`elapsed` seconds of background at `rate` requests/s, `failing` of them 5xx."""
        self.rate += rate
        self.modelled += rate * elapsed
        self.modelled_5xx += failing * elapsed

    def figures(self) -> dict[str, object]:
        """The stats columns every kind of row fills from its traffic."""
        successes = int(self.modelled - self.modelled_5xx)
        return {
            "scur": self.in_flight,
            "smax": max(self.smax, self.in_flight),
            "stot": self.total,
            "bin": self.bytes_in,
            "bout": self.bytes_out,
            "rate": round(self.rate),
            "hrsp_1xx": self.responses[0],
            "hrsp_2xx": self.responses[1] + successes,
            "hrsp_3xx": self.responses[2],
            "hrsp_4xx": self.responses[3],
            "hrsp_5xx": self.errors,
            "hrsp_other": self.responses[5],
            "req_tot": self.total,
        }


DOWN_WORDS = ("DOWN", "MAINT")  # out of service, for HAProxy's chkdown and downtime


@dataclass(slots=True)
class Availability:
    """When a server or backend last changed status, and how long it has been out."""

    changed_at: float
    status: str = "UP"
    downs: int = 0
    down_s: float = 0.0

    @property
    def down(self) -> bool:
        return self.status in DOWN_WORDS

    def observe(self, status: str, now: float) -> None:
        if status == self.status:
            return
        if self.down and status not in DOWN_WORDS:
            self.down_s += now - self.changed_at
        elif not self.down and status in DOWN_WORDS:
            self.downs += 1
        self.status, self.changed_at = status, now

    def figures(self, now: float) -> dict[str, object]:
        down_s = self.down_s + (now - self.changed_at if self.down else 0.0)
        return {
            "chkdown": self.downs,
            "lastchg": int(now - self.changed_at),
            "downtime": int(down_s),
        }


@dataclass(eq=False, slots=True)
class SimServer:
    """One server of a backend in one replica: a node, its admin state, weight and traffic."""

    backend: str
    name: str
    sid: int
    node: NodeModel
    engine: EngineServer
    availability: Availability
    admin: str = "ready"  # ready, drain or maint, as `set server ... state` takes them
    weight: int = 1
    initial_weight: int = 1
    traffic: Traffic = field(default_factory=Traffic)
    check: Check = CHECK_PASSED
    last_pick: int = 0

    @property
    def status(self) -> str:
        """HAProxy's status word (here always a canonical state too)."""
        if self.admin == "maint":
            return "MAINT"
        if not self.check.ok:
            return "DOWN"
        return "DRAIN" if self.admin == "drain" else "UP"

    @property
    def usable(self) -> bool:
        return self.status == "UP" and self.weight > 0

    @property
    def addr(self) -> str:
        return f"{self.engine.server.host}:{self.engine.server.port}"

    def stat_row(self, iid: int, now: float) -> StatRow:
        check = self.check
        checking = self.admin != "maint"  # HAProxy shows no check in maintenance
        values = {
            **self.traffic.figures(),
            **self.availability.figures(now),
            "qcur": 0,
            "status": self.status,
            "weight": self.weight,
            "uweight": self.weight,
            "chkfail": self.availability.downs,
            "lbtot": self.traffic.total,
            "addr": self.addr,
            "check_status": check.status if checking else None,
            "check_code": check.code if checking else None,
            "check_duration": check.duration_ms if checking else None,
            "last_chk": check.detail if checking else None,
            "check_desc": check.description if checking else None,
            "check_rise": 2 if checking else None,
            "check_fall": 3 if checking else None,
            "check_health": (4 if check.ok else 0) if checking else None,
        }
        return StatRow(self.backend, self.name, SERVER, iid, self.sid, values)

    def state(self) -> ServerState:
        return ServerState(
            backend=self.backend,
            server=self.name,
            state=self.status,
            status=self.status,
            weight=self.weight,
            scur=self.traffic.in_flight,
            qcur=0,
            stot=self.traffic.total,
            hrsp_5xx=self.traffic.errors,
            check_status=self.check.status if self.admin != "maint" else None,
        )


@dataclass(eq=False, slots=True)
class SimBackend:
    name: str
    iid: int
    servers: list[SimServer]
    availability: Availability
    traffic: Traffic = field(default_factory=Traffic)

    @property
    def status(self) -> str:
        return "UP" if any(server.usable for server in self.servers) else "DOWN"

    def stat_row(self, now: float) -> StatRow:
        usable = [server for server in self.servers if server.usable]
        weight = sum(server.weight for server in usable)
        values = {
            **self.traffic.figures(),
            **self.availability.figures(now),
            "qcur": 0,
            "status": self.status,
            "weight": weight,
            "uweight": weight,
            "act": len(usable),
            "lbtot": sum(server.traffic.total for server in self.servers),
        }
        return StatRow(self.name, "BACKEND", BACKEND, self.iid, 0, values)


@dataclass(eq=False, slots=True)
class SimFrontend:
    key: str  # the route key it looks up in the map
    backend: str  # the map's default: the route's own backend
    iid: int
    server: HttpServer
    traffic: Traffic = field(default_factory=Traffic)

    @property
    def name(self) -> str:
        return f"route-{self.key}"

    def stat_row(self) -> StatRow:
        values = {**self.traffic.figures(), "req_rate": round(self.traffic.rate)}
        values["conn_tot"] = values["stot"]
        return StatRow(self.name, "FRONTEND", FRONTEND, self.iid, 0, values)


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
        self.client = httpx.AsyncClient(timeout=UPSTREAM_TIMEOUT, trust_env=False)
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
            response = NO_SERVER if server is None else await self._relay(server, request)
            return response
        finally:
            status = None if response is None else response.status
            sent = 0 if response is None else len(response.body)
            for traffic in counted:
                traffic.end(status, len(request.body), sent)

    async def _relay(self, server: SimServer, request: Request) -> Response:
        assert self.client is not None, "the replica is not started"
        target = server.engine.server.url + request.path
        if request.query:
            target += "?" + request.query
        headers = [
            (name, value) for name, value in request.headers.items() if name not in HOP_BY_HOP
        ]
        try:
            answer = await self.client.request(
                request.method, target, content=request.body, headers=headers
            )
        except httpx.TimeoutException:
            return SERVER_TIMEOUT
        except httpx.TransportError as exc:  # HAProxy answers 503 when it cannot reach one
            log.info("%s/%s: %s", server.backend, server.name, exc)
            return NO_SERVER
        return Response(
            answer.status_code,
            answer.content,
            answer.headers.get("content-type", "application/octet-stream"),
            tuple(
                (name, value) for name, value in answer.headers.items() if name not in HOP_BY_HOP
            ),
        )


@dataclass(frozen=True, slots=True)
class Intake:
    """The requests/s offered to a node at t: its shares of routes' demands."""

    shares: tuple[tuple[float, tuple[NodeModel, ...]], ...]  # (share, the route's pool)

    def __call__(self, t: float) -> float:
        return sum(share * pool_demand(pool, t) for share, pool in self.shares)


def pool_demand(pool: Sequence[NodeModel], t: float) -> float:
    """What a pool's clients send at t: the sum of its nodes' own demand."""
    return sum(own_demand(node.profile, node.shape, t) for node in pool)


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
        self.pools = {
            key: tuple(models[node] for node in self.backends[backend])
            for key, backend in self.routes.items()
        }
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
            for key, pool in self.pools.items()
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
        offers = {
            key: [Offer(Route(ROUTE_MAP, key), backend, 1.0)]
            for key, backend in self.routes.items()
        }
        shares: dict[str, dict[str, float]] = {
            node: {} for nodes in self.backends.values() for node in nodes
        }
        for replica in self.replicas:
            replica.splits = {
                key: split_load(replica.view(), offer) for key, offer in offers.items()
            }
            for key, split in replica.splits.items():
                for (backend, server), share in split.servers.items():
                    node = replica.servers[(backend, server)].node.name
                    shares[node][key] = shares[node].get(key, 0.0) + share / len(self.replicas)
        for node, by_route in shares.items():
            intake = tuple((share, self.pools[key]) for key, share in by_route.items())
            self.models[node].set_demand(Intake(intake))
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
