"""Engine pages: real formats, parseable, carrying the ground truth in the mapped families."""

from __future__ import annotations

import math
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.utils import floatToGoString

from console.sim import example_page
from console.sim.engines import ENGINE_KINDS, ENGINES, compiled_page
from console.sim.engines.vllm import DIALECT as VLLM_DIALECT
from console.sim.histogram import Histogram
from console.sim.model import NodeModel
from console.sim.pagetext import cpp_float, go_float, histogram_text, rust_float

# The families docs/engine-mappings.md reads, as prometheus_client names them, with their type.
CANONICAL = {
    "vllm": {
        "vllm:num_requests_running": "gauge",
        "vllm:num_requests_waiting": "gauge",
        "vllm:kv_cache_usage_perc": "gauge",
        "vllm:prompt_tokens": "counter",
        "vllm:generation_tokens": "counter",
        "vllm:request_success": "counter",
        "vllm:time_to_first_token_seconds": "histogram",
        "vllm:e2e_request_latency_seconds": "histogram",
    },
    "sglang": {
        "sglang:num_running_reqs": "gauge",
        "sglang:num_queue_reqs": "gauge",
        "sglang:token_usage": "gauge",
        "sglang:prompt_tokens": "counter",
        "sglang:generation_tokens": "counter",
        "sglang:num_requests": "counter",
        "sglang:num_aborted_requests": "counter",
        "sglang:time_to_first_token_seconds": "histogram",
        "sglang:e2e_request_latency_seconds": "histogram",
    },
    "tgi": {
        "tgi_batch_current_size": "gauge",
        "tgi_queue_size": "gauge",
        "tgi_request_count": "counter",
        "tgi_request_failure": "counter",
        "tgi_request_input_length": "histogram",
        "tgi_request_generated_tokens": "histogram",
        "tgi_request_duration": "histogram",
    },
    "triton": {
        "nv_trt_llm_request_metrics": "gauge",
        "nv_trt_llm_kv_cache_block_metrics": "gauge",
        "nv_inference_request_success": "counter",
        "nv_inference_request_failure": "counter",
        "nv_inference_first_response_histogram_ms": "histogram",
        "nv_gpu_utilization": "gauge",
    },
}


def families(text: str) -> dict[str, Any]:
    return {family.name: family for family in text_string_to_metric_families(text)}


def node_at(kind: str, seconds: float, seed: int = 3) -> NodeModel:
    """A node of `kind` that has run `seconds` on an injected clock."""
    now = [1000.0]
    node = NodeModel(
        "node-001",
        ENGINES[kind],
        seed=seed,
        index=0,
        gpus=2,
        clock=lambda: now[0],
        wall_start=1.75e9,
    )
    now[0] += seconds
    node.advance()
    node.settle_histograms()
    return node


def render(node: NodeModel) -> str:
    return compiled_page(node.spec, node.model, tuple(node.board.uuids)).render(node)


@pytest.mark.parametrize("kind", ENGINE_KINDS)
def test_every_page_parses_and_carries_the_canonical_families(kind: str) -> None:
    parsed = families(example_page(kind))
    for name, kind_of_family in CANONICAL[kind].items():
        assert name in parsed, f"{kind}: {name} missing"
        assert parsed[name].type == kind_of_family, name


@pytest.mark.parametrize("kind", ENGINE_KINDS)
def test_figures_read_through_the_mappings_are_the_ground_truth(kind: str, read_page: Any) -> None:
    node = node_at(kind, 37.5)
    engine = read_page(kind, render(node))
    assert engine.running == node.running
    assert engine.waiting == node.waiting
    assert engine.requests_total == pytest.approx(node.requests_total, rel=1e-12)
    assert engine.errors_total == pytest.approx(node.errors_total, rel=1e-12)
    assert engine.errors_total > 0
    if kind != "tgi":  # TGI has no KV-cache figure
        assert engine.kv_cache_usage == node.kv_cache_usage
    if kind != "triton":  # Triton's page has no token counters
        assert engine.prompt_tokens_total == pytest.approx(node.prompt_tokens_total, rel=1e-12)
        assert engine.generation_tokens_total == pytest.approx(
            node.generation_tokens_total, rel=1e-12
        )
    latency = engine.e2e_seconds if kind == "tgi" else engine.ttft_seconds
    assert latency.count == pytest.approx(node.requests_total, abs=1.0)


def test_ttft_buckets_are_a_distribution_p50_and_p95_can_be_read_from() -> None:
    node = node_at("vllm", 10.0)
    parsed = families(render(node))["vllm:time_to_first_token_seconds"]
    buckets = [
        (float(sample.labels["le"]), sample.value)
        for sample in parsed.samples
        if sample.name.endswith("_bucket")
    ]
    total = buckets[-1][1]
    p50 = next(bound for bound, count in buckets if count >= total * 0.5)
    p95 = next(bound for bound, count in buckets if count >= total * 0.95)
    median = node.conditions.medians["ttft"]
    assert median / 3 < p50 < median * 3  # the bucket holding the median is near it
    assert p50 < p95 < math.inf
    assert sum(1 for _bound, count in buckets if 0 < count < total) >= 4  # spread, not a step


