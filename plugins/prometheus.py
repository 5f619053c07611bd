"""The Prometheus fleet source: a whole fleet read from Prometheus's HTTP API in a few queries.

Each refresh sends the same fixed set of instant queries (`POST /api/v1/query`, all evaluated
at one instant), whatever the fleet's size: the engine gauges, the engine rates, the TTFT
quantiles, the GPU and host gauges, `up`, and the newest sample's `timestamp()`. Every query
aggregates by the labels that name a node and its pool, so the answer holds one series per node
and figure; the expressions come from the engine mappings (`console.promql`), so figures mean
what they mean when a node is polled directly. Thanos, Mimir, VictoriaMetrics and Cortex answer
the same API.

Answers are decoded with `json.loads` (the C decoder: the fastest way to read JSON in Python,
and every string it makes is one this source keeps) and read in one pass per query; an answer
that is an error, has `warnings`, or is not an instant vector is reported as partial data, not
dropped silently.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlencode

from console.agent.exposition import GPU_FAMILIES, HOST_FAMILIES, PREFIX
from console.errors import SourceError
from console.fleet import SourceConfig
from console.model import EngineFigures, FleetReading, GpuSample, HostSample, NodeFigures
from console.plugin import Registry
from console.promql import (
    ENGINE_LABEL,
    FIGURE_LABEL,
    MODEL_LABEL,
    POOL_TTFT_P95,
    Translator,
    by,
    engine_figures,
    gpu_figures,
    tagged,
    union,
)

QUERY_PATH = "/api/v1/query"
DEVICE_LABEL = "gpu"
GPU_KINDS = ("dcgm",)  # mappings read for GPU figures
_GPU_INTEGERS = frozenset({"last_xid"})


@dataclass(frozen=True, slots=True)
class Query:
    name: str  # what it reads, for messages
    expression: str


@dataclass
class _Node:
    """A node's figures gathered over the answers, before they become a NodeFigures."""

    pool: str | None = None
    gateway: str | None = None
    engine: dict[str, Any] = field(default_factory=dict)
    gpus: dict[int, dict[str, Any]] = field(default_factory=dict)
    host: dict[str, float] = field(default_factory=dict)
    targets_up: list[bool] = field(default_factory=list)
    down: list[str] = field(default_factory=list)
    sample_time: float | None = None
    engine_kind: str | None = None


