"""Poll benchmark: the collector's own CPU per scrape as the fleet grows.

For each fleet size, a simulated fleet runs in its own process (`fleetdeck sim --static`, every
node a full-size engine page) and this process polls every node's engine page every interval
for `--seconds`, exactly as `fleetdeck watch` does (scrape, parse, map, derive, snapshot). It
reports the collector's CPU per successful scrape (getrusage of this process), cycle time
p50/p99 (launch of a tick's scrapes to the last one's end), and the sim's CPU beside it (both
share the machine's cores). `--interval auto` polls every second up to 1,000 nodes and every
nodes/1,000 seconds above (5 s at 5,000). Targets (DESIGN.md): CPU per scrape flat across the
sizes and <= 0.5 ms; every cycle within its interval; 1,000 nodes at 1 s and 5,000 at 5 s each
under one core.

    python bench/poll.py [--sizes 100,500,1000,2000,5000] [--seconds 60] [--interval auto]
                         [--engines vllm]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import select
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
import yaml  # noqa: E402

from console.collector import Collector  # noqa: E402
from console.config import load_config  # noqa: E402
from console.errors import FleetdeckError  # noqa: E402
from console.headless import with_interval  # noqa: E402
from console.plugin import load_registry  # noqa: E402

WARMUP_S = 3.0
WARMUP_TICKS = 2  # the first round opens every connection and learns every page's layout
TARGET_MS = 0.5
TARGET_SPREAD = 1.5
SIM_START_S = 300.0
SIM_STOP_S = 30.0
SPARE_FILES = 64  # this process's own files beside one connection per target
NODES_PER_SECOND = 1000  # `--interval auto`: the fleet size polled every second


def interval_for(nodes: int) -> float:
    """The auto interval: 1 s up to 1,000 nodes, then one second per 1,000 nodes."""
    return max(1.0, nodes / NODES_PER_SECOND)


def start_sim(nodes: int, engines: str, folder: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """`fleetdeck sim --static` with `nodes` one-GPU nodes, once it is ready, and its
    fleet.yaml with the engine pages only."""
    config = folder / "fleet.yaml"
    command = [sys.executable, "-m", "console", "sim", "--nodes", str(nodes), "--static"]
    command += ["--engines", engines, "--gpus", "1", "--write-config", str(config)]
    sim = subprocess.Popen(command, stdout=subprocess.PIPE, cwd=ROOT)
    try:
        _wait_ready(sim, nodes)
    except BaseException:
        stop_sim(sim)
        raise
    # engine pages only: the figure compared with Prometheus is the cost of an engine scrape
    data = yaml.safe_load(config.read_text())
    for pool in data["pools"]:
        for node in pool["nodes"]:
            node.pop("agent", None)
    config.write_text(yaml.safe_dump(data))
    return sim, config


def _wait_ready(sim: subprocess.Popen[bytes], nodes: int) -> None:
    """Read the sim's stdout until its `ready` line, for at most SIM_START_S."""
    assert sim.stdout is not None
    deadline = time.monotonic() + SIM_START_S
    said = b"\n"
    while b"\nready " not in said:
        left = deadline - time.monotonic()
        if left <= 0:
            raise SystemExit(f"sim with {nodes} nodes: not ready within {SIM_START_S:g} s")
        readable, _, _ = select.select([sim.stdout], [], [], left)
        if not readable:
            continue
        chunk = os.read(sim.stdout.fileno(), 4096)
        if not chunk:
            raise SystemExit(f"sim with {nodes} nodes: exited before ready ({sim.wait()})")
        said += chunk


def stop_sim(sim: subprocess.Popen[bytes]) -> None:
    sim.terminate()
    try:
        sim.wait(timeout=SIM_STOP_S)
    except subprocess.TimeoutExpired:
        sim.kill()
        sim.wait()
    if sim.stdout is not None:
        sim.stdout.close()


@contextlib.contextmanager
def running_sim(nodes: int, engines: str) -> Iterator[tuple[psutil.Process, Path]]:
    """A ready sim fleet (its process, its engine-only fleet.yaml), stopped on the way out."""
    with tempfile.TemporaryDirectory(prefix="fleetdeck-bench-") as folder:
        sim, config = start_sim(nodes, engines, Path(folder))
        try:
            yield psutil.Process(sim.pid), config
        finally:
            stop_sim(sim)


