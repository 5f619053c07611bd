"""The async polling loop: every target of the fleet scraped on its own interval and timeout.

Each node has up to three targets: its engine page (`engine`), its node agent (`agent`) and a
dcgm-exporter page (`gpu`). Each target owns one lean keep-alive connection
(`console.transport`), so the cost of a scrape does not grow with the fleet. A tick launches
the due targets concurrently under a concurrency cap, and the next tick starts only once they
have all ended, so no target is ever scraped twice at once; a failing target backs off
exponentially with jitter. Every scrape is bounded by its timeout, so a slow or hanging target
holds up no other target's scrape, and a tick at most by that timeout. After each tick's
scrapes end the collector publishes an immutable Snapshot to its subscribers and records the
figures into the history rings.

A fleet read through a query service (`source:` in fleet.yaml) is refreshed in the same ticks
by a `SourceWatch`: its nodes join the listed ones (`fleet`), its figures join the targets'.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field

import httpx

from console.errors import FleetdeckError, SourceError
from console.fleet import FleetConfig, NodeConfig
from console.fleetsource import SourceWatch, merged_fleet, same_members
from console.gateways import GatewayWatch, gateway_view, gateway_watches
from console.gcpolicy import settle_garbage_collector
from console.history import History
from console.model import EngineFigures, EngineSample, Histogram, Reading, Snapshot
from console.overlay import AuditOverlay
from console.plugin import Registry, Source
from console.rules import engine_window
from console.snapshot import build_snapshot
from console.transport import ScrapeTransport, describe

log = logging.getLogger("fleetdeck.collector")

ROLES = ("engine", "agent", "gpu")
MAX_BACKOFF_INTERVALS = 8  # a failing target is retried at least this often (in intervals)
MAX_CONCURRENCY = 512


@dataclass(eq=False)
class Target:
    """One URL scraped for one node, and what the last scrapes of it gave."""

    node: NodeConfig
    role: str
    url: str
    source: Source | None  # None when the source could not be built (error says why)
    interval: float
    timeout: float
    transport: httpx.AsyncBaseTransport = field(default_factory=ScrapeTransport)
    request: httpx.Request | None = None
    reading: Reading | None = None
    error: str | None = None
    last_ok: float | None = None  # monotonic time of the last good scrape
    scrape_ms: float | None = None
    failures: int = 0  # in a row, for the backoff
    successes: int = 0  # since start, for benchmarks and the flight recorder
    failures_total: int = 0
    next_due: float = 0.0
    # (monotonic time, engine figures) of recent good scrapes, for rates over the window
    recent: deque[tuple[float, EngineSample]] = field(default_factory=deque)

    warning = None  # a scraped target is up or down, never partly

    @property
    def up(self) -> bool:
        return self.error is None and self.last_ok is not None

    def window(self) -> tuple[EngineFigures, Histogram | None]:
        samples = self.recent
        if not samples:
            return EngineFigures(), None
        return engine_window(samples[0] if len(samples) > 1 else None, samples[-1])


def _targets_for(node: NodeConfig, registry: Registry) -> list[Target]:
    urls = {"engine": node.engine_metrics_url, "gpu": node.dcgm, "agent": node.agent}
    source_names = {"engine": "engine", "gpu": "dcgm", "agent": "agent"}
    targets = []
    for role in ROLES:
        url = urls[role]
        if url is None:
            continue
        if role == "agent":
            url = url + "/v1/snapshot"
        target = Target(node, role, url, None, node.refresh.interval, node.refresh.timeout)
        try:
            target.source = registry.source(source_names[role], node, url)
        except FleetdeckError as exc:
            target.error = str(exc)
        headers = {"accept": "text/plain, application/json;q=0.9", "user-agent": "fleetdeck"}
        if role == "agent" and node.token is not None:
            try:
                headers["authorization"] = f"Bearer {node.token.resolve()}"
            except FleetdeckError as exc:
                target.error, target.source = str(exc), None
        # the transport bounds the whole exchange by the read timeout (connect included)
        limit = target.timeout
        timeouts = {"connect": limit, "read": limit, "write": limit, "pool": limit}
        target.request = httpx.Request(
            "GET", url, headers=headers, extensions={"timeout": timeouts}
        )
        targets.append(target)
    return targets


class Collector:
    def __init__(
        self,
        config: FleetConfig,
        registry: Registry,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        rate_window: float | None = None,
        history: History | None = None,
        seed: int | None = None,
        concurrency: int = MAX_CONCURRENCY,
        transport: Callable[[], httpx.AsyncBaseTransport] | None = None,
        overlay: AuditOverlay | None = None,
    ) -> None:
        self.config = config
        self.fleet = config  # the listed fleet and what the source discovered
        self.clock = clock
        self.wall = wall
        self.targets = [t for node in config.nodes for t in _targets_for(node, registry)]
        self.gateways: list[GatewayWatch] = gateway_watches(config, registry, clock)
        self.source = (
            None if config.source is None else SourceWatch(config.source, registry, clock, wall)
        )
        self.overlay = overlay
        if transport is not None:  # e.g. the local host read in-process, with no server
            for target in self.targets:
                target.transport = transport()
        intervals = [t.interval for t in self.targets]
        if self.source is not None:
            intervals.append(self.source.config.refresh.interval)
        self.tick = min(intervals, default=config.refresh.interval)
        self.rate_window = rate_window or max(3 * config.refresh.interval, 10.0)
        self.history = history
        self.cycle_times: deque[float] = deque(maxlen=1024)  # seconds per tick, for benchmarks
        self._random = random.Random(seed)
        self._concurrency = concurrency
        self._subscribers: list[asyncio.Queue[Snapshot]] = []
        self._wake = asyncio.Event()  # set by refresh_now(): the loop's next tick comes at once

    # --- scraping -------------------------------------------------------------------------

    async def _scrape(self, target: Target) -> None:
        started = self.clock()
        target.next_due = started + target.interval
        try:
            assert target.request is not None
            body = await _fetch(target.transport, target.request)
            reading = target.source.decode(body) if target.source else None
        except SourceError as exc:
            self._failed(target, str(exc))
        except (TimeoutError, httpx.TimeoutException):
            self._failed(target, f"timeout after {target.timeout:g} s")
        except httpx.HTTPError as exc:
            self._failed(target, describe(exc))
        except Exception as exc:  # a plugin's bug must cost one target, never the loop
            log.exception("scrape of %s failed", target.url)
            self._failed(target, f"internal error: {exc!r}")
        else:
            if reading is not None:
                self._succeeded(target, reading)
        finally:
            target.scrape_ms = (self.clock() - started) * 1000.0

    def _succeeded(self, target: Target, reading: Reading) -> None:
        now = self.clock()
        target.reading, target.error, target.last_ok, target.failures = reading, None, now, 0
        target.successes += 1
        engine = reading.engine
        if engine is None:  # GPUs and host figures need no history here: no rates of them
            return
        recent = target.recent
        # rates need only the window's two ends: keep samples a quarter window apart (the
        # newest replacing its predecessor until then), a handful per target at any interval
        if len(recent) >= 2 and now - recent[-2][0] < self.rate_window / 4:
            recent[-1] = (now, engine)
        else:
            recent.append((now, engine))
        # keep one sample older than the window, so the window is always spanned
        while len(recent) > 2 and now - recent[1][0] >= self.rate_window:
            recent.popleft()

    def _failed(self, target: Target, error: str) -> None:
        now = self.clock()
        target.error = error
        target.failures += 1
        target.failures_total += 1
        backoff = min(2 ** (target.failures - 1), MAX_BACKOFF_INTERVALS) * target.interval
        target.next_due = now + backoff * self._random.uniform(0.8, 1.2)
        if target.failures == 1:
            log.info("%s %s: %s", target.node.name, target.role, error)

    # --- rounds and the loop ----------------------------------------------------------------

    async def scrape_all(self) -> None:
        """One round over every target and gateway, due or not (for `status`)."""
        await self._round(
            [t for t in self.targets if t.source is not None], self.gateways, self.source
        )

    async def scrape_again(self) -> None:
        """Another round over the targets that answered the last one, and the gateways."""
        await self._round([t for t in self.targets if t.up], self.gateways, self.source)

    def refresh_now(self) -> None:
        """Make every target and gateway due, and wake the running loop to read them now."""
        for target in self.targets:
            target.next_due = 0.0
        for watch in self.gateways:
            watch.next_due = 0.0
        if self.source is not None:
            self.source.next_due = 0.0
        self._wake.set()

    async def read_gateways(self) -> None:
        """Every gateway's replicas now (actions read the gateways again before verifying)."""
        await asyncio.gather(*(watch.read() for watch in self.gateways))

    async def _round(
        self, due: list[Target], gateways: list[GatewayWatch], source: SourceWatch | None = None
    ) -> None:
        started = self.clock()
        # a worker per free slot, each scraping the next target not yet taken: no task per
        # scrape, and none parked waiting for a slot
        pending = iter(due)
        workers = min(len(due), self._concurrency)
        await asyncio.gather(
            *(self._work(pending) for _ in range(workers)),
            *(w.read() for w in gateways),
            *([] if source is None else [self._refresh_source(source)]),
        )
        self.cycle_times.append(self.clock() - started)

    async def _refresh_source(self, source: SourceWatch) -> None:
        await source.read()
        fleet = merged_fleet(self.config, source.reading)
        if not same_members(fleet, self.fleet):
            self.fleet = fleet
            for watch in self.gateways:
                watch.follow(fleet)

    async def _work(self, pending: Iterator[Target]) -> None:
        for target in pending:
            await self._scrape(target)

    def current(self) -> Snapshot:
        """The fleet as the collector last read it, recorded nowhere (actions re-plan on it)."""
        now = self.clock()
        wall = self.wall()
        stale_after = self.config.alerts.stale_after
        view = gateway_view(self.gateways, now, stale_after)
        acks, drift = (
            ({}, ())
            if self.overlay is None
            else (self.overlay.acks(wall), self.overlay.drift(view))
        )
        source = self.source
        if source is None:
            return build_snapshot(self.fleet, self.targets, now, wall, view, acks, drift)
        reading = source.reading
        return build_snapshot(
            self.fleet,
            [*self.targets, *source.targets(self.fleet)],
            now,
            wall,
            view,
            acks,
            drift,
            (source.status(now, stale_after),),
            None if reading is None else reading.pool_ttft_p95_s,
        )

    def build(self) -> Snapshot:
        """The current snapshot, recorded into the history rings."""
        snapshot = self.current()
        if self.history is not None:
            self.history.record(snapshot)
        return snapshot

    def publish(self) -> Snapshot:
        snapshot = self.build()
        for queue in self._subscribers:
            if queue.full():  # a slow reader gets the newest snapshot, not a backlog
                queue.get_nowait()
            queue.put_nowait(snapshot)
        return snapshot

    async def run(self) -> None:
        """Tick forever: launch due targets, publish when the tick's scrapes have ended."""
        next_tick = self.clock()
        settled = False
        while True:
            # half a tick of slack: a target due "now" must not miss its tick by a rounding
            horizon = self.clock() + self.tick / 2
            due = [t for t in self.targets if t.source is not None and t.next_due <= horizon]
            source = self.source
            if source is not None and source.next_due > horizon:
                source = None
            await self._round(due, [w for w in self.gateways if w.next_due <= horizon], source)
            self.publish()
            if not settled:  # what the first round built lives as long as the loop
                settle_garbage_collector()
                settled = True
            next_tick += self.tick
            delay = next_tick - self.clock()
            if delay < 0:  # fell behind: skip the missed ticks rather than bunching them
                next_tick = self.clock()
                delay = 0
            try:
                await asyncio.wait_for(self._wake.wait(), delay)
            except TimeoutError:
                continue
            self._wake.clear()
            next_tick = self.clock()

    async def snapshots(self) -> AsyncIterator[Snapshot]:
        """Run the loop and yield each published snapshot (newest only, if the reader lags)."""
        queue: asyncio.Queue[Snapshot] = asyncio.Queue(maxsize=1)
        self._subscribers.append(queue)
        runner = asyncio.create_task(self.run())
        getter: asyncio.Future[Snapshot] | None = None
        try:
            while True:
                getter = asyncio.ensure_future(queue.get())
                await asyncio.wait({getter, runner}, return_when=asyncio.FIRST_COMPLETED)
                if runner.done():
                    runner.result()  # re-raise what stopped the loop
                    return
                yield getter.result()
        finally:
            self._subscribers.remove(queue)
            for task in (runner, getter):
                if task is not None:
                    task.cancel()
            await asyncio.gather(runner, return_exceptions=True)

    async def aclose(self) -> None:
        await asyncio.gather(*(t.transport.aclose() for t in self.targets))
        if self.source is not None:
            await self.source.aclose()


async def _fetch(transport: httpx.AsyncBaseTransport, request: httpx.Request) -> bytes:
    """A page's body; SourceError for any answer but 200."""
    if isinstance(transport, ScrapeTransport):  # the scrape path: no httpx.Response to build
        head, body = await transport.fetch(request)
        status, reason = head.status, head.reason
    else:
        response = await transport.handle_async_request(request)
        status, reason, body = response.status_code, response.reason_phrase, response.content
    if status != 200:
        raise SourceError(f"HTTP {status} {reason}".rstrip())
    return body
