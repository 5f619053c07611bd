"""SGLang `/metrics`, as its collectors write through prometheus_client's multiprocess mode.

Families and bucket bounds follow `python/sglang/srt/metrics/collector.py`: scheduler gauges
and counters labelled `model_name` and `tp_rank` (rank 0 reports), tokenizer histograms
labelled `model_name`. Multiprocess mode writes no `_created` samples and puts a histogram's
`_sum` before its buckets and `_count` after them.
"""

from __future__ import annotations

from typing import Any

from console.sim.engines.spec import EngineSpec, HistogramSpec
from console.sim.pagetext import Dialect, Page, PageBuilder, go_float

MODEL = "Qwen/Qwen2.5-7B-Instruct"
MAX_TOTAL_TOKENS = 430839.0
DIALECT = Dialect(
    number=go_float,
    count_suffix=".0",
    go_counts=True,
    bound=go_float,
    sort_le=True,
    histogram_order=("sum", "buckets", "count"),
    counter_suffix="",
    created=False,
    family_gap="",
)
QUEUE_BOUNDS = (
    0.0, 0.1, 0.2, 0.5, 1, 2, 3, 4, 5, 10, 15, 20, 30, 40, 50, 60, 70, 80, 90, 100,
    200, 300, 400, 500, 600, 700, 800, 900, 1000, 1200, 1400, 1600, 1800, 2000, 2500, 3000,
)  # fmt: skip
TTFT_BOUNDS = (0.1, 0.2, 0.4, 0.6, 0.8, 1, 2, 4, 6, 8, 10, 20, 40, 60, 80, 100, 200, 400)
E2E_BOUNDS = (
    0.1, 0.2, 0.4, 0.6, 0.8, 1, 2, 4, 6, 8, 10, 20, 40, 60, 80, 100, 200, 400, 600, 1200,
    1800, 2400,
)  # fmt: skip
ITL_BOUNDS = (
    0.002, 0.004, 0.006, 0.008, 0.010, 0.015, 0.020, 0.025, 0.030, 0.035, 0.040, 0.060,
    0.080, 0.100, 0.200, 0.400, 0.600, 0.800, 1.000, 2.000, 4.000, 6.000, 8.000,
)  # fmt: skip
TOKEN_BOUNDS = (
    100, 300, 500, 700, 1000, 1500, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 9000, 10000,
    12000, 15000, 20000, 22000, 25000, 30000, 35000, 40000, 66000, 99000, 132000, 300000,
    600000, 900000, 1100000,
)  # fmt: skip

# (family, help, role, bounds, per-rank labels?) in the order the collectors declare them
HISTOGRAM_FAMILIES = (
    ("sglang:queue_time_seconds", "Histogram of queueing time in seconds.", "queue",
     QUEUE_BOUNDS, True),
    ("sglang:prompt_tokens_histogram", "Histogram of prompt token length.", "prompt_len",
     TOKEN_BOUNDS, False),
    ("sglang:generation_tokens_histogram", "Histogram of generation token length.", "gen_len",
     TOKEN_BOUNDS, False),
    ("sglang:time_to_first_token_seconds", "Histogram of time to first token in seconds.",
     "ttft", TTFT_BOUNDS, False),
    ("sglang:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.",
     "inter_token", ITL_BOUNDS, False),
    ("sglang:e2e_request_latency_seconds", "Histogram of End-to-end request latency in seconds",
     "e2e", E2E_BOUNDS, False),
)  # fmt: skip
HISTOGRAMS = tuple(
    HistogramSpec(family, role, tuple(float(b) for b in bounds))
    for family, _help, role, bounds, _ranked in HISTOGRAM_FAMILIES
)


