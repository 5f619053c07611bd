"""Assembling a Snapshot from the collector's targets: node, pool and gateway statuses.

A node's primary target is its engine page (or its agent when it has no engine URL, or the
fleet source's figures of it when it has neither): it decides `up`, `stale`, `age_s` and the
serving figures. GPUs and host come from the agent, else from a dcgm-exporter page, else from
the fleet source, else from GPU families on the engine page itself (Triton's `nv_gpu_*`).
A target that is down contributes nothing: its last figures are not shown as current.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple, Protocol

from console.fleet import Alerts, FleetConfig, NodeConfig, PoolConfig
from console.gateways import GatewayView, Observed
from console.model import (
    Ack,
    Drift,
    EngineFigures,
    GpuSample,
    Histogram,
    NodeStatus,
    PoolStatus,
    Reading,
    Severity,
    Snapshot,
    SourceStatus,
    TargetHealth,
)
from console.rules import (
    Verdict,
    average,
    engine_verdict,
    gpu_verdict,
    quantile,
    total,
)

NO_FIGURES = EngineFigures()
PRIMARY_ROLES = ("engine", "agent", "source")
GPU_ROLES = ("agent", "gpu", "source", "engine")


class Target(Protocol):
    """What a snapshot reads of a target: a scraped one (`console.collector.Target`) or a
    node's share of a fleet source's reading (`console.fleetsource.SourcedTarget`)."""

    @property
    def node(self) -> NodeConfig: ...
    @property
    def role(self) -> str: ...
    @property
    def url(self) -> str: ...
    @property
    def interval(self) -> float: ...
    @property
    def reading(self) -> Reading | None: ...
    @property
    def last_ok(self) -> float | None: ...
    @property
    def error(self) -> str | None: ...
    @property
    def warning(self) -> str | None: ...
    @property
    def scrape_ms(self) -> float | None: ...
    @property
    def up(self) -> bool: ...

    def window(self) -> tuple[EngineFigures, Histogram | None]:
        """Figures over the rate window, and the TTFT increase (for pool quantiles)."""
        ...


def _health(target: Target, now: float, alerts: Alerts) -> TargetHealth:
    age = None if target.last_ok is None else now - target.last_ok
    stale = not target.up or age is None or age > alerts.stale_after * target.interval
    error = target.error
    if error is None and target.last_ok is None:
        error = "not scraped yet"
    return TargetHealth(
        url=target.url,
        up=target.up,
        stale=stale,
        last_ok=target.last_ok,
        age_s=age,
        scrape_ms=target.scrape_ms,
        error=error,
    )


class _Increase(NamedTuple):
    """A histogram's increase in columns: a few objects where its buckets are one pair each,
    so the many kept until the pool roll-up weigh little on the garbage collector."""

    bounds: tuple[float, ...]
    counts: tuple[float, ...]  # cumulative, bucket by bucket
    observed: float  # the histogram's count
    sum: float


def _columns(histogram: Histogram | None) -> _Increase | None:
    if histogram is None:
        return None
    pairs = histogram.buckets  # transposed in C, not pair by pair
    bounds, counts = zip(*pairs, strict=True) if pairs else ((), ())
    return _Increase(bounds, counts, histogram.count, histogram.sum)


class _NodeParts(NamedTuple):
    """A node's status plus what the pool roll-up needs but the snapshot does not show."""

    status: NodeStatus
    ttft: _Increase | None


