"""Triton Inference Server with the TensorRT-LLM backend, as prometheus-cpp writes its page.

Per model and version (one model, `tensorrt_llm`, so sums over label sets are the node's
figures): request counters, cumulative duration counters in microseconds, the pending count
and `nv_inference_first_response_histogram_ms` (`--metrics-config histogram_latencies=true`;
prometheus-cpp writes `_count` and `_sum` before the buckets, `le` last). Per GPU (by
`gpu_uuid`) the DCGM families; then the backend's `nv_trt_llm_*` gauges that select with a
label. Requests are success + failure; errors are failures over every `reason`.
"""

from __future__ import annotations

from typing import Any

from console.sim.engines.spec import EngineSpec, HistogramSpec
from console.sim.gpus import HOST_MEM_TOTAL
from console.sim.pagetext import Dialect, Page, PageBuilder, cpp_float

MODEL = "tensorrt_llm"
MAX_ACTIVE_REQUESTS = 512
KV_BLOCKS = 6239
KV_TOKENS_PER_BLOCK = 64
DIALECT = Dialect(
    number=cpp_float,
    count_suffix="",
    go_counts=False,
    bound=cpp_float,
    sort_le=False,
    histogram_order=("count", "sum", "buckets"),
    counter_suffix="",
    created=False,
    family_gap="",
)
FIRST_RESPONSE = "nv_inference_first_response_histogram_ms"
FIRST_RESPONSE_BOUNDS = (100.0, 500.0, 2000.0, 5000.0)
HISTOGRAMS = (HistogramSpec(FIRST_RESPONSE, "ttft", FIRST_RESPONSE_BOUNDS, scale=1000.0),)
FAILURE_REASONS = ("REJECTED", "CANCELED", "BACKEND", "OTHER")
MICROSECONDS = 1e6


def build_page(model: str, gpu_uuids: tuple[str, ...]) -> Page:
    page = PageBuilder(DIALECT)
    labels = {"model": model, "version": "1"}
    one = (labels,)
    per_gpu = [{"gpu_uuid": uuid} for uuid in gpu_uuids]

    def counter(name: str, help_text: str, value: Any) -> None:
        page.counter(name, help_text, one, lambda m: (cpp_float(value(m)),))

    counter(
        "nv_inference_request_success",
        "Number of successful inference requests, all batch sizes",
        lambda m: m.requests_total - m.errors_total,
    )
    page.counter(
        "nv_inference_request_failure",
        "Number of failed inference requests, all batch sizes",
        [{**labels, "reason": reason} for reason in FAILURE_REASONS],
        lambda m: ("0", "0", cpp_float(m.errors_total), "0"),
    )
    counter(
        "nv_inference_count",
        "Number of inferences performed (does not include cached requests)",
        lambda m: m.requests_total,
    )
    counter(
        "nv_inference_exec_count",
        "Number of model executions performed (does not include cached requests)",
        lambda m: m.requests_total,
    )
    counter(
        "nv_inference_request_duration_us",
        "Cumulative inference request duration in microseconds (includes cached requests)",
        lambda m: round(m.latency_sums["e2e"] * MICROSECONDS),
    )
    counter(
        "nv_inference_queue_duration_us",
        "Cumulative inference queuing duration in microseconds (includes cached requests)",
        lambda m: round(m.latency_sums["queue"] * MICROSECONDS),
    )
    counter(
        "nv_inference_compute_input_duration_us",
        "Cumulative compute input duration in microseconds (does not include cached requests)",
        lambda m: round(m.requests_total * 52.0),
    )
    counter(
        "nv_inference_compute_infer_duration_us",
        "Cumulative compute inference duration in microseconds (does not include cached requests)",
        lambda m: round((m.latency_sums["e2e"] - m.latency_sums["queue"]) * MICROSECONDS),
    )
    counter(
        "nv_inference_compute_output_duration_us",
        "Cumulative inference compute output duration in microseconds (does not include "
        "cached requests)",
        lambda m: round(m.requests_total * 83.0),
    )
    page.histogram(
        FIRST_RESPONSE,
        "Duration from request to first response in milliseconds",
        one,
        FIRST_RESPONSE_BOUNDS,
        lambda m: (m.histograms[FIRST_RESPONSE],),
    )
    page.counter(
        "nv_energy_consumption",
        "GPU energy consumption in joules since the Triton Server started",
        per_gpu,
        lambda m: tuple(cpp_float(round(joules, 3)) for joules in m.board.energy_j(m.uptime_s)),
    )
    page.gauge(
        "nv_inference_pending_request_count",
        "Instantaneous number of pending requests awaiting execution per-model.",
        one,
        lambda m: (cpp_float(m.waiting),),
    )
    gpu_families = (
        ("nv_gpu_utilization", "GPU utilization rate [0.0 - 1.0)",
         lambda gpu: None if gpu.util is None else gpu.util / 100.0),
        ("nv_gpu_memory_total_bytes", "GPU total memory, in bytes", lambda gpu: gpu.mem_total),
        ("nv_gpu_memory_used_bytes", "GPU used memory, in bytes", lambda gpu: gpu.mem_used),
        ("nv_gpu_power_usage", "GPU power usage in watts", lambda gpu: gpu.power),
        ("nv_gpu_power_limit", "GPU power management limit in watts",
         lambda gpu: gpu.power_limit),
    )  # fmt: skip
    for name, help_text, value in gpu_families:
        page.gauge(name, help_text, per_gpu, _per_gpu(value))
    page.gauge(
        "nv_cpu_utilization",
        "CPU utilization rate [0.0 - 1.0]",
        ({},),
        lambda m: (cpp_float(round(0.04 + 0.28 * m.busy, 4)),),
    )
    page.gauge(
        "nv_cpu_memory_total_bytes",
        "CPU total memory (RAM), in bytes",
        ({},),
        lambda m: (cpp_float(HOST_MEM_TOTAL),),
    )
    page.gauge(
        "nv_cpu_memory_used_bytes",
        "CPU used memory (RAM), in bytes",
        ({},),
        lambda m: (cpp_float(round(HOST_MEM_TOTAL * (0.17 + 0.04 * m.busy))),),
    )
    _trt_llm_families(page, labels)
    return page.build()


