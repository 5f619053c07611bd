"""The canonical vocabulary: what every source maps onto and every view reads.

Units everywhere: percentages 0-100 (`util`, `cpu`), fractions 0..1 (`kv_cache_usage`,
`error_rate`), bytes, seconds, watts, degrees Celsius. Unknown is None, never 0.

Two layers live here:
- raw readings, one per scrape of one target (`Reading` and its parts): counters are still
  cumulative totals, exactly as the target reported them;
- derived statuses (`NodeStatus`, `PoolStatus`, `GatewayStatus`) gathered in an immutable
  `Snapshot`: rates from counter deltas, quantiles from histogram deltas, severities.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

SCHEMA_VERSION = 1


class Severity(enum.IntEnum):
    """Ordered so that max() picks the worst; UNKNOWN sits between WARN and CRIT."""

    OK = 0
    WARN = 1
    UNKNOWN = 2
    CRIT = 3

    @property
    def label(self) -> str:
        return self.name.lower()


# --- raw readings -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Histogram:
    """A cumulative histogram: (upper bound, cumulative count) pairs, sorted, +Inf last."""

    buckets: tuple[tuple[float, float], ...]
    count: float
    sum: float


@dataclass(frozen=True, slots=True)
class EngineSample:
    """One engine page mapped onto canonical names. Counters are cumulative totals."""

    running: float | None = None
    waiting: float | None = None
    kv_cache_usage: float | None = None
    prompt_tokens_total: float | None = None
    generation_tokens_total: float | None = None
    requests_total: float | None = None
    errors_total: float | None = None
    ttft_seconds: Histogram | None = None
    e2e_seconds: Histogram | None = None
    model: str | None = None


@dataclass(frozen=True, slots=True)
class GpuSample:
    index: int
    uuid: str | None = None
    name: str | None = None
    util: float | None = None
    mem_util: float | None = None
    mem_used: float | None = None
    mem_total: float | None = None
    temp: float | None = None
    power: float | None = None
    power_limit: float | None = None
    ecc_uncorrected: float | None = None
    throttle: tuple[str, ...] | None = None
    last_xid: int | None = None
    last_xid_time: float | None = None
    lost: bool = False


@dataclass(frozen=True, slots=True)
class HostSample:
    cpu: float | None = None
    mem_used: float | None = None
    mem_total: float | None = None
    load1: float | None = None
    uptime_s: float | None = None


@dataclass(frozen=True, slots=True)
class Reading:
    """What one source decoded from one scrape; a field a source does not supply stays None."""

    engine: EngineSample | None = None
    gpus: tuple[GpuSample, ...] | None = None
    host: HostSample | None = None
    gpu_error: str | None = None
    revision: str | None = None
    engine_kind: str | None = None  # the kind an `auto` source detected


@dataclass(frozen=True, slots=True)
class NodeFigures:
    """One node as a fleet source (a Prometheus) reported it: rates already computed there."""

    name: str
    pool: str | None
    gateway: str | None = None
    up: bool | None = None  # from the source's own scrape health; None when it has none
    down: tuple[str, ...] = ()  # the node's targets that the source cannot scrape
    sample_time: float | None = None  # epoch seconds of its newest sample
    engine: EngineFigures | None = None
    gpus: tuple[GpuSample, ...] | None = None
    host: HostSample | None = None
    engine_kind: str | None = None


@dataclass(frozen=True, slots=True)
class FleetReading:
    """What one refresh of a fleet source decoded: every node it knows, by name."""

    time: float  # epoch seconds the queries were evaluated at
    nodes: dict[str, NodeFigures]
    pool_ttft_p95_s: dict[str, float] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()  # partial answers: what is missing and why


# --- derived statuses ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TargetHealth:
    """Health of one scraped target (an engine page, an agent, a dcgm-exporter)."""

    url: str
    up: bool
    stale: bool
    last_ok: float | None
    age_s: float | None
    scrape_ms: float | None
    error: str | None


@dataclass(frozen=True, slots=True)
class EngineFigures:
    running: float | None = None
    waiting: float | None = None
    kv_cache_usage: float | None = None
    requests_per_s: float | None = None
    tokens_per_s: float | None = None
    prompt_tokens_per_s: float | None = None
    error_rate: float | None = None
    ttft_p50_s: float | None = None
    ttft_p95_s: float | None = None
    model: str | None = None


@dataclass(frozen=True, slots=True)
class Ack:
    """An operator's silence on a node's or pool's alert, until `until` (epoch seconds)."""

    until: float
    user: str
    reason: str | None


