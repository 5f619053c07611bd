"""Engine mappings as PromQL: the canonical figures of a whole fleet, computed server-side.

The same declarative mappings that read one scraped page (`console.mapping`) are turned into
expressions over every series a Prometheus holds, aggregated by the label that names a node:
gauges fold as the mapping folds them (sum, or max for fractions), counters become `rate()`
over the window, histograms their bucket rates by `le` (the reader works the quantiles out, so
one rate per bucket serves a node's p50 and p95 and its pool's p95).

One query per figure, batched over every node and every engine kind (`A or B`: a node runs one
engine, so the kinds' series never collide). Figures are told apart by the query they answer,
not by tags: `label_replace` costs Prometheus more than the aggregation it would label, and the
tag would be repeated in every series of the answer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from console.mapping import (
    EngineMapping,
    FamilyReader,
    FirstOf,
    HistogramReader,
    SumReader,
)

# canonical counter -> the rate figure it becomes (EngineFigures' names, errors aside)
RATES = {
    "requests_total": "requests_per_s",
    "errors_total": "errors_per_s",
    "generation_tokens_total": "tokens_per_s",
    "prompt_tokens_total": "prompt_tokens_per_s",
}
GAUGES = ("running", "waiting", "kv_cache_usage")


def string(text: str) -> str:
    """A PromQL string literal (its escapes are Go's, which JSON's are a subset of)."""
    return json.dumps(text)


def selector(names: Iterable[str], match: Sequence[tuple[str, frozenset[str]]] = ()) -> str:
    ordered = sorted(names)  # a counter with and without `_total`: a regex over both names
    if len(ordered) == 1:
        matchers = [f"__name__={string(ordered[0])}"]
    else:
        matchers = [f"__name__=~{string('|'.join(re.escape(n) for n in ordered))}"]
    for label, allowed in match:
        alternatives = "|".join(re.escape(value) for value in sorted(allowed))
        matchers.append(f"{label}=~{string(alternatives)}")
    return "{" + ",".join(matchers) + "}"


def by(labels: Sequence[str]) -> str:
    return f"by ({', '.join(labels)})"


def _scaled(expression: str, scale: float) -> str:
    return expression if scale == 1.0 else f"({expression}) * {scale!r}"


def either(parts: Iterable[str | None]) -> str | None:
    known = [part for part in parts if part is not None]
    if not known:
        return None
    return known[0] if len(known) == 1 else " or ".join(f"({part})" for part in known)


class Translator:
    """Turns one mapping's readers into PromQL grouped by `group` labels over `window`."""

    def __init__(self, group: Sequence[str], window: float) -> None:
        self.group = tuple(group)
        self.range = f"[{max(1, round(window * 1000))}ms]"

    def gauge(self, reader: object) -> str | None:
        if isinstance(reader, FamilyReader):
            fold = "max" if reader.fold is max else "sum"
            expression = f"{fold} {by(self.group)} ({selector(reader.sample_names, reader.match)})"
            if reader.zero_with is not None:
                present = f"count {by(self.group)} ({selector([reader.zero_with])})"
                expression = f"({expression}) or ({present} * 0)"
            return _scaled(expression, reader.scale)
        return self._combined(reader, self.gauge)

    def rate(self, reader: object) -> str | None:
        """A counter's rate. A labelled counter with no series yet (no errors counted) is
        left out, not 0: the source knows which engines count errors and fills the 0."""
        if isinstance(reader, FamilyReader):
            chosen = selector(reader.sample_names, reader.match)
            return _scaled(f"sum {by(self.group)} (rate({chosen}{self.range}))", reader.scale)
        return self._combined(reader, self.rate)

    def buckets(self, reader: object) -> list[tuple[float, str]]:
        """(scale of the bounds, bucket rates by `le`) of each alternative histogram: a label's
        value cannot be multiplied in PromQL, so the reader scales the bounds."""
        if isinstance(reader, HistogramReader):
            chosen = selector([reader.bucket_name], reader.match)
            group = by((*self.group, "le"))
            return [(reader.scale, f"sum {group} (rate({chosen}{self.range}))")]
        if isinstance(reader, FirstOf):
            return [each for alt in reader.alternatives for each in self.buckets(alt)]
        return []

    def _combined(self, reader: object, part: Callable[[object], str | None]) -> str | None:
        if isinstance(reader, FirstOf):
            return either(part(alt) for alt in reader.alternatives)
        if isinstance(reader, SumReader):
            parts = [part(each) for each in reader.parts]
            if any(each is None for each in parts):
                return None
            return _scaled("(" + " + ".join(f"({each})" for each in parts) + ")", reader.scale)
        return None


