"""The parser against prometheus_client on every real upstream page in the shared fixtures.

The fixtures lie beside the checkout (`../shared/fixtures/metrics`); without them these tests
skip, except in CI, where a missing folder is a failure.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from console.promtext import Page, parse

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "metrics"
# Families the engine mappings read (docs/engine-mappings.md), tried on every page.
MAPPED = frozenset(
    {
        "vllm:num_requests_running",
        "vllm:kv_cache_usage_perc",
        "vllm:prompt_tokens",
        "vllm:request_success",
        "vllm:time_to_first_token_seconds",
        "sglang:num_queue_reqs",
        "sglang:prompt_tokens",
        "sglang:e2e_request_latency_seconds",
        "tgi_queue_size",
        "tgi_request_count",
        "tgi_request_duration",
        "nv_inference_pending_request_count",
        "nv_trt_llm_request_metrics",
        "num_requests_waiting",
        "request_failure",
        "DCGM_FI_DEV_GPU_UTIL",
        "DCGM_FI_DEV_XID_ERRORS",
    }
)


def fixture_pages() -> list[Path]:
    return sorted(FIXTURES.glob("*.prom")) if FIXTURES.is_dir() else []


@pytest.fixture(params=fixture_pages() or [None], ids=lambda path: path.name if path else "none")
def page_text(request: pytest.FixtureRequest) -> str:
    path: Path | None = request.param
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"metrics fixtures missing in CI: {FIXTURES}")
        pytest.skip(f"metrics fixtures not available: {FIXTURES}")
    return path.read_text(encoding="utf-8")


def comparable(value: float) -> float | str:
    return "NaN" if math.isnan(value) else float(value)


def reference(text: str) -> dict[str, tuple[str, list[tuple[object, ...]]]]:
    """prometheus_client's families, those of one name joined as the parser joins them."""
    families: dict[str, tuple[str, list[tuple[object, ...]]]] = {}
    for metric in text_string_to_metric_families(text):
        _, samples = families.setdefault(metric.name, (metric.type, []))
        samples.extend(
            (sample.name, sample.labels, comparable(sample.value), sample.timestamp)
            for sample in metric.samples
        )
    return families


def ours(page: Page) -> dict[str, tuple[str, list[tuple[object, ...]]]]:
    return {
        name: (
            family.type,
            [(s.name, s.labels, comparable(s.value), s.timestamp) for s in family.samples],
        )
        for name, family in page.families.items()
    }


def test_agrees_with_prometheus_client(page_text: str) -> None:
    page = parse(page_text)
    assert page.issues == []
    expected = reference(page_text)
    assert list(page.families) == list(expected)
    for name, (kind, samples) in expected.items():
        assert ours(page)[name] == (kind, samples), name


def test_wanted_families_equal_the_full_parse(page_text: str) -> None:
    full = parse(page_text)
    names = list(full.families)
    # The mapped families, plus a few of the page's own from its start, middle and end.
    wanted = MAPPED | {names[0], names[len(names) // 2], names[-1], "absent_family"}
    fast = parse(page_text, wanted)
    assert list(fast.families.items()) == [
        (name, family) for name, family in full.families.items() if name in wanted
    ]
    assert fast.issues == []
