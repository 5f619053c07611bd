"""`SimExporters`: a synthetic fleet of many nodes served on a few Prometheus targets.

    async with SimExporters(nodes=10_000, exporters=20, static=True) as exporters:
        exporters.urls          # http://127.0.0.1:PORT per exporter (GET /metrics)
        exporters.jobs()        # one ScrapeJob, `fleet`, for PrometheusProcess
        exporters.models        # node name -> NodeModel, the ground truth

Each exporter serves the series of a block of consecutive nodes, every series labelled with
its `node` and `pool`: what a Prometheus holds after scraping each node's vLLM engine and
fleetdeck agent with relabelling that adds those two labels, but from a few targets instead
of two per node, so one process can stand in for a fleet of 10,000. Only the families a
Prometheus source reads are served: the vLLM ones its mapping (plugins/engines/vllm.yaml)
needs, named and labelled as vLLM writes them (counters without their `_created` twins, the
TTFT histogram with a few of vLLM's bucket bounds), and the agent's main GPU gauges, labelled
`gpu` as console/agent/exposition.py writes them. Nodes are `node-00001`..., pools `pool-a`...
in consecutive blocks, both named as `SimFleet` names them.

Values come from each node's `NodeModel`. A static fleet never moves, so each page is
rendered once at start; otherwise the models advance with the clock and a page is rendered
per scrape (reused for a tick).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from console.agent.exposition import GPU_FAMILIES, PREFIX
from console.errors import FleetdeckError
from console.httpserver import HttpServer, Request, Response, Result, error_response
from console.sim.child import Service
from console.sim.engines import vllm
from console.sim.engines.spec import EngineSpec, HistogramSpec
from console.sim.fleet import pool_name
from console.sim.model import Clock, NodeModel
from console.sim.pagetext import CONTENT_TYPE, go_float, histogram_text, label_text
from console.sim.prometheus import ScrapeJob, ScrapeTarget

NODES_PER_POOL = 100  # pools by default
DEFAULT_BUCKETS = 4
PAGE_TICK_S = 0.1  # a moving fleet's page is reused this long (scrapes are seconds apart)
JOB_NAME = "fleet"
TTFT = "vllm:time_to_first_token_seconds"
# vLLM's TTFT bounds in the order a reduced histogram takes them: the typical TTFT range
# first (tenths of a second), then outwards
TTFT_FIRST_BOUNDS = (0.1, 0.25, 1.0, 0.05, 0.5, 2.5, 0.02, 5.0)
TTFT_BOUND_ORDER = TTFT_FIRST_BOUNDS + tuple(
    bound for bound in vllm.TTFT_BOUNDS if bound not in TTFT_FIRST_BOUNDS
)
ENGINE_LABELS = {"engine": "0", "model_name": vllm.MODEL}  # as vLLM's stat logger has them
ENGINE_GAUGES = (
    "vllm:num_requests_running",
    "vllm:num_requests_waiting",
    "vllm:kv_cache_usage_perc",
)
ENGINE_COUNTERS = ("vllm:prompt_tokens", "vllm:generation_tokens")
REQUEST_SUCCESS_HELP = "Count of successfully processed requests."  # vLLM's help text
GPU_KEYS = ("util", "temp", "mem_used", "mem_total", "power")  # of the agent's GPU families

Values = Callable[[NodeModel], Sequence[str | None]]  # one text per series; None: left out


def ttft_bounds(buckets: int) -> tuple[float, ...]:
    """The finite bounds of a TTFT histogram of `buckets` buckets (+Inf included)."""
    if not 2 <= buckets <= len(TTFT_BOUND_ORDER) + 1:
        raise ValueError(f"buckets must be 2 to {len(TTFT_BOUND_ORDER) + 1} (+Inf included)")
    return tuple(sorted(TTFT_BOUND_ORDER[: buckets - 1]))


@dataclass(frozen=True, slots=True)
class Family:
    """One family of an exporter page: its header, then per node one line per series, each
    `prefix` + the node's labels + a value."""

    header: str
    prefixes: tuple[str, ...]  # `name{fixed labels,` per series; the node's labels close it
    values: Values

    def node_text(self, model: NodeModel, node_labels: str) -> str:
        return "".join(
            [
                f"{prefix}{node_labels}{value}\n"
                for prefix, value in zip(self.prefixes, self.values(model), strict=True)
                if value is not None
            ]
        )


