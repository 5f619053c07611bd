"""The Prometheus fleet source: a whole fleet read from Prometheus's HTTP API in a few queries.

Each refresh sends the same fixed set of instant queries (`POST /api/v1/query`, all at once,
all evaluated at one instant), whatever the fleet's size: one per engine figure (gauges, and
rates over the window), the TTFT bucket rates, one per GPU and host figure, each node's engine
kind and model, `up`, and the newest sample's `timestamp()` with the node's pool. Each query
aggregates by the label that names a node, over every engine kind at once, so its answer holds
one series per node; the expressions come from the engine mappings (`console.promql`), so a
figure means what it means when a node is polled directly. Quantiles are worked out here from
the bucket rates (`console.rules.quantile`, as for direct polling), a pool's from its nodes'
buckets added together. Thanos, Mimir, VictoriaMetrics and Cortex answer the same API.

Each answer is decoded as it comes in, by `json.loads`, the C decoder (a Python tokenizer
would be slower than the objects it saves), then read in one tight loop per query; the
garbage collector's settings for a console (`console.gcpolicy`) keep the many short-lived
objects from setting off full collections. An answer that is an error, has `warnings`, or is
not an instant vector is reported as partial data, never dropped silently.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from urllib.parse import urlencode

from console.agent.exposition import GPU_FAMILIES, HOST_FAMILIES, PREFIX
from console.errors import SourceError
from console.fleet import SourceConfig
from console.mapping import device_numbers, gpu_sample
from console.model import (
    EngineFigures,
    FleetReading,
    GpuSample,
    Histogram,
    HostSample,
    NodeFigures,
)
from console.plugin import FleetDecoder, Registry
from console.promql import Translator, by, engine_queries, gpu_queries, selector, string
from console.rules import quantile

QUERY_PATH = "/api/v1/query"
DEVICE_LABEL = "gpu"
GPU_KINDS = ("dcgm",)  # mappings read for GPU figures


Series = list[dict[str, Any]]


@dataclass(slots=True)
class _Node:
    """A node's figures gathered over the answers, before they become a NodeFigures."""

    pool: str | None = None
    gateway: str | None = None
    engine: dict[str, Any] = field(default_factory=dict)
    ttft: dict[float, float] = field(default_factory=dict)  # bucket bound -> rate
    gpus: dict[str, dict[str, float]] = field(default_factory=dict)  # by device label
    host: dict[str, float] = field(default_factory=dict)
    targets_up: list[bool] = field(default_factory=list)
    down: list[str] = field(default_factory=list)
    sample_time: float | None = None
    engine_kind: str | None = None


Nodes = dict[str, _Node]


@dataclass(frozen=True, slots=True)
class Query:
    name: str  # what it reads, for messages
    expression: str
    read: Callable[[Series, Nodes], None]  # puts its answer's series into the nodes


