"""What one replica of the sim's gateway holds for each frontend, backend and server.

Each replica keeps its own records, as independent HAProxy processes do: a server's admin
state, weight, last health check and traffic; a backend's and a frontend's traffic; when each
last changed status. Every record renders its row of `show stat` and, for servers, the
`console.gateway.ServerState` a driver would read. Health checks are read off the nodes'
faults: an engine that refuses, hangs, answers 500 or answers slower than the check timeout
is DOWN.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from console.gateway import ServerState
from console.httpserver import HttpServer
from console.sim.engine_server import EngineServer
from console.sim.faults import Fault
from console.sim.model import NodeModel
from console.sim.runtime_api import BACKEND, FRONTEND, SERVER, StatRow

CHECK_TIMEOUT_S = 1.0  # an engine slower than this to answer its health check is DOWN


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
