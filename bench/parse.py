"""Parse speed: console.promtext against prometheus_client's text parser, in the same run.

Run from the repository root: `.venv/bin/python bench/parse.py`. For each real upstream page
in ../shared/fixtures/metrics and for a full-size vLLM V1 page (the simulator's, or one built
here when the simulator is not importable) it prints the median time of a full parse and of a
parse of the families an engine mapping reads, against prometheus_client's
`text_string_to_metric_families` (its generator fully consumed). The last line is the figure
the design gates on: the wanted-families speedup on the full-size vLLM page.
"""

from __future__ import annotations

import gc
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary  # noqa: E402
from prometheus_client.exposition import generate_latest  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from console.promtext import parse  # noqa: E402

FIXTURES = ROOT.parent / "shared" / "fixtures" / "metrics"
WANTED_TARGET = 20.0
FULL_TARGET = 3.0
ROUNDS = 9
ROUND_S = 0.03  # each round repeats the parse for at least this long

# The families each engine mapping reads (docs/engine-mappings.md), by page name prefix.
WANTED = {
    "vllm": frozenset(
        {
            "vllm:num_requests_running",
            "vllm:num_requests_waiting",
            "vllm:kv_cache_usage_perc",
            "vllm:gpu_cache_usage_perc",
            "vllm:prompt_tokens",
            "vllm:generation_tokens",
            "vllm:request_success",
            "vllm:time_to_first_token_seconds",
            "vllm:e2e_request_latency_seconds",
        }
    ),
    "sglang": frozenset(
        {
            "sglang:num_running_reqs",
            "sglang:num_queue_reqs",
            "sglang:token_usage",
            "sglang:prompt_tokens",
            "sglang:generation_tokens",
            "sglang:num_requests",
            "sglang:num_aborted_requests",
            "sglang:time_to_first_token_seconds",
            "sglang:e2e_request_latency_seconds",
        }
    ),
    "tgi": frozenset(
        {
            "tgi_batch_current_size",
            "tgi_queue_size",
            "tgi_request_input_length",
            "tgi_request_generated_tokens",
            "tgi_request_count",
            "tgi_request_failure",
            "tgi_request_duration",
        }
    ),
    "triton": frozenset(
        {
            "nv_trt_llm_request_metrics",
            "nv_inference_pending_request_count",
            "nv_trt_llm_kv_cache_block_metrics",
            "nv_inference_request_success",
            "nv_inference_request_failure",
            "nv_inference_first_response_histogram_ms",
        }
    ),
    "nim": frozenset(
        {
            "num_requests_running",
            "num_requests_waiting",
            "kv_cache_usage_perc",
            "gpu_cache_usage_perc",
            "prompt_tokens",
            "generation_tokens",
            "request_success",
            "request_failure",
            "time_to_first_token_seconds",
            "e2e_request_latency_seconds",
        }
    ),
    "dcgm": frozenset(
        {
            "DCGM_FI_DEV_GPU_UTIL",
            "DCGM_FI_DEV_FB_USED",
            "DCGM_FI_DEV_FB_FREE",
            "DCGM_FI_DEV_FB_RESERVED",
            "DCGM_FI_DEV_GPU_TEMP",
            "DCGM_FI_DEV_POWER_USAGE",
            "DCGM_FI_DEV_POWER_MGMT_LIMIT",
            "DCGM_FI_DEV_XID_ERRORS",
        }
    ),
    # Not an engine mapping: the endpoint picker's pool figures a gateway view would read.
    "llmd": frozenset(
        {
            "inference_pool_average_kv_cache_utilization",
            "inference_pool_average_queue_size",
            "inference_pool_ready_pods",
            "inference_objective_request",
            "inference_objective_request_error",
            "inference_objective_request_duration_seconds",
        }
    ),
}

# --- the full-size vLLM V1 page ------------------------------------------------------------

