"""Reading the fleet's gateways: every replica through its plugin's driver, then one view.

A `GatewayWatch` reads all replicas of one gateway concurrently (each read bounded by the
gateway's timeout) and keeps the last good read of each. `gateway_view` turns the watches into
what a snapshot shows: each gateway's status (replicas up, backends, 5xx rate), each node's
server state, each pool's route, and the disagreements between replicas, which are warnings:
a server DRAIN on one replica and UP on another takes traffic on one of them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from console.errors import FleetdeckError, GatewayError
from console.fleet import FleetConfig, GatewayConfig, PoolConfig
from console.gateway import BackendState, GatewayDriver, ReplicaState
from console.model import BackendFigures, GatewayStatus, ReplicaHealth, Severity
from console.plugin import Registry
from console.rules import Verdict

log = logging.getLogger("fleetdeck.gateways")

# the state shown when replicas disagree: the one that takes the node furthest out of service
_STATE_ORDER = ("UP", "DRAIN", "DOWN", "MAINT")


@dataclass
class ReplicaRead:
    endpoint: str
    state: ReplicaState | None = None
    error: str | None = "not read yet"
    last_ok: float | None = None  # monotonic time of the last good read
    previous: tuple[float, ReplicaState] | None = None  # the read before, for 5xx rates

    @property
    def up(self) -> bool:
        return self.error is None and self.state is not None


@dataclass(eq=False)
class GatewayWatch:
    """One gateway's replicas and what they last answered."""

    config: GatewayConfig
    driver: GatewayDriver | None
    maps: tuple[str, ...]  # the route map files its pools name
    error: str | None = None  # why there is no driver
    # node name -> (backend, server), for every node behind it: the topology, fixed by config
    servers: tuple[tuple[str, tuple[str, str]], ...] = ()
    pools: tuple[PoolConfig, ...] = ()
    clock: Callable[[], float] = time.monotonic
    next_due: float = 0.0
    replicas: dict[str, ReplicaRead] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.replicas = {e: ReplicaRead(e) for e in self.config.endpoints}

    @classmethod
    def of(
        cls,
        fleet: FleetConfig,
        gateway: GatewayConfig,
        driver: GatewayDriver | None,
        error: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> GatewayWatch:
        """A watch of `gateway` with its pools, maps and servers worked out once, not per read."""
        watch = cls(gateway, driver, (), error, clock=clock)
        watch.follow(fleet)
        return watch

    def follow(self, fleet: FleetConfig) -> None:
        """Take the fleet's topology behind this gateway (a fleet source discovered nodes)."""
        nodes = {n.name: n for n in fleet.nodes}
        pools = tuple(p for p in fleet.pools if p.gateway == self.config.name)
        self.servers = tuple(
            (name, (pool.backend or "", nodes[name].server or name))
            for pool in pools
            for name in pool.nodes
        )
        self.pools = pools
        self.maps = tuple(dict.fromkeys(p.route.map for p in pools if p.route))

    async def read(self) -> None:
        """Read every replica at once; a dead one costs its own timeout, nothing more."""
        self.next_due = self.clock() + self.config.refresh.interval
        if self.driver is not None:
            await asyncio.gather(*(self._read(r) for r in self.replicas.values()))

    async def _read(self, replica: ReplicaRead) -> None:
        assert self.driver is not None
        # the driver bounds its exchange; this bound holds even for a driver that does not
        limit = self.config.refresh.timeout * 2
        try:
            state = await asyncio.wait_for(self.driver.read(replica.endpoint, self.maps), limit)
        except GatewayError as exc:
            self._failed(replica, exc.reason)
        except TimeoutError:
            self._failed(replica, f"timeout after {limit:g} s")
        except Exception as exc:  # a plugin's bug costs this replica, never the loop
            log.exception("read of gateway %s replica %s failed", self.config.name, replica)
            self._failed(replica, f"internal error: {exc!r}")
        else:
            now = self.clock()
            if replica.state is not None and replica.last_ok is not None:
                replica.previous = (replica.last_ok, replica.state)
            replica.state, replica.error, replica.last_ok = state, None, now

    def _failed(self, replica: ReplicaRead, error: str) -> None:
        if replica.error != error:
            log.info("gateway %s replica %s: %s", self.config.name, replica.endpoint, error)
        replica.error = error
        replica.previous = None  # a rate must not span the outage


def gateway_watches(
    config: FleetConfig, registry: Registry, clock: Callable[[], float] = time.monotonic
) -> list[GatewayWatch]:
    watches = []
    for gateway in config.gateways:
        try:
            driver: GatewayDriver | None = registry.gateway(gateway)
            error = None
        except FleetdeckError as exc:
            driver, error = None, str(exc)
        watches.append(GatewayWatch.of(config, gateway, driver, error, clock))
    return watches


# --- the view ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Observed:
    """What a gateway's fresh replicas say about one thing: the agreed value, or None."""

    value: str | None
    by_replica: Mapping[str, str]  # endpoint -> value, for the replicas that reported it

    @property
    def disagreement(self) -> str | None:
        if len(set(self.by_replica.values())) < 2:
            return None
        return ", ".join(f"{v} on {e}" for e, v in sorted(self.by_replica.items()))


@dataclass(frozen=True, slots=True)
class GatewayView:
    statuses: tuple[GatewayStatus, ...]
    servers: Mapping[str, Observed]  # node name -> its server's canonical state
    routes: Mapping[str, Observed]  # pool name -> the backend its route names


def _observed(values: Mapping[str, str]) -> Observed:
    distinct = set(values.values())
    if len(distinct) == 1:
        return Observed(distinct.pop(), values)
    worst = max(distinct, key=_STATE_ORDER.index) if distinct <= set(_STATE_ORDER) else None
    return Observed(worst, values)


def _fresh(watch: GatewayWatch, now: float, stale_after: float) -> dict[str, ReplicaState]:
    limit = stale_after * watch.config.refresh.interval
    return {
        r.endpoint: r.state
        for r in watch.replicas.values()
        if r.up and r.state is not None and r.last_ok is not None and now - r.last_ok <= limit
    }


def _backend_figures(
    watch: GatewayWatch, names: Iterable[str], fresh: Mapping[str, ReplicaState]
) -> tuple[BackendFigures, ...]:
    figures = []
    for name in names:
        rows = [s.backends[name] for s in fresh.values() if name in s.backends]
        statuses = {row.status for row in rows}
        known = []
        for replica in watch.replicas.values():
            if replica.endpoint not in fresh or replica.previous is None:
                continue
            then, before = replica.previous
            rate = _rate(
                before.backends.get(name),
                fresh[replica.endpoint].backends.get(name),
                (replica.last_ok or then) - then,
            )
            if rate is not None:
                known.append(rate)
        figures.append(
            BackendFigures(
                name=name,
                status=statuses.pop() if len(statuses) == 1 else ("MIXED" if statuses else None),
                scur=_sum(row.scur for row in rows),
                qcur=_sum(row.qcur for row in rows),
                errors_5xx_per_s=sum(known) if known else None,
            )
        )
    return tuple(figures)


def _rate(before: BackendState | None, after: BackendState | None, seconds: float) -> float | None:
    old = None if before is None else before.hrsp_5xx
    new = None if after is None else after.hrsp_5xx
    if old is None or new is None or seconds <= 0:
        return None
    return max(0, new - old) / seconds  # a reload resets counters: no negative rates


def _sum(values: Iterable[int | None]) -> int | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def gateway_view(watches: Sequence[GatewayWatch], now: float, stale_after: float) -> GatewayView:
    statuses, servers, routes = [], {}, {}
    for watch in watches:
        gateway = watch.config
        fresh = _fresh(watch, now, stale_after)
        verdict = Verdict()
        replicas = tuple(
            ReplicaHealth(
                endpoint=r.endpoint,
                up=r.endpoint in fresh,
                age_s=None if r.last_ok is None else now - r.last_ok,
                error=None if r.endpoint in fresh else (r.error or "stale"),
            )
            for r in watch.replicas.values()
        )
        if watch.error is not None:
            verdict.raise_to(Severity.UNKNOWN, watch.error)
        elif not fresh:
            verdict.raise_to(Severity.CRIT, "no replica answers")
        for replica in replicas:
            if not replica.up and watch.error is None:
                verdict.raise_to(Severity.WARN, f"replica {replica.endpoint}: {replica.error}")
        for name, key in watch.servers:
            values = {e: s.servers[key].state for e, s in fresh.items() if key in s.servers}
            missing = [e for e, s in fresh.items() if key not in s.servers]
            if missing:
                verdict.raise_to(
                    Severity.WARN, f"no server {key[0]}/{key[1]} on {', '.join(missing)}"
                )
            if values:
                servers[name] = _observed(values)
                if (split := servers[name].disagreement) is not None:
                    verdict.raise_to(Severity.WARN, f"{name}: replicas disagree: {split}")
        for pool in watch.pools:
            if pool.route is not None:
                entries = {
                    e: s.maps[pool.route.map][pool.route.key]
                    for e, s in fresh.items()
                    if pool.route.key in s.maps.get(pool.route.map, {})
                }
                if entries:
                    routes[pool.name] = _observed(entries)
                    if (split := routes[pool.name].disagreement) is not None:
                        verdict.raise_to(Severity.WARN, f"route of {pool.name}: {split}")
                elif fresh:
                    verdict.raise_to(
                        Severity.WARN, f"route of {pool.name}: no key {pool.route.key} in map"
                    )
        backends = dict.fromkeys(p.backend for p in watch.pools if p.backend)
        statuses.append(
            GatewayStatus(
                name=gateway.name,
                replicas_up=None if watch.driver is None else len(fresh),
                replicas_total=len(gateway.endpoints),
                severity=verdict.severity,
                reasons=tuple(verdict.reasons),
                replicas=replicas,
                backends=_backend_figures(watch, backends, fresh),
            )
        )
    return GatewayView(tuple(statuses), servers, routes)
