"""vLLM (V1 engine) `/metrics`, as its PrometheusStatLogger and prometheus_client write it.

Families, help texts and bucket bounds follow `vllm/v1/metrics/loggers.py` (v0.10 era),
labels `model_name` and `engine`; counters are exposed with `_total` and `_created`
families, labels sorted, numbers as Go-style floats. The process and GC families of
prometheus_client's default collectors come first, the HTTP instrumentator's families last.
`finished_reason` carries `error` as newer releases do: errors are
`vllm:request_success_total{finished_reason="error"}`, requests the sum over every reason.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from console.sim.engines.spec import EngineSpec, HistogramSpec
from console.sim.pagetext import Dialect, Page, PageBuilder, go_float

MODEL = "meta-llama/Llama-3.1-8B"
MAX_MODEL_LEN = 131072
DIALECT = Dialect(
    number=go_float,
    count_suffix=".0",
    go_counts=True,
    bound=go_float,
    sort_le=True,
    histogram_order=("buckets", "count", "sum"),
    counter_suffix="_total",
    created=True,
    family_gap="",
)
FINISHED_REASONS = ("stop", "length", "abort", "error")
LENGTH_SHARE = 0.2  # of the requests that did not fail, how many hit max_tokens
ABORT_SHARE = 0.005


def one_two_five(limit: int) -> tuple[float, ...]:
    """1, 2, 5, 10, 20, 50, ... up to `limit`: vLLM's `build_1_2_5_buckets`."""
    bounds: list[float] = []
    scale = 1
    while True:
        for mantissa in (1, 2, 5):
            if mantissa * scale > limit:
                return tuple(bounds)
            bounds.append(float(mantissa * scale))
        scale *= 10


TOKEN_BOUNDS = one_two_five(MAX_MODEL_LEN)
REQUEST_LATENCY_BOUNDS = (
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0,
    40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0,
)  # fmt: skip
TPOT_BOUNDS = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75,
    1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
)  # fmt: skip
TTFT_BOUNDS = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5,
    0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
)  # fmt: skip
ITERATION_BOUNDS = (1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)
PREFILL_TOKEN_BOUNDS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
HIGHR_BOUNDS = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0,
    2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 7.5, 10.0, 30.0, 60.0,
)  # fmt: skip
HANDLER_BOUNDS = (0.1, 0.5, 1.0)
HANDLERS = (("/v1/chat/completions", 0.7), ("/v1/completions", 0.3))

# (family, help, role, bounds) in the order the stat logger registers them
HISTOGRAM_FAMILIES = (
    ("vllm:request_prompt_tokens", "Number of prefill tokens processed.", "prompt_len",
     TOKEN_BOUNDS),
    ("vllm:request_generation_tokens", "Number of generation tokens processed.", "gen_len",
     TOKEN_BOUNDS),
    ("vllm:iteration_tokens_total", "Histogram of number of tokens per engine_step.",
     "iteration_tokens", ITERATION_BOUNDS),
    ("vllm:request_max_num_generation_tokens",
     "Histogram of maximum number of requested generation tokens.", "max_tokens", TOKEN_BOUNDS),
    ("vllm:request_params_n", "Histogram of the n request parameter.", "n_param",
     (1, 2, 5, 10, 20)),
    ("vllm:request_params_max_tokens", "Histogram of the max_tokens request parameter.",
     "max_tokens", TOKEN_BOUNDS),
    ("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.",
     "ttft", TTFT_BOUNDS),
    ("vllm:time_per_output_token_seconds",
     "Histogram of time per output token in seconds.DEPRECATED: Use "
     "vllm:inter_token_latency_seconds instead.", "inter_token", TPOT_BOUNDS),
    ("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.",
     "inter_token", TPOT_BOUNDS),
    ("vllm:time_per_prefill_token_request_seconds",
     "Time spent per token during prefill  phase in seconds", "prefill_per_token",
     PREFILL_TOKEN_BOUNDS),
    ("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", "e2e",
     REQUEST_LATENCY_BOUNDS),
    ("vllm:request_queue_time_seconds", "Histogram of time spent in WAITING phase for request.",
     "queue", REQUEST_LATENCY_BOUNDS),
    ("vllm:request_inference_time_seconds",
     "Histogram of time spent in RUNNING phase for request.", "inference",
     REQUEST_LATENCY_BOUNDS),
    ("vllm:request_prefill_time_seconds", "Histogram of time spent in PREFILL phase for request.",
     "prefill", REQUEST_LATENCY_BOUNDS),
    ("vllm:request_decode_time_seconds", "Histogram of time spent in DECODE phase for request.",
     "decode", REQUEST_LATENCY_BOUNDS),
    ("http_request_duration_highr_seconds",
     "Latency with many buckets but no API specific labels. Made for more accurate percentile "
     "calculations. ", "e2e", HIGHR_BOUNDS),
)  # fmt: skip
HISTOGRAMS = tuple(
    HistogramSpec(family, role, tuple(float(b) for b in bounds))
    for family, _help, role, bounds in HISTOGRAM_FAMILIES
) + tuple(
    HistogramSpec(f"http_request_duration_seconds:{handler}", "e2e", HANDLER_BOUNDS, weight=share)
    for handler, share in HANDLERS
)