@dataclass(frozen=True, slots=True)
class EngineQueries:
    """The engine figures of every kind, one expression each."""

    figures: dict[str, str]  # canonical figure -> its expression over every kind
    buckets: dict[float, str]  # scale of the bounds -> the TTFT bucket rates of those kinds
    kinds: str  # which kind (by family name) and model each node serves
    kind_of: dict[str, str]  # family (sample) name -> engine kind
    model_label: dict[str, str]  # engine kind -> the label holding its model
    counting_errors: frozenset[str]  # kinds that count failed requests


def engine_queries(mappings: Sequence[EngineMapping], translator: Translator) -> EngineQueries:
    figures: dict[str, list[str | None]] = {}
    buckets: dict[float, list[str | None]] = {}
    kind_of: dict[str, str] = {}
    model_label: dict[str, str] = {}
    for mapping in mappings:
        section = mapping.engine
        if section is None:
            continue
        scalars = dict(section.scalars)
        for figure in GAUGES:
            if figure in scalars:
                figures.setdefault(figure, []).append(translator.gauge(scalars[figure]))
        for counter, figure in RATES.items():
            if counter in scalars:
                figures.setdefault(figure, []).append(translator.rate(scalars[counter]))
        ttft = dict(section.histograms).get("ttft_seconds")
        for scale, expression in [] if ttft is None else translator.buckets(ttft):
            buckets.setdefault(scale, []).append(expression)
        if "running" in scalars:
            kind_of.update(dict.fromkeys(_sample_names(scalars["running"]), mapping.kind))
        if section.model_label is not None:
            model_label[mapping.kind] = section.model_label
    labels = (*translator.group, "__name__", *sorted(set(model_label.values())))
    return EngineQueries(
        figures={f: e for f, parts in figures.items() if (e := either(parts)) is not None},
        buckets={s: e for s, parts in buckets.items() if (e := either(parts)) is not None},
        kinds=f"count {by(labels)} ({selector(kind_of)})",
        kind_of=kind_of,
        model_label=model_label,
        counting_errors=frozenset(
            m.kind for m in mappings if m.engine and "errors_total" in dict(m.engine.scalars)
        ),
    )


def _sample_names(reader: object) -> frozenset[str]:
    """The sample names a gauge figure reads, every alternative's."""
    if isinstance(reader, FamilyReader):
        return reader.sample_names
    if isinstance(reader, FirstOf | SumReader):
        parts = reader.alternatives if isinstance(reader, FirstOf) else reader.parts
        return frozenset(name for part in parts for name in _sample_names(part))
    return frozenset()


def gpu_queries(
    figures: Sequence[tuple[str, str]],
    mappings: Sequence[EngineMapping],
    device_label: str,
    translator: Translator,
) -> dict[str, str]:
    """Each GPU figure's expression, one series per node and device: from plain gauge
    families (`figures`: canonical name, family, as the node agent exposes them) and from the
    GPU sections of mappings (dcgm-exporter), the first known winning. Devices are told apart
    by `device_label` whatever label a mapping reads them from."""
    group = (*translator.group, device_label)
    expressions = {}
    for figure, family in figures:
        parts: list[str | None] = [f"max {by(group)} ({selector([family])})"]
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
        combined = either(parts)
        if combined is not None:
            expressions[figure] = combined
    return expressions
