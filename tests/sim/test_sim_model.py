"""The node model on an injected clock: deterministic, monotonic, pinned exactly."""

from __future__ import annotations

import pytest

from console.sim.engines import ENGINES, compiled_page
from console.sim.faults import Fault
from console.sim.histogram import Histogram
from console.sim.load import DAY_S, LoadShape
from console.sim.model import NodeModel
from console.sim.traffic import BAD_DEPLOY_ERROR_RATE


class Clock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


def make(
    kind: str = "vllm", seed: int = 0, index: int = 0, static: bool = False
) -> tuple[NodeModel, Clock]:
    clock = Clock()
    node = NodeModel(
        f"node-{index:03d}",
        ENGINES[kind],
        seed=seed,
        index=index,
        gpus=4,
        clock=clock,
        wall_start=1.75e9,
        static=static,
    )
    return node, clock


def page(node: NodeModel) -> str:
    node.advance()
    node.settle_histograms()
    return compiled_page(node.spec, node.model, tuple(node.board.uuids)).render(node)


def walk(node: NodeModel, clock: Clock, steps: list[float]) -> list[str]:
    pages = []
    for step in steps:
        clock.now += step
        pages.append(page(node))
    return pages


def test_same_seed_and_clock_readings_give_the_same_pages() -> None:
    steps = [0.5, 1.0, 0.01, 7.0, 30.0, 2.5]
    first = walk(*make(seed=11, index=2), steps)
    again = walk(*make(seed=11, index=2), steps)
    other_seed = walk(*make(seed=12, index=2), steps)
    assert first == again
    assert all(mine != theirs for mine, theirs in zip(first, other_seed, strict=True))


def test_nodes_of_one_fleet_differ() -> None:
    first, _ = make(seed=5, index=0)
    second, _ = make(seed=5, index=1)
    assert first.profile != second.profile
    assert first.board.uuids != second.board.uuids


def test_counters_only_grow_through_a_simulated_day() -> None:
    node, clock = make("tgi", seed=4)
    previous = (0.0, 0.0, 0.0, 0.0)
    loads = []
    for _ in range(int(DAY_S)):
        clock.now += 1.0
        node.advance()
        totals = (
            node.requests_total,
            node.errors_total,
            node.prompt_tokens_total,
            node.generation_tokens_total,
        )
        assert all(now >= before for now, before in zip(totals, previous, strict=True))
        previous = totals
        loads.append(node.conditions.requests_per_s)
    assert max(loads) > 1.8 * min(loads)  # a day (and a burst or two) moves the load


def test_bursts_come_and_go_deterministically() -> None:
    shape = LoadShape(seed=99, phase=0.25)
    multipliers = [shape.burst(t) for t in range(0, 3600)]
    assert 1.0 in multipliers
    assert any(value > 1.5 for value in multipliers)
    assert multipliers == [LoadShape(seed=99, phase=0.25).burst(t) for t in range(0, 3600)]


def test_a_pinned_rate_drives_its_counter_exactly() -> None:
    node, clock = make("sglang")
    node.set_pins({"requests_per_s": 40.0, "tokens_per_s": 1500.0, "error_rate": 0.25})
    requests, errors, tokens = node.requests_total, node.errors_total, node.generation_tokens_total
    for step in (0.3, 1.7, 0.02, 4.0):
        clock.now += step
        node.advance()
    elapsed = 0.3 + 1.7 + 0.02 + 4.0
    assert node.requests_total - requests == pytest.approx(40.0 * elapsed, rel=1e-9)
    assert node.errors_total - errors == pytest.approx(0.25 * 40.0 * elapsed, rel=1e-9)
    assert node.generation_tokens_total - tokens == pytest.approx(1500.0 * elapsed, rel=1e-9)


def test_pinned_gauges_are_served_exactly_and_unpinned_with_null() -> None:
    node, clock = make("vllm")
    node.set_pins({"running": 3, "waiting": 17, "kv_cache_usage": 0.875, "gpu_util": 42})
    clock.now += 3.0
    text = page(node)
    assert 'vllm:num_requests_waiting{engine="0",model_name="meta-llama/Llama-3.1-8B"} 17.0' in text
    assert 'vllm:kv_cache_usage_perc{engine="0",model_name="meta-llama/Llama-3.1-8B"} 0.875' in text
    assert [gpu.util for gpu in node.gpu_readings()] == [42.0] * 4
    node.set_pins({"waiting": None})
    assert node.waiting == node.conditions.waiting
    assert node.running == 3