class PrometheusSource:
    """Queries and decoding for one Prometheus; the collector sends the requests."""

    def __init__(self, config: SourceConfig, registry: Registry) -> None:
        self.config = config
        self.url = config.url
        labels = config.labels
        self.node_label = labels.node
        self.pool_label = labels.pool
        self.gateway_label = labels.gateway
        group = [labels.node, labels.pool] + ([labels.gateway] if labels.gateway else [])
        self.group = tuple(group)
        translator = Translator(self.group, config.window)
        engines = [m for k, m in sorted(registry.mappings.items()) if k not in GPU_KINDS]
        gpus = [registry.mappings[k] for k in GPU_KINDS if k in registry.mappings]
        batches = engine_figures(engines, translator)
        queries = [Query(name, union(parts) or "") for name, parts in batches.items() if parts]
        if "gpus" in config.figures:
            families = [(figure, PREFIX + suffix) for figure, suffix, _ in GPU_FAMILIES]
            expressions = gpu_figures(families, gpus, DEVICE_LABEL, translator)
            queries.append(Query("gpus", union(expressions) or ""))
        if "host" in config.figures:
            host = [
                tagged(f"max {by(self.group)} ({PREFIX}{suffix})", FIGURE_LABEL, figure)
                for figure, suffix, _ in HOST_FAMILIES
            ]
            queries.append(Query("host", union(host) or ""))
        # `up` of every target that names a node: a dead target's series go stale at once, so
        # only `up` tells a node that stopped answering from one that was never there
        queries.append(Query("up", f"up{{{labels.node}!=''}}"))
        newest = [self._families(m) for m in engines] + [[PREFIX + "gpu_util"]]
        names = "|".join(sorted({name for each in newest for name in each}))
        queries.append(Query("age", f'max {by(self.group)} (timestamp({{__name__=~"{names}"}}))'))
        self.queries = tuple(queries)

    @staticmethod
    def _families(mapping: Any) -> list[str]:
        section = mapping.engine
        return [] if section is None else [f for f in section.model_families[:1]]

    def requests(self, at: float) -> list[tuple[str, bytes]]:
        """(path, form body) of each query, evaluated at epoch `at`."""
        timeout = f"{max(1.0, self.config.refresh.timeout):g}s"
        return [
            (
                QUERY_PATH,
                urlencode(
                    {"query": query.expression, "time": f"{at:.3f}", "timeout": timeout}
                ).encode(),
            )
            for query in self.queries
        ]

    def decode(self, answers: Sequence[tuple[int, bytes]], at: float) -> FleetReading:
        """The fleet in the answers (one per query, in order); SourceError when none is usable."""
        nodes: dict[str, _Node] = {}
        pool_ttft: dict[str, float] = {}
        warnings: list[str] = []
        usable = 0
        for query, (status, body) in zip(self.queries, answers, strict=True):
            try:
                result = _vector(status, body)
            except SourceError as exc:
                warnings.append(f"{query.name}: {exc}")
                continue
            usable += 1
            warnings += [f"{query.name}: {text}" for text in result[1]]
            self._read(query.name, result[0], nodes, pool_ttft)
        if usable == 0:
            raise SourceError(warnings[0] if warnings else "no answer")
        return FleetReading(
            time=at,
            nodes={name: self._figures(name, node) for name, node in nodes.items()},
            pool_ttft_p95_s=pool_ttft,
            warnings=tuple(warnings),
        )

    def _read(
        self,
        query: str,
        series: list[dict[str, Any]],
        nodes: dict[str, _Node],
        pool_ttft: dict[str, float],
    ) -> None:
        node_label, pool_label, gateway_label = self.node_label, self.pool_label, self.gateway_label
        for each in series:
            metric = each["metric"]
            value = float(each["value"][1])
            if value != value:  # NaN: a quantile of no requests, a rate of nothing
                continue
            figure = metric.get(FIGURE_LABEL)
            if figure == POOL_TTFT_P95:
                pool = metric.get(pool_label)
                if pool and math.isfinite(value):
                    pool_ttft[pool] = value
                continue
            name = metric.get(node_label)
            if not name:
                continue
            node = nodes.get(name)
            if node is None:
                node = nodes[name] = _Node()
            if node.pool is None:
                node.pool = metric.get(pool_label) or None
            if gateway_label and node.gateway is None:
                node.gateway = metric.get(gateway_label) or None
            if query == "up":
                node.targets_up.append(value == 1)
                if value != 1:
                    node.down.append(f"{metric.get('job', '?')} {metric.get('instance', '?')}")
            elif query == "age":
                node.sample_time = value
            elif query == "gpus":
                device = metric.get(DEVICE_LABEL, "")
                index = int(device) if device.isdigit() else len(node.gpus)
                node.gpus.setdefault(index, {})[figure] = value
            elif query == "host":
                node.host[figure] = value
            elif figure == "model":
                node.engine["model"] = metric.get(MODEL_LABEL)
            elif figure is not None:
                node.engine[figure] = value
                if figure == "running":
                    node.engine_kind = metric.get(ENGINE_LABEL)

    def _figures(self, name: str, node: _Node) -> NodeFigures:
        engine = None
        if node.engine:
            values = node.engine
            requests, errors = values.pop("requests_per_s", None), values.pop("errors_per_s", None)
            error_rate = None if errors is None or not requests else min(errors / requests, 1.0)
            engine = EngineFigures(requests_per_s=requests, error_rate=error_rate, **values)
        gpus = None
        if node.gpus:
            gpus = tuple(_gpu(index, values) for index, values in sorted(node.gpus.items()))
        return NodeFigures(
            name=name,
            pool=node.pool,
            gateway=node.gateway,
            up=any(node.targets_up) if node.targets_up else None,
            down=tuple(node.down),
            sample_time=node.sample_time,
            engine=engine,
            gpus=gpus,
            host=HostSample(**node.host) if node.host else None,
            engine_kind=node.engine_kind,
        )


def _gpu(index: int, values: Mapping[str, float]) -> GpuSample:
    figures: dict[str, Any] = dict(values)
    for name in _GPU_INTEGERS & figures.keys():
        figures[name] = int(figures[name]) or None  # XID 0: none seen
    figures["lost"] = bool(figures.pop("lost", 0.0))
    return replace(GpuSample(index=index), **figures)


def _vector(status: int, body: bytes) -> tuple[list[dict[str, Any]], list[str]]:
    """An instant query's series and warnings; SourceError saying why there are none."""
    try:
        answer = json.loads(body)
    except ValueError:
        raise SourceError(f"HTTP {status}: not JSON: {body[:80]!r}") from None
    if not isinstance(answer, dict):
        raise SourceError(f"HTTP {status}: not a Prometheus answer")
    if answer.get("status") != "success":
        kind = answer.get("errorType", "error")
        raise SourceError(f"HTTP {status}: {kind}: {answer.get('error', 'no reason given')}")
    data = answer.get("data") or {}
    kind = data.get("resultType")
    if kind != "vector":
        raise SourceError(f"resultType {kind!r}, expected 'vector'")
    result = data.get("result")
    if not isinstance(result, list):
        raise SourceError("no result list in the answer")
    warnings = answer.get("warnings") or []
    return result, [str(text) for text in warnings]


def register(registry: Registry) -> None:
    def prometheus_source(config: SourceConfig, registry: Registry) -> PrometheusSource:
        return PrometheusSource(config, registry)

    registry.add_fleet_source("prometheus", prometheus_source)
