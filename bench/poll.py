"""Poll benchmark: the collector's own CPU per scrape as the fleet grows.

For each fleet size, a simulated fleet runs in its own process (`fleetdeck sim --static`, every
node a full-size engine page) and this process polls every node's engine page once a second
for `--seconds`, exactly as `fleetdeck watch` does (scrape, parse, map, derive, snapshot). It
reports the collector's CPU per successful scrape (getrusage of this process), cycle time
p50/p99 (launch of a tick's scrapes to the last one's end), and the sim's CPU beside it (both
share the machine's cores). Targets (DESIGN.md): CPU per scrape flat from 100 to 1,000 nodes
and <= 0.5 ms; every cycle <= 1 s.

    python bench/poll.py [--sizes 100,500,1000] [--seconds 60] [--engines vllm]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
import yaml  # noqa: E402

from console.collector import Collector  # noqa: E402
from console.config import load_config  # noqa: E402
from console.headless import with_interval  # noqa: E402
from console.plugin import load_registry  # noqa: E402

WARMUP_S = 3.0
TARGET_MS = 0.5


def start_sim(nodes: int, engines: str, folder: Path) -> tuple[subprocess.Popen[str], Path]:
    config = folder / "fleet.yaml"
    command = [sys.executable, "-m", "console", "sim", "--nodes", str(nodes), "--static"]
    command += ["--engines", engines, "--gpus", "1", "--write-config", str(config)]
    sim = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert sim.stdout is not None
    deadline = time.monotonic() + 120
    for line in sim.stdout:
        if line.startswith("ready"):
            break
        if time.monotonic() > deadline:
            break
    else:
        raise SystemExit(f"sim with {nodes} nodes did not start (exit {sim.wait()})")
    # engine pages only: the figure compared with Prometheus is the cost of an engine scrape
    data = yaml.safe_load(config.read_text())
    for pool in data["pools"]:
        for node in pool["nodes"]:
            node.pop("agent", None)
    config.write_text(yaml.safe_dump(data))
    return sim, config


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def poll(config_path: Path, seconds: float) -> dict[str, float]:
    config = with_interval(load_config(config_path), 1.0)
    collector = Collector(config, load_registry())
    stream = collector.snapshots()
    started = time.monotonic()
    async for _ in stream:  # warm up: connections open, pages parsed once
        if time.monotonic() - started >= WARMUP_S:
            break
    ok_before = sum(t.successes for t in collector.targets)
    failed_before = sum(t.failures_total for t in collector.targets)
    collector.cycle_times.clear()
    cpu_before, wall_before = cpu_seconds(), time.monotonic()
    async for _ in stream:
        if time.monotonic() - wall_before >= seconds:
            break
    cpu, wall = cpu_seconds() - cpu_before, time.monotonic() - wall_before
    await stream.aclose()
    await collector.aclose()
    scrapes = sum(t.successes for t in collector.targets) - ok_before
    cycles = sorted(collector.cycle_times)
    return {
        "scrapes": scrapes,
        "failed": sum(t.failures_total for t in collector.targets) - failed_before,
        "cpu_ms_per_scrape": cpu * 1000 / max(scrapes, 1),
        "cpu_cores": cpu / wall,
        "cycle_p50_ms": statistics.median(cycles) * 1000,
        "cycle_p99_ms": cycles[min(len(cycles) - 1, int(len(cycles) * 0.99))] * 1000,
        "cycle_max_ms": cycles[-1] * 1000,
        "rss_mb": psutil.Process().memory_info().rss / 2**20,
        "wall": wall,
    }


def measure(nodes: int, seconds: float, engines: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="fleetdeck-bench-") as folder:
        sim, config = start_sim(nodes, engines, Path(folder))
        try:
            sim_process = psutil.Process(sim.pid)
            sim_before = sum(sim_process.cpu_times()[:2])
            figures = asyncio.run(poll(config, seconds))
            sim_cpu = sum(sim_process.cpu_times()[:2]) - sim_before
        finally:
            sim.terminate()
            sim.wait(timeout=30)
    figures["sim_cpu_cores"] = sim_cpu / figures["wall"]
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,500,1000", help="fleet sizes, comma-separated")
    parser.add_argument("--seconds", type=float, default=60.0, help="measured seconds per size")
    parser.add_argument("--engines", default="vllm", help="engine kinds of the sim's nodes")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    print(
        f"poll every 1 s for {args.seconds:g} s per size; engines: {args.engines}; "
        f"{os.cpu_count()} cores"
    )
    header = (
        "nodes",
        "scrapes",
        "failed",
        "cpu ms/scrape",
        "cores",
        "cycle p50",
        "cycle p99",
        "cycle max",
        "rss MB",
        "sim cores",
    )
    print(" | ".join(header))
    results = {}
    for size in sizes:
        figures = measure(size, args.seconds, args.engines)
        results[size] = figures
        print(
            f"{size} | {figures['scrapes']:.0f} | {figures['failed']:.0f} | "
            f"{figures['cpu_ms_per_scrape']:.3f} | {figures['cpu_cores']:.2f} | "
            f"{figures['cycle_p50_ms']:.0f} ms | {figures['cycle_p99_ms']:.0f} ms | "
            f"{figures['cycle_max_ms']:.0f} ms | {figures['rss_mb']:.0f} | "
            f"{figures['sim_cpu_cores']:.2f}",
            flush=True,
        )
    per_scrape = [results[size]["cpu_ms_per_scrape"] for size in sizes]
    spread = max(per_scrape) / min(per_scrape)
    print(f"RESULT poll_cpu_spread_{sizes[0]}_to_{sizes[-1]}={spread:.2f} target=1.5")
    largest = sizes[-1]
    print(
        f"RESULT poll_cpu_ms_per_scrape_{largest}="
        f"{results[largest]['cpu_ms_per_scrape']:.3f} target={TARGET_MS}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
