"""`fleetdeck status`, `watch` and `check` against a simulated fleet on loopback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.integration.conftest import SCHEMA, fleetdeck, write_fleet

ENGINES = ("vllm", "sglang", "tgi", "triton")
PINS = {
    "running": 5,
    "waiting": 12,
    "kv_cache_usage": 0.42,
    "requests_per_s": 20.0,
    "error_rate": 0.05,
    "tokens_per_s": 800.0,
    "prompt_tokens_per_s": 400.0,
    "gpu_util": 77,
}
# What each engine's own metrics cannot say (docs/engine-mappings.md): must come back null.
NOT_EXPOSED = {
    "tgi": {"kv_cache_usage"},
    "triton": {"tokens_per_s", "prompt_tokens_per_s"},
}
GAUGES = ("running", "waiting", "kv_cache_usage")
RATES = ("requests_per_s", "error_rate", "tokens_per_s", "prompt_tokens_per_s")


def validate(document: dict[str, Any]) -> None:
    jsonschema.validate(document, json.loads(SCHEMA.read_text()))


async def test_status_agrees_with_the_sim_for_every_engine(
    sim_factory: Any, control_factory: Any, tmp_path: Path
) -> None:
    fleet = await sim_factory(8, engines=ENGINES)
    control = control_factory(fleet)
    for node in fleet.nodes:
        await control.pin(node.name, **PINS)
    config = write_fleet(fleet, tmp_path / "fleet.yaml")
    run = await fleetdeck("status", "-c", str(config), "-o", "json", "--window", "2s")
    assert run.code == 0, run.stderr
    document = run.json()
    validate(document)
    assert document["schema_version"] == 1
    nodes = {n["name"]: n for n in document["nodes"]}
    assert set(nodes) == {n.name for n in fleet.nodes}
    seen_kinds = set()
    for sim_node in fleet.nodes:
        node = nodes[sim_node.name]
        kind = sim_node.engine
        seen_kinds.add(kind)
        assert node["engine_kind"] == kind
        assert node["up"] and not node["stale"] and node["error"] is None, node
        engine = node["engine"]
        hidden = NOT_EXPOSED.get(kind, set())
        for name in GAUGES:
            expected = None if name in hidden else PINS[name]
            assert engine[name] == expected, (kind, name, engine[name])
        for name in RATES:
            if name in hidden:
                assert engine[name] is None, (kind, name)
            else:
                assert engine[name] == pytest.approx(PINS[name], rel=0.05), (kind, name)
        assert len(node["gpus"]) == 2
        assert all(gpu["util"] == PINS["gpu_util"] for gpu in node["gpus"])
    assert seen_kinds == set(ENGINES)
    pools = {p["name"]: p for p in document["pools"]}
    vllm = pools["pool-vllm"]
    assert vllm["nodes"] == 2 and vllm["running"] == 10 and vllm["waiting"] == 24
    assert vllm["requests_per_s"] == pytest.approx(40.0, rel=0.05)
    assert vllm["error_rate"] == pytest.approx(0.05, rel=0.05)


async def test_bad_targets_cost_only_themselves(
    sim_factory: Any, control_factory: Any, tmp_path: Path
) -> None:
    fleet = await sim_factory(50, engines=("vllm", "sglang"))
    control = control_factory(fleet)
    names = [n.name for n in fleet.nodes]
    hanging = set(names[:5])  # 10% of the fleet accepts and never answers
    broken = {names[5]: "garbage", names[6]: "http500", names[7]: "refuse"}
    for name in hanging:
        await control.fault(name, "hang")
    for name, fault in broken.items():
        await control.fault(name, fault)
    config = write_fleet(fleet, tmp_path / "fleet.yaml", timeout="1s")
    run = await fleetdeck("status", "-c", str(config), "-o", "json", "--window", "2s")
    assert run.code == 0, run.stderr
    # the window, plus 1.5x the timeout, plus the interpreter's start-up
    assert run.seconds < 2.0 + 1.5 * 1.0 + 1.5, run.seconds
    document = run.json()
    validate(document)
    nodes = {n["name"]: n for n in document["nodes"]}
    for name in hanging:
        assert not nodes[name]["up"] and nodes[name]["stale"]
        assert "timeout" in nodes[name]["error"]
        assert nodes[name]["severity"] == "crit"
    expected_error = {"garbage": "metrics", "http500": "HTTP 500", "refuse": "cannot connect"}
    for name, fault in broken.items():
        assert not nodes[name]["up"], name
        assert expected_error[fault] in nodes[name]["error"], nodes[name]["error"]
        assert all(value is None for value in nodes[name]["engine"].values())
    healthy = [n for name, n in nodes.items() if name not in hanging and name not in broken]
    assert len(healthy) == 42
    for node in healthy:
        assert node["up"] and not node["stale"] and node["error"] is None, node
        assert node["age_s"] < 1.5
        assert node["engine"]["requests_per_s"] is not None


async def test_counter_reset_never_gives_negative_rates(
    sim_factory: Any, control_factory: Any, tmp_path: Path
) -> None:
    fleet = await sim_factory(4, engines=ENGINES)
    control = control_factory(fleet)
    for node in fleet.nodes:
        await control.pin(node.name, requests_per_s=50.0, tokens_per_s=2000.0, error_rate=0.1)
    config = write_fleet(fleet, tmp_path / "fleet.yaml", interval="1s", timeout="1s")
    # let the counters grow large, then restart every engine mid-watch
    import asyncio

    watch = asyncio.create_task(
        fleetdeck("watch", "-c", str(config), "--interval", "500ms", "--count", "8")
    )
    await asyncio.sleep(2.0)
    for node in fleet.nodes:
        await control.restart(node.name)
    run = await watch
    assert run.code == 0, run.stderr
    lines = run.stdout.splitlines()
    assert len(lines) == 8
    for line in lines:
        document = json.loads(line)
        validate(document)
        for node in document["nodes"]:
            for name in RATES:
                value = node["engine"][name]
                assert value is None or value >= 0, (node["name"], name, value)
            rate = node["engine"]["error_rate"]
            assert rate is None or rate <= 1


async def test_check_reports_nagios_states(
    sim_factory: Any, control_factory: Any, tmp_path: Path
) -> None:
    fleet = await sim_factory(4, engines=("vllm",))
    config = write_fleet(fleet, tmp_path / "fleet.yaml")
    run = await fleetdeck("check", "-c", str(config), "--window", "1s")
    assert run.code == 0, run.stdout
    assert run.stdout.startswith("FLEETDECK OK - 4/4 nodes healthy")
    assert "| nodes=4 healthy=4" in run.stdout
    control = control_factory(fleet)
    await control.fault(fleet.nodes[0].name, "refuse")
    run = await fleetdeck("check", "-c", str(config), "--window", "1s")
    assert run.code == 1 and run.stdout.startswith("FLEETDECK WARNING"), run.stdout
    for node in fleet.nodes:
        await control.fault(node.name, "refuse")
    run = await fleetdeck("check", "-c", str(config), "--window", "1s")
    assert run.code == 2 and "no healthy node" in run.stdout, run.stdout


async def test_check_is_unknown_on_a_bad_config(tmp_path: Path) -> None:
    bad = tmp_path / "fleet.yaml"
    bad.write_text("pools: [{name: x, nodes: [{name: a, engine: vlm, url: 'http://h'}]}]\n")
    run = await fleetdeck("check", "-c", str(bad))
    assert run.code == 3
    assert run.stdout.startswith("FLEETDECK UNKNOWN - ")
    assert "Traceback" not in run.stdout + run.stderr


async def test_check_usage_error_is_unknown() -> None:
    run = await fleetdeck("check", "--window", "soon")
    assert run.code == 3 and run.stdout.startswith("FLEETDECK UNKNOWN - usage error")
    assert "bad duration 'soon'" in run.stderr


async def test_status_exit_codes_for_usage_and_config(tmp_path: Path) -> None:
    run = await fleetdeck("status", "--window", "2x")
    assert run.code == 64 and "bad duration" in run.stderr
    missing = await fleetdeck("status", "-c", str(tmp_path / "nope.yaml"))
    assert missing.code == 78 and missing.stderr.count("\n") == 1, missing.stderr
    assert "Traceback" not in missing.stderr