def _node(
    node: NodeConfig,
    targets: Sequence[Target],
    now: float,
    wall: float,
    alerts: Alerts,
    server: Observed | None,
    ack: Ack | None,
) -> _NodeParts:
    by_role = {t.role: t for t in targets}
    primary = next((by_role[role] for role in PRIMARY_ROLES if role in by_role), None)
    healths = tuple(_health(t, now, alerts) for t in targets)
    primary_health = healths[targets.index(primary)] if primary is not None else None
    verdict = Verdict()
    figures, ttft = NO_FIGURES, None
    if primary is not None and primary.up:
        figures, ttft = primary.window()
    live = {t.role: t.reading for t in targets if t.up and t.reading is not None}
    gpu_reading: Reading | None = next(
        (live[role] for role in GPU_ROLES if role in live and live[role].gpus),
        None,
    )
    gpus: tuple[GpuSample, ...] = gpu_reading.gpus or () if gpu_reading else ()
    agent = live.get("agent")
    up = primary_health is not None and primary_health.up
    stale = primary_health is None or primary_health.stale
    if primary_health is None:
        verdict.raise_to(Severity.UNKNOWN, "no target to read")
    elif not up:
        verdict.raise_to(Severity.CRIT, f"down: {primary_health.error}")
    elif stale:
        verdict.raise_to(Severity.UNKNOWN, f"stale: last data {primary_health.age_s:.0f}s ago")
    else:
        engine_verdict(verdict, figures, alerts)
    for target, health in zip(targets, healths, strict=True):
        if target is not primary and health.error:
            verdict.raise_to(Severity.WARN, f"{target.role}: {health.error}")
        if target.warning:
            verdict.raise_to(Severity.WARN, target.warning)
    gpu_verdict(verdict, gpus, alerts, wall)
    state = None if server is None else server.value
    if server is not None and (split := server.disagreement) is not None:
        verdict.raise_to(Severity.WARN, f"gateway replicas disagree: {split}")
    elif state == "DOWN":
        verdict.raise_to(Severity.WARN, "gateway: DOWN (health check failing)")
    if agent is not None and agent.gpu_error:
        verdict.raise_to(Severity.WARN, f"GPU telemetry: {agent.gpu_error}")
    kind = node.engine
    detected = live.get("engine") or live.get("source")
    if kind == "auto" and detected is not None and detected.engine_kind:
        kind = detected.engine_kind
    status = NodeStatus(
        name=node.name,
        pool=node.pool,
        engine_kind=kind,
        up=up,
        stale=stale,
        age_s=None if primary_health is None else primary_health.age_s,
        scrape_ms=None if primary_health is None else primary_health.scrape_ms,
        error=None if primary_health is None else primary_health.error,
        state=state,
        severity=verdict.severity,
        reasons=tuple(verdict.reasons),
        engine=figures,
        gpus=gpus,
        host=next((r.host for r in (agent, live.get("source")) if r and r.host), None),
        revision=agent.revision if agent else None,
        targets=healths,
        ack=ack,
    )
    return _NodeParts(status, _columns(ttft))


def _merged_ttft(parts: Sequence[_NodeParts]) -> Histogram | None:
    """The pool's TTFT increase: node histograms added bucket by bucket when bounds agree."""
    increases = [p.ttft for p in parts if p.ttft is not None]
    if not increases:
        return None
    bounds = increases[0].bounds
    if any(increase.bounds != bounds for increase in increases):
        return None
    columns = zip(*(increase.counts for increase in increases), strict=True)
    return Histogram(
        tuple(zip(bounds, [sum(column) for column in columns], strict=True)),
        sum(increase.observed for increase in increases),
        sum(increase.sum for increase in increases),
    )