def _per_gpu(value: Any) -> Any:
    """One value per GPU; a GPU that fell off the bus reads NaN (DCGM has no value for it)."""

    def produce(m: Any) -> tuple[str, ...]:
        numbers = [value(gpu) for gpu in m.gpu_readings()]
        return tuple("NaN" if number is None else cpp_float(number) for number in numbers)

    return produce


def _trt_llm_families(page: PageBuilder, labels: dict[str, str]) -> None:
    """The TensorRT-LLM backend's gauges; a label selects which figure a sample is."""

    def selected(name: str, help_text: str, selector: str, values: dict[str, Any]) -> None:
        page.gauge(
            name,
            help_text,
            [{**labels, selector: key} for key in values],
            lambda m: tuple(cpp_float(value(m)) for value in values.values()),
        )

    selected(
        "nv_trt_llm_request_metrics",
        "TRT LLM request metrics",
        "request_type",
        {
            "waiting": lambda m: m.waiting,
            "context": lambda m: min(m.running, 2.0),
            "scheduled": lambda m: m.running,
            "max": lambda m: MAX_ACTIVE_REQUESTS,
            "active": lambda m: m.running,
        },
    )
    selected(
        "nv_trt_llm_runtime_memory_metrics",
        "TRT LLM runtime memory metrics",
        "memory_type",
        {"pinned": lambda m: 0, "gpu": lambda m: 1610236, "cpu": lambda m: 0},
    )
    selected(
        "nv_trt_llm_kv_cache_block_metrics",
        "TRT LLM KV cache block metrics",
        "kv_cache_block_type",
        {
            "fraction": lambda m: m.kv_cache_usage,
            "tokens_per": lambda m: KV_TOKENS_PER_BLOCK,
            "used": lambda m: round(m.kv_cache_usage * KV_BLOCKS),
            "free": lambda m: KV_BLOCKS - round(m.kv_cache_usage * KV_BLOCKS),
            "max": lambda m: KV_BLOCKS,
        },
    )
    selected(
        "nv_trt_llm_inflight_batcher_metrics",
        "TRT LLM inflight_batcher-specific metrics",
        "inflight_batcher_specific_metric",
        {
            "micro_batch_id": lambda m: 0,
            "generation_requests": lambda m: max(0.0, m.running - 1.0),
            "total_context_tokens": lambda m: round(min(m.running, 2.0) * m.profile.prompt_mean),
        },
    )
    selected(
        "nv_trt_llm_general_metrics",
        "General TRT LLM metrics",
        "general_type",
        {
            "iteration_counter": lambda m: int(m.steps_total),
            "timestamp": lambda m: int(m.wall_now),
        },
    )


SPEC = EngineSpec(
    kind="triton",
    model=MODEL,
    process="tritonserver",
    histograms=HISTOGRAMS,
    build_page=build_page,
    names_gpus=True,
)
