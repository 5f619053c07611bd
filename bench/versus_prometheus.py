"""Versus Prometheus: CPU per successful scrape, the direct collector against a real Prometheus.

One simulated fleet (`fleetdeck sim --static`, one GPU a node, engine pages only) runs in its
own process, started as `bench/poll.py` starts it; the two scrapers then read the same targets
every `--interval`, one after the other, each measured over `--seconds` after a warm-up:

1. Fleetdeck's collector in this process, exactly as `bench/poll.py` runs it (scrape, parse,
   map, derive, snapshot): getrusage of this process over the window divided by the
   collector's successful scrapes in it.
2. Prometheus (the `prometheus` on PATH, through `console.sim.prometheus.PrometheusProcess`):
   one job over the same engine URLs, scrape_interval = the interval. Once its first scrapes
   have landed (`count(up == 1)` reaches the node count) and a warm-up has passed, its
   process CPU (psutil: user + system, children included) over the window divided by its
   successful scrapes in the window. Those are counted by Prometheus itself: every scrape
   writes one `up` sample stamped with the scrape's start, 1 when it succeeded and 0 when
   not, so `sum(sum_over_time(up[W] @ T))` with T the window's end and W its length (both
   to the millisecond, on the same clock the CPU was read against) is exactly the number of
   successful scrapes that started inside the window, and `count_over_time` the number
   attempted. It is queried one scrape timeout after the window closes, so that a scrape in
   flight at its end has written its sample.

The sim's CPU is reported for each window (it shares the machine's cores with the scraper),
and each scraper's RSS at the end of its window. Target: the collector's CPU per scrape at
most half of Prometheus's (`ratio` = ours / Prometheus <= 0.5).

    python bench/versus_prometheus.py [--nodes 1000] [--seconds 60] [--interval 1]
                                      [--engines vllm]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402

from bench.poll import (  # noqa: E402
    WARMUP_S,
    poll,
    process_cpu_seconds,
    run_main,
    running_sim,
)
from console.config import load_config  # noqa: E402
from console.sim.prometheus import (  # noqa: E402
    PrometheusProcess,
    ScrapeJob,
    ScrapeTarget,
    find_prometheus,
)

TARGET_RATIO = 0.5
FIRST_SCRAPES_S = 60.0  # Prometheus holds its first scrapes ~5 s (discovery throttle)
VERSION_TIMEOUT_S = 10.0


def engine_job(config_path: Path) -> ScrapeJob:
    """One job over every node's engine page, labelled with its node and pool."""
    nodes = load_config(config_path).nodes
    urls = [urlsplit(node.engine_metrics_url or "") for node in nodes]
    paths = {url.path for url in urls}
    if len(paths) != 1 or any(url.port is None for url in urls):
        raise SystemExit(f"{config_path}: engine pages are not all HOST:PORT on one path {paths}")
    targets = tuple(
        ScrapeTarget(f"{url.hostname}:{url.port}", {"node": node.name, "pool": node.pool})
        for node, url in zip(nodes, urls, strict=True)
    )
    return ScrapeJob("engine", targets, paths.pop())


async def scalar(prometheus: PrometheusProcess, expression: str) -> float:
    result = await prometheus.query(expression)
    if not result:
        raise SystemExit(f"prometheus: {expression} returned nothing")
    return float(result[0]["value"][1])  # type: ignore[index]


async def scrape_with_prometheus(
    job: ScrapeJob, seconds: float, interval: float, sim: psutil.Process
) -> dict[str, float]:
    """Prometheus's window in `poll`'s figures, and the samples it scraped per page."""
    async with PrometheusProcess([job], interval=interval) as prometheus:
        await prometheus.wait_for("count(up == 1)", len(job.targets), within=FIRST_SCRAPES_S)
        await asyncio.sleep(max(WARMUP_S, 2 * interval))
        process = psutil.Process(prometheus.pid)
        cpu_before, sim_before = process_cpu_seconds(process), process_cpu_seconds(sim)
        opened = time.time()
        await asyncio.sleep(seconds)
        cpu = process_cpu_seconds(process) - cpu_before
        sim_cpu = process_cpu_seconds(sim) - sim_before
        closed = time.time()
        rss_mb = process.memory_info().rss / 2**20
        await asyncio.sleep(prometheus.timeout)  # scrapes in flight at the close write `up`
        window = f"[{round((closed - opened) * 1000)}ms] @ {closed:.3f}"
        scrapes = await scalar(prometheus, f"sum(sum_over_time(up{window}))")
        attempted = await scalar(prometheus, f"sum(count_over_time(up{window}))")
        samples = await scalar(prometheus, "avg(scrape_samples_scraped)")
    wall = closed - opened
    return {
        "scrapes": scrapes,
        "failed": attempted - scrapes,
        "cpu_ms_per_scrape": cpu * 1000 / max(scrapes, 1),
        "cpu_cores": cpu / wall,
        "rss_mb": rss_mb,
        "wall": wall,
        "sim_cpu_cores": sim_cpu / wall,
        "samples_per_scrape": samples,
    }


def prometheus_version() -> str:
    answer = subprocess.run(
        [find_prometheus(), "--version"],
        capture_output=True,
        text=True,
        timeout=VERSION_TIMEOUT_S,
        check=False,
    )
    lines = (answer.stdout or answer.stderr).splitlines()
    return lines[0] if lines else "prometheus (version unknown)"


def row(name: str, figures: dict[str, float]) -> str:
    return (
        f"{name} | {figures['scrapes']:,.0f} | {figures['failed']:,.0f} | "
        f"{figures['cpu_ms_per_scrape']:.3f} | {figures['cpu_cores']:.2f} | "
        f"{figures['rss_mb']:.0f} | {figures['sim_cpu_cores']:.2f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000, help="simulated nodes (targets)")
    parser.add_argument("--seconds", type=float, default=60.0, help="measured seconds per phase")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between scrapes")
    parser.add_argument("--engines", default="vllm", help="engine kinds of the sim's nodes")
    args = parser.parse_args()
    print(
        f"{args.nodes} targets every {args.interval:g} s, {args.seconds:g} s per scraper; "
        f"engines: {args.engines}; {prometheus_version()}; {os.cpu_count()} cores",
        flush=True,
    )
    with running_sim(args.nodes, args.engines) as (sim, config):
        ours = asyncio.run(poll(config, args.seconds, args.interval, sim))
        theirs = asyncio.run(
            scrape_with_prometheus(engine_job(config), args.seconds, args.interval, sim)
        )
    print("scraper | scrapes | failed | cpu ms/scrape | cores | rss MB | sim cores")
    print(row("fleetdeck collector", ours))
    print(row("prometheus", theirs))
    samples = theirs["samples_per_scrape"]
    print(f"prometheus: {samples:.0f} samples per scrape (scrape_samples_scraped)")
    ratio = ours["cpu_ms_per_scrape"] / theirs["cpu_ms_per_scrape"]
    print(
        f"RESULT fleetdeck_ms_per_scrape={ours['cpu_ms_per_scrape']:.3f} "
        f"prometheus_ms_per_scrape={theirs['cpu_ms_per_scrape']:.3f} ratio={ratio:.2f} "
        f"target={TARGET_RATIO}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
