"""A frozen fleet read through a fleet source (a Prometheus), for the TUI's pilots and snapshot
tests: four nodes in two pools, all discovered from the source's labels, each node's only
target its share of the source's reading.

It is built through the console's own path (`SourceWatch.targets` and `.status`,
`merged_fleet`, `build_snapshot`) from one fixed reading at fixed times: the watch is handed
its last good refresh instead of sending one, so nothing here touches the network or a clock.
The source is healthy, or has been down (or answering in part) for a given number of seconds.
"""

from __future__ import annotations

from console.fleet import Alerts, FleetConfig, Refresh, SourceConfig
from console.fleetsource import SourceWatch, merged_fleet
from console.model import EngineFigures, FleetReading, GpuSample, HostSample, NodeFigures, Snapshot
from console.plugin import load_registry
from console.snapshot import build_snapshot
from tests.tui.frozen import GIB, NOW

URL = "http://prom:9090"
REFRESH = Refresh(interval=10.0, timeout=5.0)  # stale after 3 intervals: 30 s
ALERTS = Alerts()
NO_ANSWER = f"no answer within {REFRESH.timeout:g} s"  # a SourceWatch's words for a timeout
REFRESH_MS = 180.0  # the last good refresh's duration
READ_AT = 10_000.0  # the monotonic time of the last good refresh
SAMPLE_LAG_S = 1.0  # how much older than the refresh each node's newest sample is
MODELS = {"chat": "llama-3.1-8b-instruct", "code": "qwen2.5-coder-7b"}
NODE_POOLS = ("chat", "chat", "code", "code")  # the pool of node-001, node-002…


def _figures(index: int, pool: str, at: float) -> NodeFigures:
    """node-001, node-002…: a little busier each."""
    busy = 48.0 + 9 * index
    engine = EngineFigures(
        running=6 + index,
        waiting=index % 2,
        kv_cache_usage=0.31 + 0.05 * index,
        requests_per_s=1.5 + 0.25 * index,
        tokens_per_s=820 + 40 * index,
        prompt_tokens_per_s=2400 + 100 * index,
        error_rate=0.001 * index,
        ttft_p50_s=0.12,
        ttft_p95_s=0.34 + 0.02 * index,
        model=MODELS[pool],
    )
    gpus = tuple(
        GpuSample(
            index=gpu,
            uuid=f"GPU-{index:02d}{gpu:02d}",
            name="NVIDIA L40S",
            util=busy + 3 * gpu,
            mem_used=(30 + index) * GIB,
            mem_total=48.0 * GIB,
            temp=58.0 + index + gpu,
            power=190.0 + 10 * index,
            power_limit=350.0,
            ecc_uncorrected=0,
        )
        for gpu in range(2)
    )
    return NodeFigures(
        name=f"node-{index + 1:03d}",
        pool=pool,
        up=True,
        sample_time=at - SAMPLE_LAG_S,
        engine=engine,
        gpus=gpus,
        host=HostSample(cpu=22.0 + index, mem_used=96 * GIB, mem_total=512 * GIB),
        engine_kind="vllm",
    )


def _reading(at: float, warnings: tuple[str, ...]) -> FleetReading:
    figures = [_figures(index, pool, at) for index, pool in enumerate(NODE_POOLS)]
    nodes = {node.name: node for node in figures}
    return FleetReading(time=at, nodes=nodes, pool_ttft_p95_s={}, warnings=warnings)


def sourced(
    *,
    since_s: float = 0.4,
    error: str | None = None,
    warnings: tuple[str, ...] = (),
    url: str = URL,
) -> Snapshot:
    """The fleet at `NOW`, `since_s` after the source's last good refresh; `error` is why the
    refreshes since failed (None: the source is up), `warnings` its last answer's gaps."""
    config = SourceConfig("prometheus", url, refresh=REFRESH)
    listed = FleetConfig(path=None, refresh=REFRESH, alerts=ALERTS, source=config)
    watch = SourceWatch(config, load_registry())
    reading = _reading(NOW - since_s, warnings)
    watch.reading, watch.read_at, watch.last_ok = reading, READ_AT, READ_AT
    watch.error, watch.refresh_ms = error, REFRESH_MS if error is None else 1000 * REFRESH.timeout
    now = READ_AT + since_s
    fleet = merged_fleet(listed, reading)
    return build_snapshot(
        fleet,
        watch.targets(fleet),
        now,
        NOW,
        sources=(watch.status(now, ALERTS.stale_after),),
        pool_ttft_p95=reading.pool_ttft_p95_s,
    )
