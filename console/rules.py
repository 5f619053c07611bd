"""Derived figures and alert rules.

Rates come from counter deltas between the oldest and newest reading in the rate window, with
counter resets handled as Prometheus does (a counter that went down restarted from zero, so its
increase is its new value). TTFT quantiles come from histogram bucket deltas, interpolated
linearly inside the bucket as `histogram_quantile` does. Severities: thresholds from the config,
worst wins, each raise carries a reason a person can read.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Sequence

from console.fleet import Alerts, Threshold
from console.model import EngineFigures, EngineSample, GpuSample, Histogram, Severity

XID_RECENT_S = 3600.0  # an XID in the last hour keeps a node at WARN


def increase(old: float | None, new: float | None) -> float | None:
    """How much a counter grew from `old` to `new`; a reset counts from zero."""
    if old is None or new is None:
        return None
    return new if new < old else new - old


def histogram_increase(old: Histogram | None, new: Histogram | None) -> Histogram | None:
    """Bucket-by-bucket increase; a reset (count went down) or new bounds count from zero."""
    if old is None or new is None:
        return None
    if new.count < old.count or len(new.buckets) != len(old.buckets):
        return new
    # columns, transposed and subtracted in C: this runs for every node on every snapshot
    bounds, counts = zip(*new.buckets, strict=True) if new.buckets else ((), ())
    old_bounds, old_counts = zip(*old.buckets, strict=True) if old.buckets else ((), ())
    if bounds != old_bounds:  # a bound moved
        return new
    grown = tuple(zip(bounds, map(operator.sub, counts, old_counts), strict=True))
    return Histogram(grown, new.count - old.count, new.sum - old.sum)


def quantile(q: float, histogram: Histogram | None) -> float | None:
    """The q-quantile of a cumulative histogram (Prometheus's histogram_quantile)."""
    if histogram is None or not histogram.buckets:
        return None
    total = histogram.buckets[-1][1]
    if total <= 0:
        return None
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in histogram.buckets:
        if count >= rank:
            if bound == float("inf"):
                return lower_bound  # the top finite bound is all we can say
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = bound, count
    return lower_bound


def _per_second(old: float | None, new: float | None, seconds: float) -> float | None:
    grown = increase(old, new)
    return None if grown is None or seconds <= 0 else grown / seconds


def engine_window(
    oldest: tuple[float, EngineSample] | None, newest: tuple[float, EngineSample]
) -> tuple[EngineFigures, Histogram | None]:
    """Gauges from the newest reading; rates and quantiles over oldest..newest. Also the TTFT
    histogram's increase, which pool roll-ups merge across nodes."""
    now, new = newest
    if oldest is None or oldest[0] >= now:
        figures = EngineFigures(
            running=new.running,
            waiting=new.waiting,
            kv_cache_usage=new.kv_cache_usage,
            model=new.model,
        )
        return figures, None
    then, old = oldest
    seconds = now - then
    requests = increase(old.requests_total, new.requests_total)
    errors = increase(old.errors_total, new.errors_total)
    ttft = histogram_increase(old.ttft_seconds, new.ttft_seconds)
    figures = EngineFigures(
        running=new.running,
        waiting=new.waiting,
        kv_cache_usage=new.kv_cache_usage,
        requests_per_s=None if requests is None else requests / seconds,
        tokens_per_s=_per_second(old.generation_tokens_total, new.generation_tokens_total, seconds),
        prompt_tokens_per_s=_per_second(old.prompt_tokens_total, new.prompt_tokens_total, seconds),
        error_rate=None if errors is None or not requests else min(errors / requests, 1.0),
        ttft_p50_s=quantile(0.5, ttft),
        ttft_p95_s=quantile(0.95, ttft),
        model=new.model,
    )
    return figures, ttft


def _level(value: float | None, threshold: Threshold) -> Severity:
    if value is None:
        return Severity.OK
    if threshold.crit is not None and value >= threshold.crit:
        return Severity.CRIT
    if threshold.warn is not None and value >= threshold.warn:
        return Severity.WARN
    return Severity.OK


class Verdict:
    """Collects (severity, reason) raises; the worst severity wins."""

    def __init__(self) -> None:
        self.severity = Severity.OK
        self.reasons: list[str] = []

    def raise_to(self, severity: Severity, reason: str) -> None:
        if severity is Severity.OK:
            return
        self.severity = max(self.severity, severity)
        self.reasons.append(reason)

    def check(self, label: str, value: float | None, threshold: Threshold, unit: str = "") -> None:
        level = _level(value, threshold)
        if level is not Severity.OK and value is not None:
            limit = threshold.crit if level is Severity.CRIT else threshold.warn
            self.raise_to(level, f"{label} {_fmt(value, unit)} >= {_fmt(limit, unit)}")


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "?"
    if unit == "%":
        return f"{value * 100:.1f}%"
    return f"{value:g}{unit}"


def engine_verdict(verdict: Verdict, figures: EngineFigures, alerts: Alerts) -> None:
    verdict.check("error rate", figures.error_rate, alerts.error_rate, "%")
    verdict.check("waiting", figures.waiting, alerts.waiting)
    verdict.check("KV cache", figures.kv_cache_usage, alerts.kv_cache_usage, "%")
    verdict.check("TTFT p95", figures.ttft_p95_s, alerts.ttft_p95_s, "s")


def gpu_verdict(verdict: Verdict, gpus: Sequence[GpuSample], alerts: Alerts, wall: float) -> None:
    for gpu in gpus:
        if gpu.lost:
            xid = f" (XID {gpu.last_xid})" if gpu.last_xid is not None else ""
            verdict.raise_to(Severity.CRIT, f"GPU {gpu.index} lost{xid}")
            continue
        verdict.check(f"GPU {gpu.index} temp", gpu.temp, alerts.gpu_temp, "°C")
        if gpu.last_xid is not None and (
            gpu.last_xid_time is None or wall - gpu.last_xid_time < XID_RECENT_S
        ):
            verdict.raise_to(Severity.WARN, f"GPU {gpu.index} XID {gpu.last_xid}")


def average(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def total(values: Iterable[float | None]) -> float | None:
    """Sum of the known values; None when none is known (unknown is never 0)."""
    known = [v for v in values if v is not None]
    return sum(known) if known else None