def finished(m: Any) -> tuple[float, float, float, float]:
    """Requests by finished_reason (stop, length, abort, error); they sum to requests_total."""
    succeeded = m.requests_total - m.errors_total
    length = succeeded * LENGTH_SHARE
    abort = succeeded * ABORT_SHARE
    return succeeded - length - abort, length, abort, m.errors_total


# (type, family, help, value) of the stat logger's one-series families, in registration order;
# between `kv_cache_usage_perc` and `prefix_cache_queries` sits `engine_sleep_state`
SCALARS: tuple[tuple[str, str, str, Callable[[Any], float]], ...] = (
    ("gauge", "vllm:num_requests_running", "Number of requests in model execution batches.",
     lambda m: m.running),
    ("gauge", "vllm:num_requests_waiting", "Number of requests waiting to be processed.",
     lambda m: m.waiting),
    ("gauge", "vllm:gpu_cache_usage_perc",
     "GPU KV-cache usage. 1 means 100 percent usage.DEPRECATED: Use vllm:kv_cache_usage_perc "
     "instead.", lambda m: m.kv_cache_usage),
    ("counter", "vllm:gpu_prefix_cache_queries",
     "GPU prefix cache queries, in terms of number of queriedtokens. DEPRECATED: Use "
     "vllm:prefix_cache_queries instead.", lambda m: m.prompt_tokens_total),
    ("counter", "vllm:gpu_prefix_cache_hits",
     "GPU prefix cache hits, in terms of number of cached tokens. DEPRECATED: Use "
     "vllm:prefix_cache_hits instead.", lambda m: m.cached_tokens_total),
    ("gauge", "vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.",
     lambda m: m.kv_cache_usage),
    ("counter", "vllm:prefix_cache_queries",
     "Prefix cache queries, in terms of number of queried tokens.",
     lambda m: m.prompt_tokens_total),
    ("counter", "vllm:prefix_cache_hits",
     "Prefix cache hits, in terms of number of cached tokens.", lambda m: m.cached_tokens_total),
    ("counter", "vllm:num_preemptions", "Cumulative number of preemption from the engine.",
     lambda m: m.preemptions_total),
    ("counter", "vllm:prompt_tokens", "Number of prefill tokens processed.",
     lambda m: m.prompt_tokens_total),
    ("counter", "vllm:generation_tokens", "Number of generation tokens processed.",
     lambda m: m.generation_tokens_total),
)  # fmt: skip
SLEEP_STATES = ("awake", "weights_offloaded", "discard_all")
CACHE_CONFIG = {
    "block_size": "16",
    "cache_dtype": "auto",
    "calculate_kv_scales": "False",
    "cpu_offload_gb": "0",
    "enable_prefix_caching": "True",
    "gpu_memory_utilization": "0.9",
    "is_attention_free": "False",
    "num_cpu_blocks": "None",
    "num_gpu_blocks": "29127",
    "num_gpu_blocks_override": "None",
    "prefix_caching_hash_algo": "builtin",
    "sliding_window": "None",
    "swap_space": "4",
    "swap_space_bytes": "4294967296",
}
PYTHON = {"implementation": "CPython", "major": "3", "minor": "12", "patchlevel": "11",
          "version": "3.12.11"}  # fmt: skip