def test_restart_resets_counters_and_histograms() -> None:
    node, clock = make("vllm")
    clock.now += 10.0
    before = page(node)
    created = node.created_wall
    node.restart()
    assert node.requests_total == 0.0
    assert node.histograms["vllm:e2e_request_latency_seconds"].count == 0.0
    assert node.created_wall > created
    clock.now += 2.0
    after = page(node)
    assert after != before
    assert 0 < node.requests_total < 100


def test_bad_deploy_doubles_errors_until_rolled_back() -> None:
    node, clock = make("triton")
    node.set_fault(Fault("bad_deploy"))
    assert node.revision == "rev-3"
    assert node.conditions.error_rate == BAD_DEPLOY_ERROR_RATE
    requests, errors = node.requests_total, node.errors_total
    clock.now += 5.0
    node.advance()
    assert (node.errors_total - errors) / (node.requests_total - requests) == pytest.approx(0.5)
    node.roll_back("rev-2")
    assert node.fault is None
    assert node.revision == "rev-2"
    assert node.conditions.error_rate < 0.05


def test_a_gpu_off_the_bus_has_no_readings_and_keeps_its_xid() -> None:
    node, clock = make("vllm")
    node.set_fault(Fault("xid", gpu=2))
    lost = node.gpu_readings()[2]
    assert lost.lost and lost.util is None and lost.temp is None and lost.power is None
    assert lost.last_xid == 79 and lost.last_xid_time is not None
    assert not node.gpu_readings()[0].lost
    node.set_fault(None)
    clock.now += 1.0
    node.advance()
    back = node.gpu_readings()[2]
    assert not back.lost and back.util is not None and back.last_xid == 79


def test_gpu_utilisation_follows_load() -> None:
    node, clock = make("vllm")
    node.set_pins({"requests_per_s": 0.0})
    clock.now += 1.0
    node.advance()
    idle = sum(gpu.util or 0.0 for gpu in node.gpu_readings())
    node.set_pins({"requests_per_s": 50.0})
    clock.now += 1.0
    node.advance()
    busy = sum(gpu.util or 0.0 for gpu in node.gpu_readings())
    assert busy > idle + 4 * 50


def test_a_static_node_never_moves() -> None:
    node, clock = make("tgi", static=True)
    first = page(node)
    clock.now += 60.0
    assert page(node) == first


def test_real_completions_count_on_top_of_pinned_background() -> None:
    node, clock = make("vllm")
    node.set_pins({"requests_per_s": 0.0})
    requests, tokens = node.requests_total, node.generation_tokens_total
    histogram = node.histograms["vllm:time_to_first_token_seconds"]
    count = histogram.count
    clock.now += 1.0
    node.record_completion(12, 30, {"ttft": 0.02, "queue": 0.0, "e2e": 0.14}, failed=False)
    node.record_completion(12, 0, {"ttft": 0.02, "queue": 0.0, "e2e": 0.02}, failed=True)
    assert node.requests_total == requests + 2
    assert node.generation_tokens_total == tokens + 30
    assert histogram.count == count + 2


def test_histograms_stay_cumulative_however_they_are_fed() -> None:
    histogram = Histogram([0.1, 0.2, 0.5, 1.0, 2.0, 5.0])
    histogram.add(10.0, histogram.cdf(0.15, 0.1), 1.5)  # narrow: only the lowest buckets
    histogram.observe(3.0)  # past the stored buckets: le=2.0 must not count it
    assert histogram.rounded() == [0, 10, 10, 10, 10, 11, 11]
    histogram.observe(0.05)
    assert histogram.rounded() == [1, 11, 11, 11, 11, 12, 12]
    histogram.add(100.0, histogram.cdf(1.5, 0.8), 180.0)
    counts = histogram.rounded()
    assert counts == sorted(counts) and counts[-1] == 112
    assert histogram.sum == pytest.approx(1.5 + 3.0 + 0.05 + 180.0)