# (family without prefix, help, value) in the order the scheduler collector declares them
GAUGES = (
    ("num_running_reqs", "The number of running requests.", lambda m: m.running),
    ("num_used_tokens", "The number of used tokens.",
     lambda m: float(round(m.kv_cache_usage * MAX_TOTAL_TOKENS))),
    ("token_usage", "The token usage.", lambda m: m.kv_cache_usage),
    ("pending_prealloc_token_usage",
     "The token usage for pending preallocated tokens (not preallocated yet).", lambda m: 0.0),
    ("swa_token_usage", "The token usage for SWA layers.", lambda m: 0.0),
    ("gen_throughput", "The generation throughput (token/s).",
     lambda m: round(m.conditions.tokens_per_s, 2)),
    ("num_queue_reqs", "The number of requests in the waiting queue.", lambda m: m.waiting),
    ("num_grammar_queue_reqs", "The number of requests in the grammar waiting queue.",
     lambda m: 0.0),
    ("num_running_reqs_offline_batch",
     "The number of running low-priority offline batch requests(label is 'batch').",
     lambda m: 0.0),
    ("cache_hit_rate", "The prefix cache hit rate.", lambda m: round(m.profile.cache_hit, 4)),
    ("spec_accept_length", "The average acceptance length of speculative decoding.",
     lambda m: 0.0),
    ("spec_accept_rate",
     "The average acceptance rate of speculative decoding (`accepted tokens / total draft "
     "tokens` in batch).", lambda m: 0.0),
    ("num_retracted_reqs", "The number of retracted requests.", lambda m: 0.0),
    ("num_paused_reqs", "The number of paused requests by async weight sync.", lambda m: 0.0),
    ("utilization", "The utilization.", lambda m: round(m.busy, 4)),
    ("engine_startup_time", "The time taken for the engine to start up.", lambda m: 41.3),
    ("engine_load_weights_time", "The time taken for the engine to load weights.",
     lambda m: 9.8),
    ("is_cuda_graph", "Whether the batch is using CUDA graph.", lambda m: 1.0),
)  # fmt: skip

COUNTERS = (
    ("sglang:prompt_tokens_total", "Number of prefill tokens processed.",
     lambda m: m.prompt_tokens_total),
    ("sglang:generation_tokens_total", "Number of generation tokens processed.",
     lambda m: m.generation_tokens_total),
    ("sglang:cached_tokens_total", "Number of cached prompt tokens.",
     lambda m: m.cached_tokens_total),
    ("sglang:num_requests_total", "Number of requests processed.", lambda m: m.requests_total),
    ("sglang:num_so_requests_total", "Number of structured output requests processed.",
     lambda m: float(int(m.requests_total * 0.04))),
    ("sglang:num_aborted_requests_total", "Number of requests aborted.",
     lambda m: m.errors_total),
)  # fmt: skip


def build_page(model: str, gpu_uuids: tuple[str, ...]) -> Page:
    del gpu_uuids  # SGLang's page names no GPU
    page = PageBuilder(DIALECT)
    ranked = ({"model_name": model, "tp_rank": "0"},)
    plain = ({"model_name": model},)
    page.gauge(
        "sglang:http_requests_active",
        "Number of currently active HTTP requests",
        ({"endpoint": "/v1/completions", "method": "POST"},),
        lambda m: (go_float(m.running + m.waiting),),
    )
    for name, help_text, value in GAUGES:
        page.gauge(f"sglang:{name}", help_text, ranked, _number(value))
    for family, help_text, value in COUNTERS:
        page.counter(family, help_text, ranked, _number(value))
    for family, help_text, _role, bounds, per_rank in HISTOGRAM_FAMILIES:
        page.histogram(family, help_text, ranked if per_rank else plain, bounds, _histogram(family))
    return page.build()


def _number(value: Any) -> Any:
    return lambda m: (go_float(value(m)),)


def _histogram(key: str) -> Any:
    return lambda m: (m.histograms[key],)


SPEC = EngineSpec(
    kind="sglang",
    model=MODEL,
    process="sglang::scheduler",
    histograms=HISTOGRAMS,
    build_page=build_page,
)
