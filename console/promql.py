"""Engine mappings as PromQL: the canonical figures of a whole fleet, computed server-side.

The same declarative mappings that read one scraped page (`console.mapping`) are turned into
expressions over every series a Prometheus holds, aggregated by the labels that name a node
(and its pool): gauges fold as the mapping folds them (sum, or max for fractions), counters
become `rate()` over the window, histograms `histogram_quantile()` of the summed bucket rates.
Each expression is tagged with the figure it computes (`label_replace` into FIGURE_LABEL) and
the engine kind (ENGINE_LABEL), so many figures travel in one query: `A or B or C` keeps every
series, their label sets differing in the tag.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence

from console.mapping import (
    EngineMapping,
    FamilyReader,
    FirstOf,
    HistogramReader,
    SumReader,
)

FIGURE_LABEL = "fleetdeck_figure"
ENGINE_LABEL = "fleetdeck_engine"
MODEL_LABEL = "fleetdeck_model"

# canonical counter -> the rate figure it becomes (EngineFigures' names, errors aside)
RATES = {
    "requests_total": "requests_per_s",
    "errors_total": "errors_per_s",
    "generation_tokens_total": "tokens_per_s",
    "prompt_tokens_total": "prompt_tokens_per_s",
}
GAUGES = ("running", "waiting", "kv_cache_usage")
QUANTILES = (("ttft_p50_s", 0.5), ("ttft_p95_s", 0.95))
POOL_TTFT_P95 = "pool_ttft_p95_s"


def string(text: str) -> str:
    """A PromQL string literal (its escapes are Go's, which JSON's are a subset of)."""
    return json.dumps(text)


def _selector(names: Iterable[str], match: Sequence[tuple[str, frozenset[str]]] = ()) -> str:
    ordered = sorted(names)
    if len(ordered) == 1:
        matchers = [f"__name__={string(ordered[0])}"]
    else:
        matchers = [f"__name__=~{string('|'.join(re.escape(n) for n in ordered))}"]
    for label, allowed in match:
        alternatives = "|".join(re.escape(value) for value in sorted(allowed))
        matchers.append(f"{label}=~{string(alternatives)}")
    return "{" + ",".join(matchers) + "}"


def _scaled(expression: str, scale: float) -> str:
    return expression if scale == 1.0 else f"({expression}) * {scale!r}"


def tagged(expression: str, label: str, value: str) -> str:
    return f"label_replace({expression}, {string(label)}, {string(value)}, '', '')"


def by(labels: Sequence[str]) -> str:
    return f"by ({', '.join(labels)})"


class Translator:
    """Turns one mapping's readers into PromQL grouped by `group` labels over `window`."""

    def __init__(self, group: Sequence[str], window: float) -> None:
        self.group = tuple(group)
        self.range = f"[{max(1, round(window * 1000))}ms]"

    def gauge(self, reader: object) -> str | None:
        if isinstance(reader, FamilyReader):
            fold = "max" if reader.fold is max else "sum"
            expression = f"{fold} {by(self.group)} ({_selector(reader.sample_names, reader.match)})"
            if reader.zero_with is not None:
                present = f"count {by(self.group)} ({_selector([reader.zero_with])})"
                expression = f"({expression}) or ({present} * 0)"
            return _scaled(expression, reader.scale)
        return self._combined(reader, self.gauge)

    def rate(self, reader: object) -> str | None:
        if isinstance(reader, FamilyReader):
            window = self.range
            chosen = _selector(reader.sample_names, reader.match)
            expression = f"sum {by(self.group)} (rate({chosen}{window}))"
            if reader.match or reader.zero_with is not None:
                # a labelled counter has no series until it counts: 0 while the family is there
                family = reader.sample_names if reader.zero_with is None else [reader.zero_with]
                anything = f"sum {by(self.group)} (rate({_selector(family)}{window}))"
                expression = f"({expression}) or ({anything} * 0)"
            return _scaled(expression, reader.scale)
        return self._combined(reader, self.rate)

    def quantile(self, reader: object, q: float, group: Sequence[str] | None = None) -> str | None:
        labels = (*(self.group if group is None else group), "le")
        if isinstance(reader, HistogramReader):
            buckets = _selector([reader.bucket_name], reader.match)
            rates = f"sum {by(labels)} (rate({buckets}{self.range}))"
            return _scaled(f"histogram_quantile({q!r}, {rates})", reader.scale)
        if isinstance(reader, FirstOf):
            parts = [self.quantile(alt, q, group) for alt in reader.alternatives]
            return _either(parts)
        return None

    def _combined(self, reader: object, part: Callable[[object], str | None]) -> str | None:
        if isinstance(reader, FirstOf):
            return _either([part(alt) for alt in reader.alternatives])
        if isinstance(reader, SumReader):
            parts = [part(each) for each in reader.parts]
            if any(each is None for each in parts):
                return None
            return _scaled("(" + " + ".join(f"({each})" for each in parts) + ")", reader.scale)
        return None