def _family(
    name: str,
    kind: str,
    help_text: str,
    series: Sequence[tuple[str, Mapping[str, str]]],
    values: Values,
) -> Family:
    """A family with `series` (sample name, fixed labels); the node's labels sort after
    every fixed one (engine, finished_reason, gpu, le, model_name < node < pool)."""
    prefixes = tuple(
        f"{sample}{label_text(labels, sort_le=True)[:-1]}," if labels else f"{sample}{{"
        for sample, labels in series
    )
    return Family(f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n", prefixes, values)


def _one(value: Callable[[NodeModel], float]) -> Values:
    return lambda model: (go_float(value(model)),)


def exporter_families(gpus: int, bounds: Sequence[float]) -> tuple[Family, ...]:
    """The families every node shows, in page order: vLLM's, then the agent's GPU gauges."""
    scalars = {name: (help_text, value) for _kind, name, help_text, value in vllm.SCALARS}
    families = []
    for name in ENGINE_GAUGES:
        help_text, value = scalars[name]
        families.append(_family(name, "gauge", help_text, [(name, ENGINE_LABELS)], _one(value)))
    for name in ENGINE_COUNTERS:
        help_text, value = scalars[name]
        total = name + vllm.DIALECT.counter_suffix
        families.append(_family(total, "counter", help_text, [(total, ENGINE_LABELS)], _one(value)))
    success = "vllm:request_success" + vllm.DIALECT.counter_suffix
    reasons = [(success, {**ENGINE_LABELS, "finished_reason": r}) for r in vllm.FINISHED_REASONS]
    families.append(
        _family(
            success,
            "counter",
            REQUEST_SUCCESS_HELP,
            reasons,
            lambda model: [go_float(value) for value in vllm.finished(model)],
        )
    )
    families.append(_ttft_family(bounds))
    gpu_help = {key: (PREFIX + suffix, help_text) for key, suffix, help_text in GPU_FAMILIES}
    for key in GPU_KEYS:
        name, help_text = gpu_help[key]
        series = [(name, {"gpu": str(index)}) for index in range(gpus)]
        families.append(_family(name, "gauge", help_text, series, _gpu_values(key)))
    return tuple(families)


def _ttft_family(bounds: Sequence[float]) -> Family:
    """vLLM's TTFT histogram over `bounds`, its samples in vLLM's order."""
    dialect = vllm.DIALECT
    series: list[tuple[str, Mapping[str, str]]] = []
    for part in dialect.histogram_order:
        if part == "buckets":
            les = [dialect.bound(bound) for bound in bounds] + ["+Inf"]
            series += [(f"{TTFT}_bucket", {**ENGINE_LABELS, "le": le}) for le in les]
        else:
            series.append((f"{TTFT}_{part}", ENGINE_LABELS))
    help_text = next(text for name, text, *_ in vllm.HISTOGRAM_FAMILIES if name == TTFT)
    return _family(
        TTFT,
        "histogram",
        help_text,
        series,
        lambda model: histogram_text(dialect, model.histograms[TTFT]),
    )


def _gpu_values(key: str) -> Values:
    """One GPU figure per GPU, as the agent writes it; a lost GPU's is left out."""

    def values(model: NodeModel) -> list[str | None]:
        figures = [getattr(reading, key) for reading in model.gpu_readings()]
        return [None if figure is None else repr(float(figure)) for figure in figures]

    return values


@dataclass(frozen=True, slots=True)
class ExportedNode:
    name: str
    pool: str
    model: NodeModel
    labels: str  # `node="...",pool="..."} `: closes every series line up to its value


class Exporter:
    """One target: the series of a block of nodes on `GET /metrics`."""

    def __init__(
        self,
        nodes: Sequence[ExportedNode],
        families: Sequence[Family],
        host: str,
        static: bool,
        clock: Clock,
    ) -> None:
        self.nodes = tuple(nodes)
        self.families = tuple(families)
        self.server = HttpServer(self.handle, host)
        self.static = static
        self._clock = clock
        self._page: Response | None = None
        self._rendered_at = 0.0

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def address(self) -> str:
        return f"{self.server.host}:{self.server.port}"

    def render(self) -> str:
        """The page now: per family its header, then every node's lines."""
        columns: list[list[str]] = [[family.header] for family in self.families]
        for node in self.nodes:
            model = node.model
            model.advance()
            model.settle_histograms()
            for column, family in zip(columns, self.families, strict=True):
                column.append(family.node_text(model, node.labels))
        return "".join([text for column in columns for text in column])

    def page(self) -> Response:
        """The page, rendered once for a static fleet, else at most once per tick."""
        now = self._clock()
        if self._page is None or not (self.static or now - self._rendered_at < PAGE_TICK_S):
            self._page = Response(200, self.render().encode(), CONTENT_TYPE)
            self._rendered_at = now
        return self._page

    def handle(self, request: Request) -> Result:
        if request.path != "/metrics":
            return error_response(404, f"no such path {request.path}")
        if request.method != "GET":
            return Response(405, b"method not allowed\n", headers=(("Allow", "GET"),))
        return self.page()


class SimExporters(Service):
    """A simulated vLLM fleet on a few Prometheus targets; an async context manager."""

    def __init__(
        self,
        nodes: int = 10_000,
        exporters: int = 20,
        seed: int = 0,
        gpus: int = 1,
        static: bool = True,
        buckets: int = DEFAULT_BUCKETS,
        pools: int | None = None,
        host: str = "127.0.0.1",
        clock: Clock = time.monotonic,
    ) -> None:
        if nodes < 1:
            raise ValueError("a simulated fleet needs at least one node")
        if not 1 <= exporters <= nodes:
            raise ValueError(f"exporters must be 1 to {nodes} (one node at least on each)")
        if gpus < 1:
            raise ValueError("every node needs at least one GPU")
        if pools is not None and not 1 <= pools <= nodes:
            raise ValueError(f"pools must be 1 to {nodes}")
        bounds = ttft_bounds(buckets)
        self.families = exporter_families(gpus, bounds)
        spec = _reduced_spec(bounds)
        pool_count = pools if pools is not None else max(1, nodes // NODES_PER_POOL)
        per_pool = -(-nodes // pool_count)
        width = max(3, len(str(nodes)))
        wall_start = time.time()
        self.models: dict[str, NodeModel] = {}
        self.pools: dict[str, str] = {}  # node -> pool
        exported: list[ExportedNode] = []
        for index in range(nodes):
            name = f"node-{index + 1:0{width}d}"
            pool = pool_name(index // per_pool)
            model = NodeModel(
                name, spec, seed=seed, index=index, gpus=gpus, clock=clock,
                wall_start=wall_start, static=static,
            )  # fmt: skip
            self.models[name] = model
            self.pools[name] = pool
            labels = label_text({"node": name, "pool": pool}, sort_le=True)[1:] + " "
            exported.append(ExportedNode(name, pool, model, labels))
        per_exporter = -(-nodes // exporters)
        self.exporters = [
            Exporter(exported[start : start + per_exporter], self.families, host, static, clock)
            for start in range(0, nodes, per_exporter)
        ]
        self.host = host

    @property
    def series_per_node(self) -> int:
        return sum(len(family.prefixes) for family in self.families)

    @property
    def urls(self) -> list[str]:
        return [exporter.url for exporter in self.exporters]

    def jobs(self) -> tuple[ScrapeJob, ...]:
        """One job, `fleet`, over every exporter; the node labels are in the series."""
        targets = tuple(ScrapeTarget(exporter.address) for exporter in self.exporters)
        return (ScrapeJob(JOB_NAME, targets),)

    def file_sd(self) -> list[dict[str, Any]]:
        """The targets in Prometheus' file_sd format (a `file_sd_configs` file's content)."""
        return [{"targets": [exporter.address for exporter in self.exporters], "labels": {}}]

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        try:
            for exporter in self.exporters:
                await exporter.server.start()
                if exporter.static:
                    exporter.page()  # render it now: scrapes then cost nothing
        except OSError as exc:
            await self.stop()
            raise FleetdeckError(f"cannot listen on {self.host}: {exc.strerror}", "sim") from None
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        for exporter in self.exporters:
            await exporter.server.close()


def _reduced_spec(bounds: tuple[float, ...]) -> EngineSpec:
    """vLLM's spec with the one histogram the exporters show: the model keeps only that."""
    return dataclasses.replace(vllm.SPEC, histograms=(HistogramSpec(TTFT, "ttft", bounds),))