def raise_open_files(connections: int) -> None:
    """Raise this process's soft open-files limit so `connections` connections fit (the
    collector keeps one per target)."""
    wanted = connections + SPARE_FILES
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return
    if hard != resource.RLIM_INFINITY and hard < wanted:
        raise SystemExit(
            f"open-files hard limit {hard} < {wanted} for {connections} connections: "
            f"raise it (ulimit -Hn {wanted})"
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def process_cpu_seconds(process: psutil.Process) -> float:
    """User and system CPU of a process and its waited-for children."""
    times = process.cpu_times()
    return times.user + times.system + times.children_user + times.children_system


async def poll(
    config_path: Path, seconds: float, interval: float, sim: psutil.Process
) -> dict[str, float]:
    """Poll the fleet every `interval` for `seconds` after a warm-up; the collector's figures
    and the sim's CPU over the same window."""
    config = with_interval(load_config(config_path), interval)
    collector = Collector(config, load_registry())
    raise_open_files(len(collector.targets))
    stream = collector.snapshots()
    warmup = max(WARMUP_S, WARMUP_TICKS * interval)
    started = time.monotonic()
    async for _ in stream:  # warm up: connections open, pages parsed once
        if time.monotonic() - started >= warmup:
            break
    ok_before = sum(t.successes for t in collector.targets)
    failed_before = sum(t.failures_total for t in collector.targets)
    collector.cycle_times.clear()
    sim_before = process_cpu_seconds(sim)
    cpu_before, wall_before = cpu_seconds(), time.monotonic()
    # the window opens right after a tick's snapshot and closes after one: whole ticks only
    async for _ in stream:
        if time.monotonic() - wall_before >= seconds:
            break
    cpu, wall = cpu_seconds() - cpu_before, time.monotonic() - wall_before
    sim_cpu = process_cpu_seconds(sim) - sim_before
    await stream.aclose()
    await collector.aclose()
    scrapes = sum(t.successes for t in collector.targets) - ok_before
    cycles = sorted(collector.cycle_times)
    return {
        "interval": interval,
        "scrapes": scrapes,
        "failed": sum(t.failures_total for t in collector.targets) - failed_before,
        "cpu_ms_per_scrape": cpu * 1000 / max(scrapes, 1),
        "cpu_cores": cpu / wall,
        "cycle_p50_ms": statistics.median(cycles) * 1000,
        "cycle_p99_ms": cycles[min(len(cycles) - 1, int(len(cycles) * 0.99))] * 1000,
        "cycle_max_ms": cycles[-1] * 1000,
        "rss_mb": psutil.Process().memory_info().rss / 2**20,
        "wall": wall,
        "sim_cpu_cores": sim_cpu / wall,
    }


def measure(nodes: int, seconds: float, engines: str, interval: float) -> dict[str, float]:
    with running_sim(nodes, engines) as (sim, config):
        return asyncio.run(poll(config, seconds, interval, sim))


def run_main(main: Callable[[], int]) -> int:
    """A benchmark's main, with Ctrl-C, a measured process gone or a component that failed
    told in one line (the context managers have stopped the sim and any scraper by then)."""
    try:
        return main()
    except FleetdeckError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except psutil.NoSuchProcess as exc:
        print(f"a measured process (pid {exc.pid}) exited during the run", file=sys.stderr)
        return 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", default="100,500,1000,2000,5000", help="fleet sizes, comma-separated"
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="measured seconds per size")
    parser.add_argument(
        "--interval",
        default="auto",
        help="seconds between scrapes of a node, or auto (1 s up to 1,000 nodes, nodes/1,000 s)",
    )
    parser.add_argument("--engines", default="vllm", help="engine kinds of the sim's nodes")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    fixed = None if args.interval == "auto" else float(args.interval)
    every = "1 s up to 1,000 nodes, nodes/1,000 s above" if fixed is None else f"{fixed:g} s"
    print(
        f"poll every {every}, for {args.seconds:g} s per size; "
        f"engines: {args.engines}; {os.cpu_count()} cores"
    )
    header = (
        "nodes",
        "interval",
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
        interval = interval_for(size) if fixed is None else fixed
        figures = measure(size, args.seconds, args.engines, interval)
        results[size] = figures
        print(
            f"{size} | {interval:g} s | {figures['scrapes']:.0f} | {figures['failed']:.0f} | "
            f"{figures['cpu_ms_per_scrape']:.3f} | {figures['cpu_cores']:.2f} | "
            f"{figures['cycle_p50_ms']:.0f} ms | {figures['cycle_p99_ms']:.0f} ms | "
            f"{figures['cycle_max_ms']:.0f} ms | {figures['rss_mb']:.0f} | "
            f"{figures['sim_cpu_cores']:.2f}",
            flush=True,
        )
    per_scrape = [results[size]["cpu_ms_per_scrape"] for size in sizes]
    spread = max(per_scrape) / min(per_scrape)
    print(f"RESULT poll_cpu_spread_{sizes[0]}_to_{sizes[-1]}={spread:.2f} target={TARGET_SPREAD}")
    largest = sizes[-1]
    print(
        f"RESULT poll_cpu_ms_per_scrape_{largest}="
        f"{results[largest]['cpu_ms_per_scrape']:.3f} target={TARGET_MS}"
    )
    # the slowest cycle as a share of its interval: above 1, a tick ran into the next one
    overrun = max(r["cycle_max_ms"] / 1000 / r["interval"] for r in results.values())
    print(f"RESULT poll_cycle_max_over_interval={overrun:.2f} target=1.0")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