@pytest.mark.parametrize("kind", ENGINE_KINDS)
def test_histograms_are_cumulative_and_end_at_their_count(kind: str) -> None:
    for family in families(render(node_at(kind, 90.0))).values():
        if family.type != "histogram":
            continue
        series: dict[tuple[tuple[str, str], ...], list[float]] = {}
        counts: dict[tuple[tuple[str, str], ...], float] = {}
        for sample in family.samples:
            key = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "le"))
            if sample.name.endswith("_bucket"):
                series.setdefault(key, []).append(sample.value)
            elif sample.name.endswith("_count"):
                counts[key] = sample.value
        for key, buckets in series.items():
            assert buckets == sorted(buckets), f"{family.name}{key} is not cumulative"
            assert buckets[-1] == counts[key], f"{family.name}{key}: +Inf is not the count"


def test_vllm_page_is_full_size_with_created_samples_and_sorted_labels() -> None:
    text = example_page("vllm")
    assert 48_000 <= len(text.encode()) <= 58_000
    assert 540 <= text.count("\n") <= 580
    assert text.startswith("# HELP python_gc_objects_collected_total ")
    assert "# TYPE vllm:prompt_tokens_created gauge\n" in text
    assert 'vllm:num_requests_running{engine="0",model_name="' in text
    assert '_bucket{engine="0",le="0.001",model_name="' in text
    assert 'finished_reason="error"' in text


def test_tgi_page_is_written_as_the_rust_exporter_does() -> None:
    text = example_page("tgi")
    assert len(text.encode()) > 90_000  # 1024 batch-size buckets, 100-bucket token histograms
    assert "_total" not in text
    assert "\n\n# TYPE tgi_request_failure counter\n" in text  # a family without HELP
    assert text.endswith("\n\n")
    assert 'tgi_batch_forward_duration_bucket{method="decode",le="0.00015000000000000001"}' in text
    assert '\ntgi_batch_next_size_bucket{le="1024"} ' in text


def test_triton_page_is_written_as_prometheus_cpp_does() -> None:
    text = example_page("triton")
    name = "nv_inference_first_response_histogram_ms"
    count_at = text.index(f"{name}_count{{")
    assert count_at < text.index(f"{name}_sum{{") < text.index(f"{name}_bucket{{")
    assert f'{name}_bucket{{model="tensorrt_llm",version="1",le="100"}}' in text
    active = 'nv_trt_llm_request_metrics{model="tensorrt_llm",request_type="active",version="1"}'
    assert active in text
    assert text.count("nv_gpu_utilization{gpu_uuid=") == 8


def test_sglang_page_has_no_created_samples() -> None:
    text = example_page("sglang")
    assert "_created" not in text
    assert 'sglang:num_running_reqs{model_name="' in text and 'tp_rank="0"' in text


@pytest.mark.parametrize(
    "value", [0.0, 1.0, 0.5, 12.25, 999999.0, 1e6, 1234567.0, 1.7e9, 1749938789.5566816, 1e22]
)
def test_go_floats_are_prometheus_clients(value: float) -> None:
    assert go_float(value) == floatToGoString(value)


@pytest.mark.parametrize("observations", [10.0, 999_999.0, 1_000_000.0, 70_235_614.0])
def test_histogram_counts_are_prometheus_clients(observations: float) -> None:
    histogram = Histogram([0.1, 0.5, 1.0, 5.0])
    histogram.add(observations, histogram.cdf(0.5, 0.6), observations * 0.6)
    expected = [floatToGoString(float(count)) for count in histogram.rounded()]
    values = histogram_text(VLLM_DIALECT, histogram)
    assert values == [*expected, expected[-1], floatToGoString(histogram.sum)]


def test_rust_and_cpp_numbers_look_like_the_fixtures() -> None:
    # values as they appear in the real TGI and Triton pages of shared/fixtures
    assert rust_float(109.0) == "109"
    assert rust_float(541.2140316159999) == "541.2140316159999"
    assert rust_float(0.0001 * 1.5) == "0.00015000000000000001"
    assert rust_float((511 / 100.0) * 100) == "511.00000000000006"
    assert rust_float(1e22) == "10000000000000000000000"
    assert cpp_float(37.0) == "37"
    assert cpp_float(0.4875) == "0.4875"
    assert cpp_float(4879631.328000044) == "4879631.328000044"
    assert cpp_float(16106127360.0) == "16106127360"


def test_example_pages_are_stable_and_unknown_kinds_refused() -> None:
    assert example_page("vllm") == example_page("vllm")
    with pytest.raises(ValueError, match="unknown engine kind"):
        example_page("nim")