def _pool(
    pool: PoolConfig,
    parts: Sequence[_NodeParts],
    route: Observed | None,
    ack: Ack | None,
    sourced_ttft_p95: float | None,
) -> PoolStatus:
    nodes = [p.status for p in parts]
    engines = [n.engine for n in nodes]
    healthy = sum(1 for n in nodes if n.healthy)
    # an acknowledged node counts as healthy for the roll-up: its alert is silenced
    counted = healthy + sum(1 for n in nodes if n.ack is not None and not n.healthy)
    requests = total(e.requests_per_s for e in engines)
    weighted = [(e.error_rate, e.requests_per_s) for e in engines]
    errors = total(rate * rps for rate, rps in weighted if rate is not None and rps is not None)
    error_rate = None if errors is None or not requests else errors / requests
    merged = _merged_ttft(parts)
    if merged is not None:
        ttft_p95 = quantile(0.95, merged)
    elif sourced_ttft_p95 is not None:  # computed by the fleet source over the pool's buckets
        ttft_p95 = sourced_ttft_p95
    else:
        ttft_p95 = max((e.ttft_p95_s for e in engines if e.ttft_p95_s is not None), default=None)
    figures = EngineFigures(error_rate=error_rate, ttft_p95_s=ttft_p95)
    verdict = Verdict()
    if nodes and all(n.severity is Severity.UNKNOWN for n in nodes):
        # nothing is known (the fleet source is down, say): not a reason to page as critical
        verdict.raise_to(Severity.UNKNOWN, "no node has fresh data")
    elif nodes and counted == 0:
        verdict.raise_to(Severity.CRIT, "no healthy node")
    elif counted < pool.min_healthy:
        verdict.raise_to(Severity.CRIT, f"{healthy} healthy < min_healthy {pool.min_healthy}")
    elif counted < len(nodes):
        verdict.raise_to(Severity.WARN, f"{len(nodes) - healthy}/{len(nodes)} nodes unhealthy")
    if route is not None and route.value is not None and route.value != pool.backend:
        verdict.raise_to(Severity.WARN, f"failed over: route names {route.value}")
    verdict.check("error rate", figures.error_rate, pool.alerts.error_rate, "%")
    verdict.check("TTFT p95", figures.ttft_p95_s, pool.alerts.ttft_p95_s, "s")
    return PoolStatus(
        name=pool.name,
        model=pool.model or next((e.model for e in engines if e.model), None),
        nodes=len(nodes),
        healthy=healthy,
        running=total(e.running for e in engines),
        waiting=total(e.waiting for e in engines),
        requests_per_s=requests,
        tokens_per_s=total(e.tokens_per_s for e in engines),
        error_rate=error_rate,
        ttft_p95_s=ttft_p95,
        gpu_util_avg=average(g.util for n in nodes for g in n.gpus if not g.lost),
        severity=verdict.severity,
        reasons=tuple(verdict.reasons),
        route=None if route is None else route.value,
        failed_over=None if route is None or route.value is None else route.value != pool.backend,
        ack=ack,
    )


def build_snapshot(
    config: FleetConfig,
    targets: Sequence[Target],
    now: float,
    wall: float,
    view: GatewayView | None = None,
    acks: Mapping[str, Ack] | None = None,
    drift: tuple[Drift, ...] = (),
    sources: tuple[SourceStatus, ...] = (),
    pool_ttft_p95: Mapping[str, float] | None = None,
) -> Snapshot:
    """The fleet at `now` (monotonic; `wall` is its epoch time). `acks` maps node and pool
    names to their active acknowledgements; `pool_ttft_p95` holds pool quantiles a fleet
    source computed."""
    by_node: dict[str, list[Target]] = {}
    for target in targets:
        by_node.setdefault(target.node.name, []).append(target)
    pools = {p.name: p for p in config.pools}
    servers = {} if view is None else view.servers
    routes = {} if view is None else view.routes
    live_acks = {name: ack for name, ack in (acks or {}).items() if ack.until > wall}
    parts = {
        node.name: _node(
            node,
            by_node.get(node.name, []),
            now,
            wall,
            pools[node.pool].alerts,
            servers.get(node.name),
            live_acks.get(node.name),
        )
        for node in config.nodes
    }
    pool_statuses = tuple(
        _pool(
            pool,
            [parts[name] for name in pool.nodes],
            routes.get(pool.name),
            live_acks.get(pool.name),
            (pool_ttft_p95 or {}).get(pool.name),
        )
        for pool in config.pools
    )
    return Snapshot(
        time=wall,
        nodes=tuple(p.status for p in parts.values()),
        pools=pool_statuses,
        gateways=() if view is None else view.statuses,
        drift=drift,
        sources=sources,
    )