GC_SHARES = (3.1, 1.9, 0.4)  # objects collected per request, by generation
# (type, family, help, value) of prometheus_client's process collector
PROCESS = (
    ("gauge", "process_virtual_memory_bytes", "Virtual memory size in bytes.",
     lambda m: 4.563232768e10 + 1.0e4 * m.running),
    ("gauge", "process_resident_memory_bytes", "Resident memory size in bytes.",
     lambda m: 5.1e9 + 1.0e4 * m.running),
    ("gauge", "process_start_time_seconds",
     "Start time of the process since unix epoch in seconds.",
     lambda m: round(m.created_wall, 2)),
    ("counter", "process_cpu_seconds", "Total user and system CPU time spent in seconds.",
     lambda m: round(m.uptime_s * 0.92 + m.requests_total * 0.003, 2)),
    ("gauge", "process_open_fds", "Number of open file descriptors.",
     lambda m: float(71 + int(m.running))),
    ("gauge", "process_max_fds", "Maximum number of open file descriptors.",
     lambda m: 1048576.0),
)  # fmt: skip


def build_page(model: str, gpu_uuids: tuple[str, ...]) -> Page:
    del gpu_uuids  # vLLM's page names no GPU
    page = PageBuilder(DIALECT)
    _default_collectors(page)
    labels = {"model_name": model, "engine": "0"}
    for kind, name, help_text, value in SCALARS:
        _scalar(page, kind, name, help_text, (labels,), value, created=True)
        if name == "vllm:kv_cache_usage_perc":
            page.gauge(
                "vllm:engine_sleep_state",
                "Engine sleep state; awake = 0 means engine is sleeping; awake = 1 means engine "
                "is awake; weights_offloaded = 1 means sleep level 1; discard_all = 1 means "
                "sleep level 2.",
                [{**labels, "sleep_state": state} for state in SLEEP_STATES],
                lambda m: ("1.0", "0.0", "0.0"),
            )
    page.counter(
        "vllm:request_success",
        "Count of successfully processed requests.",
        [{**labels, "finished_reason": reason} for reason in FINISHED_REASONS],
        lambda m: tuple(go_float(value) for value in finished(m)),
        _created(len(FINISHED_REASONS)),
    )
    for family, help_text, _role, bounds in HISTOGRAM_FAMILIES:
        if not family.startswith("http_"):
            page.histogram(family, help_text, (labels,), bounds, _histograms(family), _created())
    page.gauge(
        "vllm:cache_config_info",
        "Information of the LLMEngine CacheConfig",
        ({**CACHE_CONFIG, "engine": "0"},),
        lambda m: ("1.0",),
    )
    _http_families(page)
    return page.build()


def _scalar(
    page: PageBuilder,
    kind: str,
    name: str,
    help_text: str,
    series: tuple[dict[str, str], ...],
    value: Callable[[Any], float],
    created: bool = False,
) -> None:
    """A one-series family; `created`: a counter with a `_created` family (the stat logger's
    counters have one, the default collectors' do not)."""

    def produce(m: Any) -> tuple[str]:
        return (go_float(value(m)),)

    if kind == "gauge":
        page.gauge(name, help_text, series, produce)
    else:
        page.counter(name, help_text, series, produce, _created() if created else None)