@dataclass(frozen=True, slots=True)
class NodeStatus:
    name: str
    pool: str
    engine_kind: str
    up: bool
    stale: bool
    age_s: float | None
    scrape_ms: float | None
    error: str | None
    state: str | None  # the gateway's server state (UP/DOWN/DRAIN/MAINT), None without one
    severity: Severity
    reasons: tuple[str, ...]  # why the severity is what it is, for people
    engine: EngineFigures
    gpus: tuple[GpuSample, ...]
    host: HostSample | None
    revision: str | None
    targets: tuple[TargetHealth, ...]
    ack: Ack | None = None

    @property
    def healthy(self) -> bool:
        """Up, fresh, UP at the gateway (or none) and not critical."""
        return (
            self.up
            and not self.stale
            and self.state in (None, "UP")
            and self.severity is not Severity.CRIT
        )


@dataclass(frozen=True, slots=True)
class PoolStatus:
    name: str
    model: str | None
    nodes: int
    healthy: int
    running: float | None
    waiting: float | None
    requests_per_s: float | None
    tokens_per_s: float | None
    error_rate: float | None
    ttft_p95_s: float | None
    gpu_util_avg: float | None
    severity: Severity
    reasons: tuple[str, ...]
    route: str | None  # the backend serving the pool's route, None without a route or reading
    failed_over: bool | None = None  # the route names another backend than the pool's own
    ack: Ack | None = None


@dataclass(frozen=True, slots=True)
class ReplicaHealth:
    endpoint: str
    up: bool
    age_s: float | None  # since its last good read
    error: str | None


@dataclass(frozen=True, slots=True)
class BackendFigures:
    name: str
    status: str | None  # as the replicas report it (UP/DOWN), None when none answered
    scur: int | None  # in flight, summed over the replicas
    qcur: int | None  # queued at the gateway, summed over the replicas
    errors_5xx_per_s: float | None


@dataclass(frozen=True, slots=True)
class GatewayStatus:
    name: str
    replicas_up: int | None  # None until a gateway plugin has read the replicas
    replicas_total: int
    severity: Severity
    reasons: tuple[str, ...] = ()
    replicas: tuple[ReplicaHealth, ...] = ()
    backends: tuple[BackendFigures, ...] = ()


@dataclass(frozen=True, slots=True)
class Drift:
    """A verified action the gateway no longer shows (a reload dropped it)."""

    target: str  # a node (server state) or a pool (route)
    expected: str  # e.g. DRAIN, or the backend the route should name
    observed: str  # what the replicas report now
    since: float  # epoch seconds of the verified action
    reapply: str  # the command that applies it again
    forget: str  # the command that accepts what the gateway shows


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """A fleet source's health: a banner over the whole view when it is down or behind."""

    name: str
    url: str
    up: bool
    stale: bool
    age_s: float | None  # since its last good refresh
    refresh_ms: float | None
    error: str | None
    warnings: tuple[str, ...] = ()
    nodes: int = 0  # nodes it reported at its last good refresh

    @property
    def severity(self) -> Severity:
        if not self.up or self.stale:
            return Severity.UNKNOWN
        return Severity.WARN if self.warnings else Severity.OK

    @property
    def banner(self) -> str | None:
        """One line for the top of every view; None while all is well."""
        age = "" if self.age_s is None else f"; data {self.age_s:.0f}s old"
        if not self.up:
            return f"{self.name} {self.url}: {self.error}{age}"
        if self.stale:
            return f"{self.name} {self.url}: no fresh answer{age}"
        if self.warnings:
            more = f" (+{len(self.warnings) - 1} more)" if len(self.warnings) > 1 else ""
            return f"{self.name}: partial data: {self.warnings[0]}{more}"
        return None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything a view needs at one instant. Never mutated: the collector publishes anew."""

    time: float
    nodes: tuple[NodeStatus, ...]
    pools: tuple[PoolStatus, ...]
    gateways: tuple[GatewayStatus, ...] = ()
    drift: tuple[Drift, ...] = ()
    sources: tuple[SourceStatus, ...] = ()
    schema_version: int = field(default=SCHEMA_VERSION)

    @property
    def severity(self) -> Severity:
        """The worst pool, gateway or fleet source, acknowledged pools left out; drift is at
        least WARN."""
        worst = [p.severity for p in self.pools if p.ack is None]
        worst += [g.severity for g in self.gateways]
        worst += [s.severity for s in self.sources]
        if self.drift:
            worst.append(Severity.WARN)
        return max(worst, default=Severity.OK)