# What a vLLM server's default registry adds before its own families.
PROCESS_FAMILIES = """\
# HELP python_gc_objects_collected_total Objects collected during gc
# TYPE python_gc_objects_collected_total counter
python_gc_objects_collected_total{generation="0"} 216053.0
python_gc_objects_collected_total{generation="1"} 132419.0
python_gc_objects_collected_total{generation="2"} 27877.0
# HELP python_gc_objects_uncollectable_total Uncollectable objects found during GC
# TYPE python_gc_objects_uncollectable_total counter
python_gc_objects_uncollectable_total{generation="0"} 0.0
python_gc_objects_uncollectable_total{generation="1"} 0.0
python_gc_objects_uncollectable_total{generation="2"} 0.0
# HELP python_gc_collections_total Number of times this generation was collected
# TYPE python_gc_collections_total counter
python_gc_collections_total{generation="0"} 4321.0
python_gc_collections_total{generation="1"} 2648.0
python_gc_collections_total{generation="2"} 557.0
# HELP python_info Python platform information
# TYPE python_info gauge
python_info{implementation="CPython",major="3",minor="12",patchlevel="11",version="3.12.11"} 1.0
# HELP process_virtual_memory_bytes Virtual memory size in bytes.
# TYPE process_virtual_memory_bytes gauge
process_virtual_memory_bytes 4.563242768e+010
# HELP process_resident_memory_bytes Resident memory size in bytes.
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 5.1001e+09
# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.
# TYPE process_start_time_seconds gauge
process_start_time_seconds 1.75e+09
# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 5231.53
# HELP process_open_fds Number of open file descriptors.
# TYPE process_open_fds gauge
process_open_fds 112.0
# HELP process_max_fds Maximum number of open file descriptors.
# TYPE process_max_fds gauge
process_max_fds 1.048576e+06
"""
ONE_TWO_FIVE = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000)
REQUEST_SECONDS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0)
REQUEST_SECONDS += (60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0)
TOKEN_SECONDS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0)
TOKEN_SECONDS += (7.5, 10.0, 20.0, 40.0, 80.0)
FIRST_TOKEN_SECONDS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0)
FIRST_TOKEN_SECONDS += (2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
VLLM_GAUGES = {
    "num_requests_running": 3,
    "num_requests_waiting": 1,
    "kv_cache_usage_perc": 0.42,
    "gpu_cache_usage_perc": 0.42,
}
VLLM_COUNTERS = (
    "num_preemptions",
    "prompt_tokens",
    "generation_tokens",
    "prefix_cache_queries",
    "prefix_cache_hits",
)
VLLM_HISTOGRAMS = {
    "iteration_tokens_total": (1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384),
    "request_prompt_tokens": ONE_TWO_FIVE,
    "request_generation_tokens": ONE_TWO_FIVE,
    "request_max_num_generation_tokens": ONE_TWO_FIVE,
    "request_params_n": (1, 2, 5, 10, 20),
    "request_params_max_tokens": ONE_TWO_FIVE,
    "time_to_first_token_seconds": FIRST_TOKEN_SECONDS,
    "time_per_output_token_seconds": TOKEN_SECONDS,
    "inter_token_latency_seconds": TOKEN_SECONDS,
    "e2e_request_latency_seconds": REQUEST_SECONDS,
    "request_queue_time_seconds": REQUEST_SECONDS,
    "request_inference_time_seconds": REQUEST_SECONDS,
    "request_prefill_time_seconds": REQUEST_SECONDS,
    "request_decode_time_seconds": REQUEST_SECONDS,
}


def built_vllm_page() -> str:
    """A vLLM V1 page (vllm/v1/metrics/loggers.py families, labels `model_name` and `engine`)
    with its HTTP server's families, written by prometheus_client as vLLM writes it."""
    registry = CollectorRegistry()
    handlers = ("/v1/completions", "/v1/chat/completions", "/metrics", "/health", "/v1/models")
    requests = Counter(
        "http_requests", "Total requests by method, status and handler.",
        ("handler", "method", "status"), registry=registry,
    )  # fmt: skip
    sizes = Summary("http_request_size_bytes", "Request sizes.", ("handler",), registry=registry)
    replies = Summary("http_response_size_bytes", "Reply sizes.", ("handler",), registry=registry)
    durations = Histogram(
        "http_request_duration_seconds", "Latency by handler.", ("handler", "method"),
        buckets=(0.1, 0.5, 1.0), registry=registry,
    )  # fmt: skip
    for handler in handlers:
        method = "POST" if handler.startswith("/v1/c") else "GET"
        requests.labels(handler, method, "2xx").inc(5)
        sizes.labels(handler).observe(100)
        replies.labels(handler).observe(2000)
        durations.labels(handler, method).observe(0.3)
    Histogram(
        "http_request_duration_highr_seconds", "Latency with many buckets.", registry=registry,
        buckets=(0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5,
                 5, 7.5, 10, 30, 60),
    ).observe(0.2)  # fmt: skip

    engine = ("model_name", "engine")
    model = ("meta-llama/Llama-3.1-8B-Instruct", "0")
    Gauge(
        "vllm:cache_config_info", "Information of the LLMEngine CacheConfig",
        ("block_size", "cache_dtype", "enable_prefix_caching", "gpu_memory_utilization",
         "num_cpu_blocks", "num_gpu_blocks", "num_gpu_blocks_override", "sliding_window"),
        registry=registry,
    ).labels("16", "auto", "True", "0.9", "2048", "27600", "None", "None").set(1)  # fmt: skip
    for name, value in VLLM_GAUGES.items():
        Gauge(f"vllm:{name}", f"vLLM {name}.", engine, registry=registry).labels(*model).set(value)
    for name in VLLM_COUNTERS:
        Counter(f"vllm:{name}", f"vLLM {name}.", engine, registry=registry).labels(*model).inc(1e5)
    success = Counter(
        "vllm:request_success", "Count of successfully processed requests.",
        (*engine, "finished_reason"), registry=registry,
    )  # fmt: skip
    for reason in ("stop", "length", "abort"):
        success.labels(*model, reason).inc(77)
    for name, bounds in VLLM_HISTOGRAMS.items():
        histogram = Histogram(
            f"vllm:{name}", f"Histogram of {name}.", engine, buckets=bounds, registry=registry
        ).labels(*model)
        for value in (0.02, 0.7, 3.0, 42.0, 900.0):
            histogram.observe(value)
    return PROCESS_FAMILIES + generate_latest(registry).decode()


def full_size_vllm_page() -> tuple[str, str]:
    try:
        from console.sim.pages import example_page
    except ImportError as error:
        print(f"simulator not importable ({error}); using the page built here", file=sys.stderr)
        return "vllm V1 page (built here)", built_vllm_page()
    return "vllm V1 page (simulator)", example_page("vllm")


# --- timing --------------------------------------------------------------------------------


def median_ms(call: Callable[[], object]) -> float:
    """Median over ROUNDS of the mean time of one call, each round at least ROUND_S long."""
    repeats = 1
    while True:
        started = time.perf_counter()
        for _ in range(repeats):
            call()
        if time.perf_counter() - started >= ROUND_S:
            break
        repeats *= 2
    times = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for _ in range(repeats):
            call()
        times.append((time.perf_counter() - started) / repeats)
    return statistics.median(times) * 1000


def measure(text: str, wanted: frozenset[str]) -> tuple[float, float, float]:
    """prometheus_client, full and wanted parse times in ms, after checking the wanted parse
    finds something and gives exactly the full parse's families."""
    full = parse(text)
    fast = parse(text, wanted)
    assert fast.families, "no wanted family on the page"
    assert fast.families == {n: f for n, f in full.families.items() if n in wanted}
    gc.collect()
    gc.disable()  # as timeit does: collections would land on whichever parser runs then
    try:
        baseline = median_ms(lambda: list(text_string_to_metric_families(text)))
        return baseline, median_ms(lambda: parse(text)), median_ms(lambda: parse(text, wanted))
    finally:
        gc.enable()


def row(page: str, text: str, wanted: frozenset[str]) -> tuple[float, float]:
    baseline, full, fast = measure(text, wanted)
    print(
        f"{page:<48} {len(text.encode()):>7} {len(text.splitlines()):>6} {baseline:>9.3f} "
        f"{full:>8.3f} {baseline / full:>6.1f}x {fast:>8.4f} {baseline / fast:>6.1f}x"
    )
    return baseline / full, baseline / fast


def main() -> int:
    print(
        f"{'page':<48} {'bytes':>7} {'lines':>6} {'prom ms':>9} {'full ms':>8} {'ratio':>7} "
        f"{'wanted ms':>8} {'ratio':>7}"
    )
    if FIXTURES.is_dir():
        for path in sorted(FIXTURES.glob("*.prom")):
            row(path.name, path.read_text(encoding="utf-8"), WANTED[path.name.split("-")[0]])
    else:
        print(f"fixtures not found at {FIXTURES}; only the full-size page", file=sys.stderr)
    name, text = full_size_vllm_page()
    full_speedup, wanted_speedup = row(name, text, WANTED["vllm"])
    print(f"RESULT parse_full_speedup={full_speedup:.1f} target={FULL_TARGET:g}")
    print(f"RESULT parse_wanted_speedup={wanted_speedup:.1f} target={WANTED_TARGET:g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
