"""Reading a fleet through a query service (`source:` in fleet.yaml): the requests, the
discovered fleet, and each node's figures in the shape the snapshot reads.

A `SourceWatch` sends its plugin's few requests at once, all bounded by the source's timeout,
and keeps the last good reading. While the service is down or slow, that reading stays and
ages: nodes turn stale, the source's status carries the reason, and nothing waits for it.

`merged_fleet` is the fleet the console shows and acts on: the nodes and pools listed in the
file, plus those the source discovered from its labels (when `discover` is on), each mapped to
its gateway server and agent by the source's templates. `SourcedTarget` is one node's share of
a reading, read by `console.snapshot` like a scraped target: its age is that of the node's
newest sample, its `up` that of the source's own scrapes of the node.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial

import httpx

from console.errors import FleetdeckError, SourceError
from console.fleet import Alerts, FleetConfig, NodeConfig, PoolConfig, SourceConfig
from console.model import (
    EngineFigures,
    FleetReading,
    Histogram,
    NodeFigures,
    Reading,
    SourceStatus,
)
from console.plugin import FleetSource, Registry
from console.transport import describe

log = logging.getLogger("fleetdeck.source")

UNPOOLED = "unpooled"  # the pool of discovered nodes whose series name none
ROLE = "source"


@dataclass(eq=False, slots=True)
class SourcedTarget:
    """One node's figures from the fleet source, shaped like a scraped target."""

    node: NodeConfig
    url: str
    interval: float
    reading: Reading | None
    figures: EngineFigures | None
    last_ok: float | None  # monotonic time of the node's newest sample
    error: str | None
    warning: str | None = None  # some of the node's targets fail at the source
    scrape_ms: float | None = None
    role: str = ROLE

    @property
    def up(self) -> bool:
        return self.error is None and self.last_ok is not None

    def window(self) -> tuple[EngineFigures, Histogram | None]:
        return self.figures or EngineFigures(), None


