"""TGI `/metrics`, as the router's Rust metrics-exporter-prometheus writes it.

Families and buckets follow `router/src/server.rs` and the v3 backend: counters without
`_total`, a blank line after every family, some families without HELP, numbers as Rust
prints them (`109`, `541.2140316159999`), 35 exponential duration buckets from 0.00015 s,
100 linear token buckets and 1024 batch-size buckets. Requests are `tgi_request_count`,
errors `tgi_request_failure` over every `err`.
"""

from __future__ import annotations

from typing import Any

from console.sim.engines.spec import EngineSpec, HistogramSpec
from console.sim.pagetext import (
    Dialect,
    Page,
    PageBuilder,
    rust_float,
)

MODEL = "mistralai/Mistral-7B-Instruct-v0.3"
MAX_INPUT_TOKENS = 8191
MAX_TOTAL_TOKENS = 8192
DIALECT = Dialect(
    number=rust_float,
    count_suffix="",
    go_counts=False,
    bound=rust_float,
    sort_le=False,
    histogram_order=("buckets", "sum", "count"),
    counter_suffix="",
    created=False,
    family_gap="\n",
)


def _duration_bounds() -> tuple[float, ...]:
    bounds, value = [], 0.0001
    for _ in range(35):
        value *= 1.5
        bounds.append(value)
    return tuple(bounds)


DURATION_BOUNDS = _duration_bounds()
INPUT_BOUNDS = tuple((MAX_INPUT_TOKENS / 100.0) * (x + 1) for x in range(100))
TOTAL_BOUNDS = tuple((MAX_TOTAL_TOKENS / 100.0) * (x + 1) for x in range(100))
BATCH_BOUNDS = tuple(float(x + 1) for x in range(1024))
SKIPPED_QUANTILES = ("0", "0.5", "0.9", "0.95", "0.99", "0.999", "1")
PREFILL, DECODE = {"method": "prefill"}, {"method": "decode"}

# (family, help or None, [(label set, role)], bounds) in the order the exporter writes them;
# the summary tgi_request_skipped_tokens sits between the third and fourth entry
HISTOGRAM_FAMILIES: tuple[tuple[str, str | None, tuple[tuple[dict[str, str], str], ...],
                                tuple[float, ...]], ...] = (
    ("tgi_request_input_length", "Input token length per request",
     (({}, "prompt_len"),), INPUT_BOUNDS),
    ("tgi_request_max_new_tokens", "Maximum new tokens per request",
     (({}, "max_tokens"),), TOTAL_BOUNDS),
    ("tgi_request_inference_duration", "Request inference duration",
     (({}, "inference"),), DURATION_BOUNDS),
    ("tgi_batch_forward_duration", "Batch forward duration per method (prefill or decode)",
     ((PREFILL, "prefill_step"), (DECODE, "decode_step")), DURATION_BOUNDS),
    ("tgi_request_duration", "Request duration", (({}, "e2e"),), DURATION_BOUNDS),
    ("tgi_request_validation_duration", "Request validation duration",
     (({}, "validation"),), DURATION_BOUNDS),
    ("tgi_request_queue_duration", "Request queue duration", (({}, "queue"),), DURATION_BOUNDS),
    ("tgi_batch_filter_duration",
     "Time spent filtering batches and sending generated tokens per method (prefill or decode)",
     ((DECODE, "bookkeeping"), (PREFILL, "prefill_bookkeeping")), DURATION_BOUNDS),
    ("tgi_batch_inference_duration", "Batch inference duration",
     ((PREFILL, "prefill_step"), (DECODE, "decode_step")), DURATION_BOUNDS),
    ("tgi_request_mean_time_per_token_duration", "Mean time per token per request",
     (({}, "request_tpot"),), DURATION_BOUNDS),
    ("tgi_batch_concat_duration", None, ((DECODE, "bookkeeping"),), DURATION_BOUNDS),
    ("tgi_request_generated_tokens", "Generated tokens per request",
     (({}, "gen_len"),), TOTAL_BOUNDS),
    ("tgi_batch_decode_duration", "Time spent decoding a batch per method (prefill or decode)",
     ((PREFILL, "prefill_bookkeeping"), (DECODE, "bookkeeping")), DURATION_BOUNDS),
    ("tgi_batch_next_size", "Batch size of the next batch", (({}, "batch_size"),), BATCH_BOUNDS),
)  # fmt: skip


def _key(family: str, labels: dict[str, str]) -> str:
    return f"{family}:{labels['method']}" if labels else family


HISTOGRAMS = tuple(
    HistogramSpec(_key(family, labels), role, bounds)
    for family, _help, series, bounds in HISTOGRAM_FAMILIES
    for labels, role in series
)


def _failures(m: Any) -> tuple[float, float]:
    """Failed requests by `err`: (validation, generation); they sum to errors_total."""
    validation = m.errors_total * 0.2
    return validation, m.errors_total - validation


def build_page(model: str, gpu_uuids: tuple[str, ...]) -> Page:
    del model, gpu_uuids  # the router's page names neither
    page = PageBuilder(DIALECT)
    page.counter(
        "tgi_request_success",
        "Number of successful requests",
        ({},),
        lambda m: (rust_float(m.requests_total - m.errors_total),),
    )
    page.counter(
        "tgi_batch_concat",
        None,
        ({"reason": "chunking"},),
        lambda m: (str(int(m.steps_total * 0.002)),),
    )
    page.counter(
        "tgi_request_count",
        "Total number of requests",
        ({},),
        lambda m: (rust_float(m.requests_total),),
    )
    page.counter(
        "tgi_request_failure",
        None,
        ({"err": "validation"}, {"err": "generation"}),
        lambda m: tuple(rust_float(value) for value in _failures(m)),
    )
    page.counter(
        "tgi_batch_inference_success",
        "Number of successful inference calls per method (prefill or decode)",
        (PREFILL, DECODE),
        lambda m: (str(int(m.requests_total * 0.5)), str(int(m.steps_total))),
    )
    page.counter(
        "tgi_batch_inference_count",
        "Inference calls per method (prefill or decode)",
        (DECODE, PREFILL),
        lambda m: (str(int(m.steps_total)), str(int(m.requests_total * 0.5))),
    )
    page.gauge("tgi_queue_size", "Current queue size", ({},), lambda m: (rust_float(m.waiting),))
    page.gauge(
        "tgi_batch_current_max_tokens",
        "Maximum tokens for the current batch",
        ({},),
        lambda m: (rust_float(m.running * (m.profile.prompt_mean + m.profile.gen_mean) // 1),),
    )
    page.gauge(
        "tgi_batch_current_size", "Current batch size", ({},), lambda m: (rust_float(m.running),)
    )
    for index, (family, help_text, series, bounds) in enumerate(HISTOGRAM_FAMILIES):
        if index == 3:
            page.summary(
                "tgi_request_skipped_tokens",
                "Speculated tokens per request",
                ({},),
                SKIPPED_QUANTILES,
                lambda m: (
                    ("0",) * len(SKIPPED_QUANTILES) + ("0", str(int(m.generation_tokens_total)))
                ),
            )
        keys = [_key(family, labels) for labels, _role in series]
        page.histogram(
            family, help_text, [labels for labels, _role in series], bounds, _histograms(keys)
        )
    return page.build()


def _histograms(keys: list[str]) -> Any:
    return lambda m: [m.histograms[key] for key in keys]


SPEC = EngineSpec(
    kind="tgi",
    model=MODEL,
    process="text-generation-server",
    histograms=HISTOGRAMS,
    build_page=build_page,
)
