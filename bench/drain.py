"""Drain benchmark: confirmation to verified, across real HAProxy replicas.

A simulated fleet of 4 nodes sits behind `--replicas` real HAProxy processes (Debian's
`haproxy`); the action engine, exactly as `fleetdeck drain --yes` runs it, drains and undrains
one node `--rounds` times. Each drain is timed from the confirmed plan to the verified outcome:
the lock and the fsynced intent, `set server ... state drain` on every replica at once, the
read-back of every replica, and the fsynced result. Separately, a watcher polling one replica
reports when HAProxy itself first showed DRAIN. Target: <= 200 ms at p95.

    python bench/drain.py [--replicas 3] [--rounds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from console.actions import Actions  # noqa: E402
from console.audit import AuditLog  # noqa: E402
from console.collector import Collector  # noqa: E402
from console.config import load_config  # noqa: E402
from console.plans import Request  # noqa: E402
from console.plugin import load_registry  # noqa: E402
from console.sim import SimFleet  # noqa: E402
from console.sim.haproxy import (  # noqa: E402
    MAP_NAME,
    FrontendSpec,
    HaproxyProcess,
    Timing,
    backends_for,
)

TARGET_MS = 200.0
NODE = "node-001"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def fleet_document(fleet: SimFleet, endpoints: list[str]) -> dict[str, object]:
    pools: dict[str, list[dict[str, str]]] = {}
    for node in fleet.nodes:
        pools.setdefault(node.pool, []).append(
            {"name": node.name, "url": node.url, "agent": node.agent, "server": node.name}
        )
    return {
        "gateways": [{"name": "edge", "plugin": "haproxy", "endpoints": endpoints}],
        "pools": [
            {
                "name": pool,
                "gateway": "edge",
                "backend": pool,
                "route": {"map": MAP_NAME, "key": pool},
                "nodes": nodes,
            }
            for pool, nodes in pools.items()
        ],
    }


async def bench(replicas: int, rounds: int) -> tuple[list[float], list[float]]:
    async with SimFleet(nodes=4, seed=1, gpus=1, pools=2, static=True) as fleet:
        backends = backends_for(fleet.nodes)
        frontends = tuple(FrontendSpec(b.name, b.name) for b in backends)
        processes = [HaproxyProcess(backends, frontends, timing=Timing()) for _ in range(replicas)]
        with tempfile.TemporaryDirectory(prefix="fleetdeck-bench-") as folder:
            try:
                for process in processes:
                    await process.start()
                path = Path(folder) / "fleet.yaml"
                endpoints = [p.runtime_endpoint for p in processes]
                document = fleet_document(fleet, endpoints)
                path.write_text(yaml.safe_dump(document), encoding="utf-8")
                config = load_config(path)
                collector = Collector(config, load_registry())
                actions = Actions(config, collector, AuditLog(Path(folder) / "audit.jsonl"))
                return await _rounds(actions, collector, rounds)
            finally:
                for process in processes:
                    await process.stop()


async def _rounds(
    actions: Actions, collector: Collector, rounds: int
) -> tuple[list[float], list[float]]:
    confirmed_to_verified, first_seen = [], []
    watch = collector.gateways[0]
    assert watch.driver is not None
    endpoint = watch.config.endpoints[-1]
    for _ in range(rounds):
        for action in ("drain", "undrain"):
            await collector.scrape_all()
            plan = actions.plan(Request(action, NODE))
            if plan.refusal is not None:
                raise SystemExit(f"refused: {plan.refusal}")
            started = time.perf_counter()
            seen = asyncio.create_task(_first_drain(watch.driver, endpoint, started))
            outcome = await actions.execute(plan)
            elapsed = (time.perf_counter() - started) * 1000.0
            if outcome.status != "verified":
                raise SystemExit(f"{action}: {outcome.status}: {outcome.detail}")
            if action == "drain":
                confirmed_to_verified.append(elapsed)
                first_seen.append(await seen)
            else:
                seen.cancel()
    await collector.aclose()
    return confirmed_to_verified, first_seen


async def _first_drain(driver: object, endpoint: str, started: float) -> float:
    """Milliseconds from `started` until the replica first shows the node DRAIN."""
    read = driver.read  # type: ignore[attr-defined]
    while True:
        state = await read(endpoint, ())
        server = state.servers.get(("pool-a", NODE))
        if server is not None and server.state == "DRAIN":
            return (time.perf_counter() - started) * 1000.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    verified, seen = asyncio.run(bench(args.replicas, args.rounds))
    print(f"drain across {args.replicas} HAProxy replicas, {args.rounds} rounds")
    for label, values in (("confirmed -> verified", verified), ("confirmed -> seen", seen)):
        print(
            f"  {label:22} p50 {statistics.median(values):6.1f} ms   "
            f"p95 {percentile(values, 0.95):6.1f} ms   max {max(values):6.1f} ms"
        )
    p95 = percentile(verified, 0.95)
    print(f"RESULT drain_confirm_to_verified_p95_ms={p95:.1f} target={TARGET_MS:g}")
    return 0 if p95 <= TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