class SourceWatch:
    """One fleet source and what it last answered."""

    def __init__(
        self,
        config: SourceConfig,
        registry: Registry,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.clock = clock
        self.wall = wall
        self.source: FleetSource | None = None
        self.error: str | None = "not read yet"
        try:
            self.source = registry.fleet_source(config)
        except FleetdeckError as exc:
            self.error = str(exc)
        self.reading: FleetReading | None = None
        self.read_at: float | None = None  # monotonic time of the reading
        self.last_ok: float | None = None
        self.refresh_ms: float | None = None  # the last refresh's, failed or not
        self.reading_ms: float | None = None  # the one that gave the reading shown
        self.next_due = 0.0
        self.refreshes = 0  # good ones, for benchmarks
        self._client: httpx.AsyncClient | None = None
        # (the reading, fleet and error they were made from, the targets)
        self._targets: tuple[tuple[object, ...], list[SourcedTarget]] | None = None

    @property
    def name(self) -> str:
        return self.config.plugin

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            headers = {"user-agent": "fleetdeck"}
            if self.config.token is not None:
                headers["authorization"] = f"Bearer {self.config.token.resolve()}"
            limit = self.config.refresh.timeout
            self._client = httpx.AsyncClient(
                base_url=self.config.url, headers=headers, timeout=httpx.Timeout(limit)
            )
        return self._client

    async def read(self) -> None:
        """Every request at once; the whole refresh bounded by the source's timeout."""
        started = self.clock()
        self.next_due = started + self.config.refresh.interval
        if self.source is None:
            return
        at = self.wall()
        decoder = self.source.decoder(at)
        try:
            async with asyncio.timeout(self.config.refresh.timeout):
                client = self._http()
                await asyncio.gather(
                    *(
                        self._post(client, path, body, partial(decoder.feed, index))
                        for index, (path, body) in enumerate(self.source.requests(at))
                    )
                )
            reading = decoder.finish()
        except TimeoutError:
            self._failed(f"no answer within {self.config.refresh.timeout:g} s")
        except httpx.HTTPError as exc:
            self._failed(describe(exc))
        except (SourceError, FleetdeckError) as exc:
            self._failed(str(exc))
        except Exception as exc:  # a plugin's bug must cost the refresh, never the loop
            log.exception("refresh of %s failed", self.config.url)
            self._failed(f"internal error: {exc!r}")
        else:
            now = self.clock()
            self.reading, self.read_at, self.last_ok, self.error = reading, now, now, None
            self.refreshes += 1
            self.reading_ms = (now - started) * 1000.0
        finally:
            self.refresh_ms = (self.clock() - started) * 1000.0

    @staticmethod
    async def _post(
        client: httpx.AsyncClient, path: str, body: bytes, answered: Callable[[int, bytes], None]
    ) -> None:
        """Send one request; its answer is decoded as soon as it is in."""
        headers = {"content-type": "application/x-www-form-urlencoded"}
        response = await client.post(path, content=body, headers=headers)
        answered(response.status_code, response.content)

    def _failed(self, error: str) -> None:
        if error != self.error:
            log.warning("source %s: %s", self.config.url, error)
        self.error = error

    def status(self, now: float, stale_after: float) -> SourceStatus:
        age = None if self.last_ok is None else now - self.last_ok
        reading = self.reading
        return SourceStatus(
            name=self.name,
            url=self.config.url,
            up=self.error is None,
            stale=age is None or age > stale_after * self.config.refresh.interval,
            age_s=age,
            refresh_ms=self.refresh_ms,
            error=self.error,
            warnings=() if reading is None else reading.warnings,
            nodes=0 if reading is None else len(reading.nodes),
        )

    def targets(self, fleet: FleetConfig) -> list[SourcedTarget]:
        """Each node's share of the last reading (nodes the source does not know included),
        made once per reading: every snapshot and every plan between refreshes reads it."""
        key = (self.reading, fleet, self.error)
        made = self._targets
        if made is None or any(a is not b for a, b in zip(key, made[0], strict=True)):
            made = self._targets = (key, self._made(fleet))
        return made[1]

    def _made(self, fleet: FleetConfig) -> list[SourcedTarget]:
        reading, read_at = self.reading, self.read_at
        taken = set(self.config.figures)
        interval = self.config.refresh.interval
        where = f"{self.config.url} {self.config.labels.node}="
        targets = []
        for node in fleet.nodes:
            url = f'{where}"{node.name}"'
            figures = None if reading is None else reading.nodes.get(node.name)
            if reading is None or read_at is None:
                error = self.error or "not read yet"
                targets.append(SourcedTarget(node, url, interval, None, None, None, error))
            elif figures is None:
                error = f"not in {self.name}'s answer (no series with {url.split(' ', 1)[1]})"
                targets.append(SourcedTarget(node, url, interval, None, None, None, error))
            else:
                targets.append(self._target(node, url, interval, figures, reading, read_at, taken))
        return targets

    def _target(
        self,
        node: NodeConfig,
        url: str,
        interval: float,
        figures: NodeFigures,
        reading: FleetReading,
        read_at: float,
        taken: set[str],
    ) -> SourcedTarget:
        sampled = figures.sample_time if figures.sample_time is not None else reading.time
        last_ok = read_at - max(0.0, reading.time - sampled)
        error = warning = None
        failing = ", ".join(figures.down)
        if figures.up is False:
            error = f"{self.name} cannot scrape it ({failing})"
        elif failing:
            warning = f"{self.name} cannot scrape {failing}"
        values = Reading(
            gpus=figures.gpus if "gpus" in taken else None,
            host=figures.host if "host" in taken else None,
            engine_kind=figures.engine_kind,
        )
        engine = figures.engine if "engine" in taken else None
        return SourcedTarget(
            node, url, interval, values, engine, last_ok, error, warning, self.reading_ms
        )

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()


def merged_fleet(listed: FleetConfig, reading: FleetReading | None) -> FleetConfig:
    """The listed fleet plus the nodes and pools the source discovered (none without
    `discover`, or before its first reading); listed entries win over discovered ones."""
    source = listed.source
    if source is None or not source.discover or reading is None:
        return listed
    known = {node.name for node in listed.nodes}
    pools = {pool.name: pool for pool in listed.pools}
    gateways = {gateway.name for gateway in listed.gateways}
    added: dict[str, list[NodeConfig]] = {}
    for name in sorted(reading.nodes.keys() - known):
        figures = reading.nodes[name]
        pool_name = figures.pool or UNPOOLED
        pool = pools.get(pool_name)
        gateway = pool.gateway if pool is not None else _gateway(figures, source, gateways)
        added.setdefault(pool_name, []).append(
            NodeConfig(
                name=name,
                pool=pool_name,
                engine=figures.engine_kind or "auto",
                url=None,
                metrics_url=None,
                agent=_fill(source.agent, name, pool_name),
                dcgm=None,
                server=None if gateway is None else _fill(source.server, name, pool_name),
                refresh=source.refresh,
            )
        )
        if pool is None:
            pools[pool_name] = _discovered_pool(pool_name, gateway, source, listed.alerts)
    if not added:
        return listed
    # listed pools in the file's order, then the discovered ones by name
    discovered = sorted(pools.keys() - {pool.name for pool in listed.pools})
    merged_pools = tuple(
        replace(pool, nodes=pool.nodes + tuple(n.name for n in added.get(pool.name, ())))
        for pool in [*listed.pools, *(pools[name] for name in discovered)]
    )
    nodes = listed.nodes + tuple(node for group in added.values() for node in group)
    return replace(listed, pools=merged_pools, nodes=nodes)


def _gateway(figures: NodeFigures, source: SourceConfig, gateways: set[str]) -> str | None:
    if figures.gateway is not None and figures.gateway in gateways:
        return figures.gateway
    return source.gateway


def _discovered_pool(
    name: str, gateway: str | None, source: SourceConfig, alerts: Alerts
) -> PoolConfig:
    return PoolConfig(
        name=name,
        model=None,
        gateway=gateway,
        backend=None if gateway is None else _fill(source.backend, None, name),
        route=None,
        standby=None,
        min_healthy=0,
        nodes=(),
        alerts=alerts,
    )


def _fill(template: str | None, node: str | None, pool: str) -> str | None:
    if template is None:
        return None
    return template.replace("{node}", node or "").replace("{pool}", pool)


def same_members(a: FleetConfig, b: FleetConfig) -> bool:
    """Whether two fleets hold the same nodes in the same pools (no re-planning needed)."""
    return [(n.name, n.pool) for n in a.nodes] == [(n.name, n.pool) for n in b.nodes]