def _created(count: int = 1) -> Callable[[Any], tuple[str, ...]]:
    return lambda m: (m.created_text,) * count


def _histograms(*keys: str) -> Callable[[Any], list[Any]]:
    return lambda m: [m.histograms[key] for key in keys]


def _default_collectors(page: PageBuilder) -> None:
    """prometheus_client's default collectors: GC, platform and process families."""
    generations = [{"generation": str(generation)} for generation in range(3)]
    page.counter(
        "python_gc_objects_collected",
        "Objects collected during gc",
        generations,
        lambda m: tuple(go_float(float(int(m.requests_total * share))) for share in GC_SHARES),
    )
    page.counter(
        "python_gc_objects_uncollectable",
        "Uncollectable objects found during GC",
        generations,
        lambda m: ("0.0", "0.0", "0.0"),
    )
    page.counter(
        "python_gc_collections",
        "Number of times this generation was collected",
        generations,
        lambda m: tuple(go_float(float(int(m.requests_total * share / 50))) for share in GC_SHARES),
    )
    page.gauge("python_info", "Python platform information", (PYTHON,), lambda m: ("1.0",))
    for kind, name, help_text, value in PROCESS:
        _scalar(page, kind, name, help_text, ({},), value)


def _http_families(page: PageBuilder) -> None:
    """prometheus-fastapi-instrumentator's default families (vLLM excludes /metrics)."""
    handlers = [handler for handler, _share in HANDLERS]
    page.counter(
        "http_requests",
        "Total number of requests by method, status and handler.",
        [{"handler": handler, "method": "POST", "status": "2xx"} for handler in handlers],
        lambda m: tuple(go_float(float(int(m.requests_total * s))) for _h, s in HANDLERS),
        _created(len(HANDLERS)),
    )
    for name, direction, per_token, tokens in (
        ("http_request_size_bytes", "incoming requests", 2.4, "prompt_tokens_total"),
        ("http_response_size_bytes", "outgoing responses", 4.1, "generation_tokens_total"),
    ):
        page.summary(
            name,
            f"Content length of {direction} by handler. Only value of header is respected. "
            "Otherwise ignored. No percentile calculated. ",
            [{"handler": handler} for handler in handlers],
            (),
            _sizes(per_token, tokens),
            _created(len(HANDLERS)),
            parts=("count", "sum"),
        )
    page.histogram(
        "http_request_duration_highr_seconds",
        HISTOGRAM_FAMILIES[-1][1],
        ({},),
        HIGHR_BOUNDS,
        _histograms("http_request_duration_highr_seconds"),
        _created(),
    )
    page.histogram(
        "http_request_duration_seconds",
        "Latency with only few buckets by handler. Made to be only used if aggregation by "
        "handler is important. ",
        [{"handler": handler, "method": "POST"} for handler in handlers],
        HANDLER_BOUNDS,
        _histograms(*(f"http_request_duration_seconds:{handler}" for handler in handlers)),
        _created(len(HANDLERS)),
    )


def _sizes(per_token: float, tokens: str) -> Callable[[Any], tuple[str, ...]]:
    """Request or response sizes per handler: (count, sum) pairs, bytes following tokens."""

    def produce(m: Any) -> tuple[str, ...]:
        per_request = per_token * getattr(m, tokens) / max(m.requests_total, 1.0)
        values: list[str] = []
        for _handler, share in HANDLERS:
            requests = float(int(m.requests_total * share))
            values += [go_float(requests), go_float(round(requests * per_request))]
        return tuple(values)

    return produce


SPEC = EngineSpec(
    kind="vllm",
    model=MODEL,
    process="VLLM::EngineCore",
    histograms=HISTOGRAMS,
    build_page=build_page,
)
