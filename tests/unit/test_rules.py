from __future__ import annotations

import math

import pytest

from console.fleet import Alerts, Threshold
from console.model import EngineSample, GpuSample, Histogram, Severity
from console.rules import (
    Verdict,
    engine_window,
    gpu_verdict,
    histogram_increase,
    increase,
    quantile,
    total,
)

INF = math.inf


def hist(*counts: float, bounds: tuple[float, ...] = (0.1, 0.5, 1.0, INF)) -> Histogram:
    return Histogram(tuple(zip(bounds, counts, strict=True)), counts[-1], 0.0)


def test_increase_handles_counter_reset() -> None:
    assert increase(10, 25) == 15
    assert increase(1000, 40) == 40  # restarted: counted from zero
    assert increase(None, 5) is None


def test_quantile_interpolates_inside_the_bucket() -> None:
    # 100 observations: 50 below 0.1 s, 40 in (0.1, 0.5], 10 in (0.5, 1]
    histogram = hist(50, 90, 100, 100)
    assert quantile(0.5, histogram) == pytest.approx(0.1)
    assert quantile(0.95, histogram) == pytest.approx(0.75)
    assert quantile(0.25, histogram) == pytest.approx(0.05)


def test_quantile_in_inf_bucket_is_the_top_finite_bound() -> None:
    assert quantile(0.99, hist(0, 0, 10, 100)) == 1.0


def test_quantile_of_no_observations_is_unknown() -> None:
    assert quantile(0.5, hist(0, 0, 0, 0)) is None
    assert quantile(0.5, None) is None


def test_histogram_increase_and_reset() -> None:
    old, new = hist(10, 20, 30, 30), hist(15, 30, 45, 50)
    grown = histogram_increase(old, new)
    assert grown is not None
    assert [c for _, c in grown.buckets] == [5, 10, 15, 20]
    restarted = hist(1, 2, 3, 3)
    assert histogram_increase(new, restarted) == restarted


def test_engine_figures_rates_over_the_window() -> None:
    old = EngineSample(
        requests_total=100,
        errors_total=1,
        generation_tokens_total=1000,
        prompt_tokens_total=500,
        ttft_seconds=hist(10, 20, 30, 30),
    )
    new = EngineSample(
        running=3,
        waiting=7,
        kv_cache_usage=0.5,
        requests_total=300,
        errors_total=11,
        generation_tokens_total=5000,
        prompt_tokens_total=900,
        ttft_seconds=hist(110, 220, 230, 230),
    )
    figures, ttft = engine_window((10.0, old), (20.0, new))
    assert figures.requests_per_s == pytest.approx(20.0)
    assert figures.error_rate == pytest.approx(0.05)
    assert figures.tokens_per_s == pytest.approx(400.0)
    assert figures.prompt_tokens_per_s == pytest.approx(40.0)
    assert (figures.running, figures.waiting, figures.kv_cache_usage) == (3, 7, 0.5)
    assert figures.ttft_p50_s == pytest.approx(0.1)
    assert ttft is not None and ttft.count == 200


def test_engine_figures_never_negative_after_a_restart() -> None:
    old = EngineSample(requests_total=10_000, errors_total=50, generation_tokens_total=10**6)
    new = EngineSample(requests_total=20, errors_total=1, generation_tokens_total=300)
    figures, _ = engine_window((0.0, old), (2.0, new))
    assert figures.requests_per_s == 10 and figures.tokens_per_s == 150
    assert figures.error_rate == pytest.approx(0.05)


def test_single_reading_gives_gauges_and_unknown_rates() -> None:
    figures, ttft = engine_window(None, (1.0, EngineSample(running=1, requests_total=5)))
    assert figures.running == 1
    assert figures.requests_per_s is None and figures.error_rate is None
    assert ttft is None


def test_error_rate_unknown_when_nothing_finished() -> None:
    sample = EngineSample(requests_total=5, errors_total=0)
    assert engine_window((0.0, sample), (2.0, sample))[0].error_rate is None


def test_verdict_worst_wins_with_reasons() -> None:
    verdict = Verdict()
    verdict.check("waiting", 30, Threshold(warn=20, crit=100))
    verdict.check("error rate", 0.2, Threshold(warn=0.02, crit=0.1), "%")
    assert verdict.severity is Severity.CRIT
    assert verdict.reasons == ["waiting 30 >= 20", "error rate 20.0% >= 10.0%"]


def test_gpu_verdict_lost_gpu_is_critical() -> None:
    verdict = Verdict()
    gpus = [GpuSample(index=0, temp=50), GpuSample(index=3, lost=True, last_xid=79)]
    gpu_verdict(verdict, gpus, Alerts(), wall=1000.0)
    assert verdict.severity is Severity.CRIT
    assert "GPU 3 lost (XID 79)" in verdict.reasons


def test_total_of_unknowns_is_unknown() -> None:
    assert total([None, None]) is None
    assert total([None, 2, 3]) == 5
