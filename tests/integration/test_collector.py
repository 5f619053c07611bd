"""The collector's loop against a simulated fleet: staleness, backoff, snapshots and history."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from console.collector import Collector
from console.config import load_config
from console.history import History
from console.model import Severity, Snapshot
from console.plugin import load_registry
from tests.integration.conftest import write_fleet


async def _watch(collector: Collector, seconds: float) -> list[Snapshot]:
    snapshots: list[Snapshot] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    async for snapshot in collector.snapshots():
        snapshots.append(snapshot)
        if loop.time() >= deadline:
            break
    await collector.aclose()
    return snapshots


async def test_a_slow_target_goes_stale_and_never_looks_fresh(
    sim_factory: Any, control_factory: Any, tmp_path: Path
) -> None:
    fleet = await sim_factory(3, engines=("vllm",))
    control = control_factory(fleet)
    slow = fleet.nodes[0].name
    config = load_config(write_fleet(fleet, tmp_path / "f.yaml", interval="500ms", timeout="500ms"))
    collector = Collector(config, load_registry(), rate_window=2.0)
    snapshots_task = asyncio.create_task(_watch(collector, 5.0))
    await asyncio.sleep(1.2)  # a few good readings first
    await control.fault(slow, {"kind": "slow", "seconds": 3})
    snapshots = await snapshots_task
    last = {n.name: n for n in snapshots[-1].nodes}
    assert not last[slow].up and last[slow].stale
    assert "timeout" in (last[slow].error or "")
    assert last[slow].engine.running is None  # no figure outlives its target
    assert last[slow].severity is Severity.CRIT
    for name, node in last.items():
        if name != slow:
            assert node.up and not node.stale and node.severity is not Severity.CRIT, node
    # every snapshot: a node either has fresh data or says it is stale
    for snapshot in snapshots:
        for node in snapshot.nodes:
            assert node.stale or (node.age_s is not None and node.age_s <= 1.5), node


async def test_failing_targets_back_off_and_recover(
    sim_factory: Any, control_factory: Any, tmp_path: Path
) -> None:
    fleet = await sim_factory(2, engines=("sglang",))
    control = control_factory(fleet)
    refused = fleet.nodes[0].name
    await control.fault(refused, "refuse")
    config = load_config(write_fleet(fleet, tmp_path / "f.yaml", interval="250ms", timeout="250ms"))
    collector = Collector(config, load_registry(), seed=1)
    await _watch(collector, 4.0)
    engine = {t.node.name: t for t in collector.targets if t.role == "engine"}
    healthy_tries = engine[fleet.nodes[1].name].successes
    failed_tries = engine[refused].failures_total
    assert healthy_tries >= 12
    # 1, 2, 4, 8 intervals apart (with jitter): a handful of tries, not one per tick
    assert 3 <= failed_tries <= 7, failed_tries
    await control.fault(refused, None)
    collector = Collector(config, load_registry())
    snapshots = await _watch(collector, 1.0)
    assert all(n.up for n in snapshots[-1].nodes)


async def test_history_records_each_snapshot(
    sim_factory: Any, control_factory: Any, tmp_path: Path
) -> None:
    fleet = await sim_factory(2, engines=("vllm",))
    control = control_factory(fleet)
    name = fleet.nodes[0].name
    await control.pin(name, waiting=42)
    config = load_config(write_fleet(fleet, tmp_path / "f.yaml", interval="500ms", timeout="500ms"))
    history = History()
    collector = Collector(config, load_registry(), history=history)
    await _watch(collector, 3.0)
    waiting = history.values("node", name, "waiting", seconds=5)
    assert waiting and waiting[-1] == 42
    pool = history.values("pool", "pool-vllm", "waiting", seconds=5)
    assert pool and pool[-1] >= 42