def _either(parts: Sequence[str | None]) -> str | None:
    known = [part for part in parts if part is not None]
    if not known:
        return None
    return known[0] if len(known) == 1 else " or ".join(f"({part})" for part in known)


def union(parts: Iterable[str]) -> str | None:
    """Many tagged expressions as one query."""
    return _either(list(parts))


def engine_figures(
    mappings: Sequence[EngineMapping], translator: Translator
) -> dict[str, list[str]]:
    """Per query kind (`gauges`, `rates`, `quantiles`), the tagged expressions of every engine
    mapping: one series per node and figure (per pool for the pool's TTFT p95)."""
    batches: dict[str, list[str]] = {"gauges": [], "rates": [], "quantiles": []}
    for mapping in mappings:
        section = mapping.engine
        if section is None:
            continue
        scalars = dict(section.scalars)
        histograms = dict(section.histograms)

        def add(batch: str, figure: str, expression: str | None, kind: str = mapping.kind) -> None:
            if expression is not None:
                tagged_figure = tagged(expression, FIGURE_LABEL, figure)
                batches[batch].append(tagged(tagged_figure, ENGINE_LABEL, kind))

        for figure in GAUGES:
            if figure in scalars:
                add("gauges", figure, translator.gauge(scalars[figure]))
        if section.model_label is not None and "running" in scalars:
            add("gauges", "model", _model(scalars["running"], section.model_label, translator))
        for counter, figure in RATES.items():
            if counter in scalars:
                add("rates", figure, translator.rate(scalars[counter]))
        ttft = histograms.get("ttft_seconds")
        if ttft is not None:
            for figure, q in QUANTILES:
                add("quantiles", figure, translator.quantile(ttft, q))
            pool = translator.group[1:2]  # the pool label: the pool's own quantile
            add("quantiles", POOL_TTFT_P95, translator.quantile(ttft, 0.95, pool))
    return batches


def _model(reader: object, label: str, translator: Translator) -> str | None:
    """Which model a node serves: its label on the first family of the `running` figure."""
    while isinstance(reader, FirstOf):
        reader = reader.alternatives[0]
    if not isinstance(reader, FamilyReader):
        return None
    copied = (
        f"label_replace({_selector(reader.sample_names)}, {string(MODEL_LABEL)}, '$1', "
        f"{string(label)}, '(.+)')"
    )
    return f"count {by((*translator.group, MODEL_LABEL))} ({copied})"


def gpu_figures(
    figures: Sequence[tuple[str, str]],
    mappings: Sequence[EngineMapping],
    device_label: str,
    translator: Translator,
) -> list[str]:
    """Tagged expressions of each GPU figure, one series per node, device and figure: from
    plain gauge families (`figures`: canonical name, family, as the node agent exposes them)
    and from the GPU sections of mappings (dcgm-exporter), the first known winning. Devices
    are told apart by `device_label` whatever label a mapping reads them from."""
    group = (*translator.group, device_label)
    expressions = []
    for figure, family in figures:
        parts: list[str | None] = [f"max {by(group)} ({_selector([family])})"]
        for mapping in mappings:
            section = mapping.gpus
            readers = {} if section is None else dict(section.figures)
            if section is None or figure not in readers:
                continue
            per_device = Translator((*translator.group, section.device_label), 0.0)
            expression = per_device.gauge(readers[figure])
            if expression is not None and section.device_label != device_label:
                expression = (
                    f"label_replace({expression}, {string(device_label)}, '$1', "
                    f"{string(section.device_label)}, '(.*)')"
                )
            parts.append(expression)
        combined = _either(parts)
        if combined is not None:
            expressions.append(tagged(combined, FIGURE_LABEL, figure))
    return expressions