class PrometheusSource:
    """Queries and decoding for one Prometheus; the collector sends the requests."""

    def __init__(self, config: SourceConfig, registry: Registry) -> None:
        self.config = config
        self.url = config.url
        labels = config.labels
        self.node_label = labels.node
        self.pool_label = labels.pool
        self.gateway_label = labels.gateway
        # figures by node alone; the node's pool (and gateway) ride on `age` only, once
        translator = Translator((labels.node,), config.window)
        engines = [m for k, m in sorted(registry.mappings.items()) if k not in GPU_KINDS]
        gpus = [registry.mappings[k] for k in GPU_KINDS if k in registry.mappings]
        self.engines = engine_queries(engines, translator)
        queries = [Query("kinds", self.engines.kinds, self._kinds)]
        queries += [
            Query(figure, expression, partial(self._figure, "engine", figure))
            for figure, expression in self.engines.figures.items()
        ]
        queries += [
            Query(f"ttft buckets x{scale:g}", expression, partial(self._buckets, scale))
            for scale, expression in self.engines.buckets.items()
        ]
        if "gpus" in config.figures:
            families = [(figure, PREFIX + suffix) for figure, suffix, _ in GPU_FAMILIES]
            queries += [
                Query(f"gpu {figure}", expression, partial(self._gpu, figure))
                for figure, expression in gpu_queries(
                    families, gpus, DEVICE_LABEL, translator
                ).items()
            ]
        if "host" in config.figures:
            queries += [
                Query(
                    f"host {figure}",
                    f"max by ({labels.node}) ({PREFIX}{suffix})",
                    partial(self._figure, "host", figure),
                )
                for figure, suffix, _ in HOST_FAMILIES
            ]
        # `up` of every target that names a node: a dead target's series go stale at once, so
        # only `up` tells a node that stopped answering from one that was never there
        queries.append(Query("up", f"up{{{labels.node}!={string('')}}}", self._up))
        placed = (labels.node, labels.pool) + ((labels.gateway,) if labels.gateway else ())
        newest = selector({PREFIX + "gpu_util", *self.engines.kind_of})
        queries.append(Query("age", f"max {by(placed)} (timestamp({newest}))", self._age))
        self.queries = tuple(queries)

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

    def decoder(self, at: float) -> FleetDecoder:
        return _Decoder(self, at)

    # --- one loop per query: each answer holds one figure ------------------------------------

    def _each(self, series: Series, nodes: Nodes) -> Iterator[tuple[_Node, Any, float]]:
        """(node, labels, value) of each series that names a node and has a number."""
        label = self.node_label
        for each in series:
            metric = each["metric"]
            name = metric.get(label)
            if not name:
                continue
            value = float(each["value"][1])
            if value != value:  # NaN: a ratio of nothing
                continue
            node = nodes.get(name)
            if node is None:
                node = nodes[name] = _Node()
            yield node, metric, value

    def _figure(self, part: str, figure: str, series: Series, nodes: Nodes) -> None:
        for node, _, value in self._each(series, nodes):
            getattr(node, part)[figure] = value

    def _kinds(self, series: Series, nodes: Nodes) -> None:
        kind_of, model_label = self.engines.kind_of, self.engines.model_label
        for node, metric, _ in self._each(series, nodes):
            kind = node.engine_kind = kind_of.get(metric.get("__name__", ""))
            label = model_label.get(kind or "")
            if label is not None and metric.get(label):
                node.engine["model"] = metric[label]

    def _buckets(self, scale: float, series: Series, nodes: Nodes) -> None:
        for node, metric, value in self._each(series, nodes):
            try:
                node.ttft[float(metric["le"]) * scale] = value
            except (KeyError, ValueError):
                continue  # a bucket without a usable bound cannot be placed

    def _gpu(self, figure: str, series: Series, nodes: Nodes) -> None:
        for node, metric, value in self._each(series, nodes):
            node.gpus.setdefault(metric.get(DEVICE_LABEL, ""), {})[figure] = value

    def _up(self, series: Series, nodes: Nodes) -> None:
        for node, metric, value in self._each(series, nodes):
            node.targets_up.append(value == 1)
            if value != 1:
                node.down.append(f"{metric.get('job', '?')} {metric.get('instance', '?')}")

    def _age(self, series: Series, nodes: Nodes) -> None:
        pool_label, gateway_label = self.pool_label, self.gateway_label
        for node, metric, value in self._each(series, nodes):
            node.sample_time = value
            node.pool = metric.get(pool_label) or None
            if gateway_label is not None:
                node.gateway = metric.get(gateway_label) or None

    def figures(self, name: str, node: _Node) -> NodeFigures:
        engine = None
        values = node.engine
        if values or node.ttft:
            requests, errors = values.pop("requests_per_s", None), values.pop("errors_per_s", None)
            if (
                errors is None
                and requests is not None
                and node.engine_kind in self.engines.counting_errors
            ):
                errors = 0.0  # the engine counts errors, and has counted none
            error_rate = None if errors is None or not requests else min(errors / requests, 1.0)
            ttft = _histogram(node.ttft) if node.ttft else None
            engine = EngineFigures(
                requests_per_s=requests,
                error_rate=error_rate,
                ttft_p50_s=quantile(0.5, ttft),
                ttft_p95_s=quantile(0.95, ttft),
                **values,
            )
        gpus: list[GpuSample] = []
        # numbered by their label, else in the labels' order (answers come in any order)
        devices = dict(sorted(node.gpus.items()))
        numbers = device_numbers(devices) or range(len(devices))
        for index, figures in zip(numbers, devices.values(), strict=True):
            lost = bool(figures.pop("lost", 0.0))  # the agent's 0/1 gauge
            gpus.append(gpu_sample(index, figures, lost=lost))
        gpus.sort(key=lambda gpu: gpu.index)
        return NodeFigures(
            name=name,
            pool=node.pool,
            gateway=node.gateway,
            up=any(node.targets_up) if node.targets_up else None,
            down=tuple(node.down),
            sample_time=node.sample_time,
            engine=engine,
            gpus=tuple(gpus) if gpus else None,
            host=HostSample(**node.host) if node.host else None,
            engine_kind=node.engine_kind,
        )


class _Decoder:
    """One refresh's answers, each read into the nodes as it comes in."""

    def __init__(self, source: PrometheusSource, at: float) -> None:
        self.source = source
        self.at = at
        self.nodes: Nodes = {}
        self.warnings: list[tuple[int, str]] = []  # (query, warning): told in query order
        self.usable = 0

    def feed(self, index: int, status: int, body: bytes) -> None:
        query = self.source.queries[index]
        try:
            series, said = _vector(status, body)
        except SourceError as exc:
            self.warnings.append((index, f"{query.name}: {exc}"))
            return
        self.usable += 1
        self.warnings += [(index, f"{query.name}: {text}") for text in said]
        query.read(series, self.nodes)

    def finish(self) -> FleetReading:
        warnings = [text for _, text in sorted(self.warnings)]
        if self.usable == 0:
            raise SourceError(warnings[0] if warnings else "no answer")
        nodes, figures = self.nodes, self.source.figures
        return FleetReading(
            time=self.at,
            nodes={name: figures(name, node) for name, node in nodes.items()},
            pool_ttft_p95_s=_pool_quantiles(nodes.values()),
            warnings=tuple(warnings),
        )


def _pool_quantiles(nodes: Iterable[_Node]) -> dict[str, float]:
    """Each pool's TTFT p95 from its nodes' bucket rates, added bound by bound."""
    pools: dict[str, dict[float, float]] = {}
    for node in nodes:
        if node.ttft and node.pool is not None:
            merged = pools.setdefault(node.pool, {})
            for bound, rate in node.ttft.items():
                merged[bound] = merged.get(bound, 0.0) + rate
    return {
        pool: p95
        for pool, buckets in pools.items()
        if (p95 := quantile(0.95, _histogram(buckets))) is not None
    }


def _histogram(buckets: Mapping[float, float]) -> Histogram:
    """Bucket rates as a cumulative histogram (the quantile needs no count or sum)."""
    ordered = tuple(sorted(buckets.items()))
    return Histogram(ordered, ordered[-1][1], 0.0)


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
