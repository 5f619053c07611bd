"""Prometheus source benchmark: the console reading a fleet of 10,000 nodes through a real
Prometheus, as a fleet too large to poll node by node is read.

A synthetic fleet (`fleetdeck sim --exporters`, every node's vLLM and GPU series on a few
targets, labelled with its node and pool; `--static`, so figures hold still) runs in its own
process; a real Prometheus 2.42 scrapes it every `--interval` seconds. Once Prometheus holds
every node, with two scrapes for rates, this process runs the real collector with a
`source: {plugin: prometheus}` fleet.yaml and times `--refreshes` refreshes (the first one,
left out, settles the garbage collector as the collector's loop does): the source's fixed set
of queries sent at once and each answer decoded as it comes in (refresh latency, as the
operator waits for it), then the snapshot built over every node. CPU is getrusage of this
process per refresh; Prometheus's CPU (psutil, its process) is shown beside it, and one extra
pass records each query's own latency and answer size. Target: a refresh in <= 2 s.

    python bench/promsource.py [--nodes 10000] [--exporters 20] [--interval 15] [--refreshes 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psutil  # noqa: E402

from bench.poll import cpu_seconds  # noqa: E402
from console.collector import Collector  # noqa: E402
from console.config import load_config  # noqa: E402
from console.fleetsource import SourceWatch  # noqa: E402
from console.gcpolicy import settle_garbage_collector  # noqa: E402
from console.plugin import load_registry  # noqa: E402
from console.sim.prometheus import PrometheusProcess, ScrapeJob, ScrapeTarget  # noqa: E402

TARGET_S = 2.0
START_S = 120.0  # for the exporters to be ready, and for Prometheus to hold the fleet
WINDOW = "1m"


async def start_exporters(args: argparse.Namespace, targets: Path) -> asyncio.subprocess.Process:
    command = [sys.executable, "-m", "console", "sim", "--nodes", str(args.nodes), "--static"]
    command += ["--exporters", str(args.exporters), "--write-targets", str(targets)]
    sim = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE, cwd=ROOT)
    assert sim.stdout is not None
    async with asyncio.timeout(START_S):
        while not (line := await sim.stdout.readline()).startswith(b"ready"):
            if not line:
                raise SystemExit(f"the exporters exited before ready ({await sim.wait()})")
    return sim


def fleet_yaml(url: str, interval: float) -> str:
    timeout = min(interval, 10.0)
    return (
        f"source:\n  plugin: prometheus\n  url: {url}\n  window: {WINDOW}\n"
        f"  refresh: {{interval: {interval:g}s, timeout: {timeout:g}s}}\n"
    )


async def per_query(watch: SourceWatch) -> list[tuple[str, float, int]]:
    """(query, seconds, answer bytes) of each query, one at a time."""
    assert watch.source is not None
    rows = []
    names = [query.name for query in getattr(watch.source, "queries", [])]
    async with httpx.AsyncClient(base_url=watch.config.url, timeout=30.0) as client:
        for name, (path, body) in zip(names, watch.source.requests(time.time()), strict=True):
            started = time.perf_counter()
            response = await client.post(
                path, content=body, headers={"content-type": "application/x-www-form-urlencoded"}
            )
            rows.append((name, time.perf_counter() - started, len(response.content)))
    return rows


async def measure(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="fleetdeck-bench-") as folder:
        targets_file = Path(folder) / "targets.json"
        sim = await start_exporters(args, targets_file)
        try:
            groups = json.loads(targets_file.read_text())
            job = ScrapeJob(
                "fleet", tuple(ScrapeTarget(a) for group in groups for a in group["targets"])
            )
            async with PrometheusProcess(
                [job], interval=args.interval, timeout=min(args.interval, 10.0)
            ) as prometheus:
                loading = time.monotonic()
                count = "count(count by (node) (vllm:num_requests_running))"
                await prometheus.wait_for(count, args.nodes, within=START_S)
                rates = f"count(rate(vllm:prompt_tokens_total[{WINDOW}]))"
                await prometheus.wait_for(rates, args.nodes, within=START_S)
                print(
                    f"Prometheus holds {args.nodes:,} nodes with rates after "
                    f"{time.monotonic() - loading:.0f} s"
                )
                series = await prometheus.query('count({node!=""})')
                await run_refreshes(args, prometheus, Path(folder), float(series[0]["value"][1]))
        finally:
            sim.terminate()
            await sim.wait()


async def run_refreshes(
    args: argparse.Namespace, prometheus: PrometheusProcess, folder: Path, series: float
) -> None:
    path = folder / "fleet.yaml"
    path.write_text(fleet_yaml(prometheus.url, args.interval))
    collector = Collector(load_config(path), load_registry(folder))
    watch = collector.source
    assert watch is not None
    server = psutil.Process(prometheus.pid)
    refresh_s, refresh_cpu, build_s, build_cpu, server_cpu = [], [], [], [], []
    try:
        for _ in range(args.refreshes + 1):  # the first one warms up and is left out
            times = server.cpu_times()
            started, cpu = time.perf_counter(), cpu_seconds()
            await collector.scrape_all()
            refreshed, cpu_refreshed = time.perf_counter(), cpu_seconds()
            snapshot = collector.current()
            built, cpu_built = time.perf_counter(), cpu_seconds()
            after = server.cpu_times()
            if watch.error is not None:
                raise SystemExit(f"refresh failed: {watch.error}")
            refresh_s.append(refreshed - started)
            refresh_cpu.append(cpu_refreshed - cpu)
            build_s.append(built - refreshed)
            build_cpu.append(cpu_built - cpu_refreshed)
            server_cpu.append(after.user + after.system - times.user - times.system)
            if not refresh_s[1:]:  # after the first round, as the collector's loop does
                settle_garbage_collector()
            await asyncio.sleep(1.0)
        queries = await per_query(watch)
    finally:
        await collector.aclose()
    nodes = len(snapshot.nodes)
    warnings = watch.reading.warnings if watch.reading else ()
    report(
        args,
        nodes,
        series,
        refresh_s[1:],
        refresh_cpu[1:],
        build_s[1:],
        build_cpu[1:],
        server_cpu[1:],
        queries,
        server,
        warnings,
    )


def report(
    args: argparse.Namespace,
    nodes: int,
    series: float,
    refresh_s: list[float],
    refresh_cpu: list[float],
    build_s: list[float],
    build_cpu: list[float],
    server_cpu: list[float],
    queries: list[tuple[str, float, int]],
    server: psutil.Process,
    warnings: tuple[str, ...],
) -> None:
    def ms(values: list[float]) -> str:
        return f"{statistics.median(values) * 1000:,.0f} / {max(values) * 1000:,.0f}"

    print(
        f"\n{nodes:,} nodes in the snapshot, {series:,.0f} series in Prometheus, "
        f"{len(queries)} queries per refresh, {args.refreshes} refreshes; warnings: "
        f"{'; '.join(warnings) or 'none'}"
    )
    print("| what | p50 / max ms |\n| --- | --- |")
    print(f"| refresh: queries sent at once, answers decoded (wall) | {ms(refresh_s)} |")
    print(f"| refresh: console CPU | {ms(refresh_cpu)} |")
    print(f"| snapshot over every node (wall) | {ms(build_s)} |")
    print(f"| snapshot: console CPU | {ms(build_cpu)} |")
    print(f"| Prometheus CPU per refresh | {ms(server_cpu)} |")
    print("\n| query | alone, ms | answer KB |\n| --- | --- | --- |")
    for name, seconds, size in queries:
        print(f"| {name} | {seconds * 1000:,.0f} | {size / 1024:,.0f} |")
    rss = psutil.Process().memory_info().rss / 2**20
    print(f"\nRSS: console {rss:,.0f} MB, Prometheus {server.memory_info().rss / 2**20:,.0f} MB")
    total = statistics.median(refresh_s) + statistics.median(build_s)
    cpu = statistics.median(refresh_cpu) + statistics.median(build_cpu)
    print(
        f"RESULT refresh_p50_s={statistics.median(refresh_s):.2f} "
        f"refresh_and_snapshot_p50_s={total:.2f} console_cpu_s_per_refresh={cpu:.2f} "
        f"target={TARGET_S:g}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--exporters", type=int, default=20)
    parser.add_argument("--interval", type=float, default=15.0, help="Prometheus scrape, s")
    parser.add_argument("--refreshes", type=int, default=8)
    asyncio.run(measure(parser.parse_args()))


if __name__ == "__main__":
    main()
