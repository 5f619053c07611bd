"""drain, undrain, failover, failback and rollback through real HAProxy replicas and sim agents,
run as an operator runs them: the `fleetdeck` command line, checked against what HAProxy and
the simulated nodes report afterwards."""

from __future__ import annotations

import asyncio
import json
import os
import signal

import httpx

from console.actions import Actions
from console.audit import AuditLog
from console.collector import Collector
from console.config import load_config
from console.plans import Request
from console.plugin import load_registry
from console.sim.haproxy import MAP_NAME
from tests.actions.conftest import Edge, all_up, run_printed, valid


def audit_lines(edge: Edge) -> list[dict[str, object]]:
    return [json.loads(line) for line in edge.audit.read_text().splitlines()]


async def test_drain_reaches_every_replica_and_stops_new_requests(edge: Edge) -> None:
    assert "node-001" in set(await edge.served_by(8))
    run = await edge.run("drain", "node-001", "--yes", "--reason", "INC-7")
    assert run.code == 0, run.stdout + run.stderr
    assert run.stdout.startswith("verified: drain node node-001")
    assert await edge.states("node-001") == ["DRAIN", "DRAIN"]
    for replica in (0, 1):
        assert set(await edge.served_by(6, replica=replica)) == {"node-002"}
    again = await edge.run("drain", "node-001", "--yes")  # idempotent: a no-op success
    assert (again.code, again.stdout.split(":")[0]) == (0, "noop")

    undrain = await edge.run("undrain", "node-001", "--yes")
    assert undrain.code == 0, undrain.stdout + undrain.stderr
    assert await edge.states("node-001") == ["UP", "UP"]
    assert "node-001" in set(await edge.served_by(8))

    records = audit_lines(edge)
    assert [(r["kind"], r["action"]) for r in records] == [
        ("intent", "drain"),
        ("result", "drain"),
        ("intent", "drain"),
        ("result", "drain"),
        ("intent", "undrain"),
        ("result", "undrain"),
    ]
    assert records[1]["outcome"] == "verified" and records[3]["outcome"] == "noop"
    assert records[0]["reason"] == "INC-7" and records[0]["plan"]["server"] == "node-001"
    assert {c["where"] for c in records[1]["replicas"]} == set(edge.endpoints)
    assert "revert" not in records[3]["commands"]  # a no-op undoes nothing
    revert = await run_printed(records[1]["commands"]["revert"])  # as an operator pastes it
    assert revert.code == 0 and revert.stdout.startswith("noop: undrain"), revert.stdout


async def test_drain_wait_returns_once_in_flight_requests_finish(edge: Edge) -> None:
    url = edge.replicas[0].frontend_url("pool-b") + "/v1/completions"
    async with httpx.AsyncClient(timeout=10.0) as client:
        long = {"prompt": "tell me a story", "max_tokens": 300}  # about 1.2 s each
        requests = [asyncio.create_task(client.post(url, json=long)) for _ in range(2)]
        await edge.settle(lambda s: (s.servers[("pool-b", "node-003")].scur or 0) > 0)
        run = await edge.run("drain", "node-003", "--yes", "--wait", "--timeout", "10s")
        assert run.code == 0, run.stdout + run.stderr
        assert "no request in flight" in run.stdout
        answers = await asyncio.gather(*requests)
    assert [a.status_code for a in answers] == [200, 200]  # in flight ones completed
    state = await edge.read(0)
    assert state.servers[("pool-b", "node-003")].scur == 0


async def test_drain_wait_times_out_with_exit_4(edge: Edge) -> None:
    url = edge.replicas[0].frontend_url("pool-b") + "/v1/completions"
    async with httpx.AsyncClient(timeout=10.0) as client:
        long = {"prompt": "a long one", "max_tokens": 1000}  # about 4 s
        requests = [asyncio.create_task(client.post(url, json=long)) for _ in range(2)]
        await edge.settle(lambda s: (s.servers[("pool-b", "node-004")].scur or 0) > 0)
        run = await edge.run("drain", "node-004", "--yes", "--wait", "--timeout", "1s")
        assert run.code == 4, run.stdout + run.stderr
        assert "still 1 request(s) in flight" in run.stdout
        await asyncio.gather(*requests)


async def test_failover_moves_the_route_on_every_replica_and_failback_restores_it(
    edge: Edge,
) -> None:
    run = await edge.run("failover", "pool-a", "--yes")
    assert run.code == 0, run.stdout + run.stderr
    for replica in (0, 1):
        assert (await edge.read(replica)).maps[MAP_NAME]["pool-a"] == "pool-b"
        assert set(await edge.served_by(6, replica=replica)) <= {"node-003", "node-004"}
    status = valid((await edge.run("status", "-o", "json", "--window", "0.2s")).json(), "status")
    pool = next(p for p in status["pools"] if p["name"] == "pool-a")
    assert (pool["route"], pool["failed_over"]) == ("pool-b", True)
    (gateway,) = status["gateways"]
    assert (gateway["replicas_up"], gateway["replicas_total"]) == (2, 2)
    assert [b["name"] for b in gateway["backends"]] == ["pool-a", "pool-b"]

    back = await edge.run("failback", "pool-a", "--yes")
    assert back.code == 0, back.stdout + back.stderr
    for replica in (0, 1):
        assert (await edge.read(replica)).maps[MAP_NAME]["pool-a"] == "pool-a"
    assert set(await edge.served_by(6)) <= {"node-001", "node-002"}


async def test_dead_replica_refuses_then_force_is_partial_and_a_retry_converges(
    edge: Edge,
) -> None:
    dead = edge.replicas[1]
    await dead.kill()
    refused = await edge.run("drain", "node-001", "--yes")
    assert refused.code == 1, refused.stdout + refused.stderr
    assert dead.runtime_endpoint in refused.stdout and "--force" in refused.stdout
    assert (await edge.read(0)).servers[("pool-a", "node-001")].state == "UP"  # untouched

    forced = await edge.run("drain", "node-001", "--yes", "--force")
    assert forced.code == 3, forced.stdout + forced.stderr
    assert forced.stdout.startswith("partial:") and dead.runtime_endpoint in forced.stdout
    status = valid((await edge.run("status", "-o", "json", "--window", "0.2s")).json(), "status")
    (gateway,) = status["gateways"]
    assert gateway["replicas_up"] == 1 and gateway["severity"] == "warn"
    assert (await edge.read(0)).servers[("pool-a", "node-001")].state == "DRAIN"

    await dead.restart()
    await edge.settle(all_up, 1)
    retry = await edge.run("drain", "node-001", "--yes")
    assert retry.code == 0, retry.stdout + retry.stderr
    assert await edge.states("node-001") == ["DRAIN", "DRAIN"]


async def test_a_replica_killed_during_the_action_makes_it_partial(edge: Edge) -> None:
    config = load_config(edge.config)
    collector = Collector(config, load_registry())
    victim = edge.replicas[0].process
    assert victim is not None

    def kill_once_intent_is_recorded(text: str) -> None:
        if text.startswith("intent recorded"):  # after the fresh preflight, before any change
            os.kill(victim.pid, signal.SIGKILL)

    try:
        await collector.scrape_all()
        actions = Actions(config, collector, AuditLog(edge.audit))
        plan = actions.plan(Request("drain", "node-002"))
        assert plan.refusal is None and len(plan.replicas) == 2
        outcome = await actions.execute(plan, progress=kill_once_intent_is_recorded)
    finally:
        await collector.aclose()
    assert (outcome.status, outcome.exit_code) == ("partial", 3)
    assert outcome.retry is not None
    failed = [c for c in outcome.changes if not c.ok]
    assert [c.where for c in failed] == [edge.replicas[0].runtime_endpoint]
    assert (await edge.read(1)).servers[("pool-a", "node-002")].state == "DRAIN"
    retry = await run_printed(outcome.retry)  # refused: the dead replica is still dead
    assert retry.code == 1 and "--force" in retry.stdout


async def test_draining_below_min_healthy_is_refused_and_touches_nothing(edge: Edge) -> None:
    first = await edge.run("drain", "node-001", "--yes")
    assert first.code == 0, first.stdout + first.stderr
    before = edge.audit.read_text()
    last = await edge.run("drain", "node-002", "--yes")
    assert last.code == 1, last.stdout + last.stderr
    assert "below min_healthy 1" in last.stdout
    assert await edge.states("node-002") == ["UP", "UP"]
    refusal = audit_lines(edge)[len(before.splitlines()) :]
    assert [r["outcome"] for r in refusal] == [None, "refused"]  # who tried, and why not
    dry = await edge.run("drain", "node-002", "--dry-run")
    assert dry.code == 1 and "refused: draining node-002 leaves 0 healthy" in dry.stdout
    dry_json = valid(
        (await edge.run("drain", "node-002", "--dry-run", "-o", "json")).json(), "action"
    )
    assert dry_json["plan"]["refusal"].startswith("draining node-002 leaves 0 healthy")


async def test_restarting_haproxy_after_a_drain_shows_drift(edge: Edge) -> None:
    assert (await edge.run("drain", "node-001", "--yes")).code == 0
    await edge.replicas[0].restart()  # a reload forgets `set server`
    await edge.settle(all_up, 0)
    status = await edge.run("status", "-o", "json", "--window", "0.2s")
    (drift,) = valid(status.json(), "status")["drift"]
    assert (drift["target"], drift["expected"]) == ("node-001", "DRAIN")
    check = await edge.run("check", "--window", "0.2s")
    assert check.code == 1 and "drift on node-001" in check.stdout

    forget = await run_printed(drift["forget"])
    assert forget.code == 0, forget.stdout + forget.stderr
    status = await edge.run("status", "-o", "json", "--window", "0.2s")
    assert status.json()["drift"] == []


async def test_without_yes_and_without_a_terminal_nothing_is_done(edge: Edge) -> None:
    run = await edge.run("failover", "pool-a")
    assert run.code == 1 and "--yes" in run.stderr
    assert (await edge.read(0)).maps[MAP_NAME]["pool-a"] == "pool-a"
    assert not await asyncio.to_thread(edge.audit.exists)


async def test_read_only_refuses_every_action(edge: Edge) -> None:
    for args in (("drain", "node-001"), ("failover", "pool-a"), ("rollback", "pool-a")):
        run = await edge.run(*args, "--yes", "--read-only")
        assert run.code == 1 and "read-only" in run.stdout, run.stdout
    assert await edge.states("node-001") == ["UP", "UP"]


async def test_pool_rollback_cures_a_bad_deploy_one_node_at_a_time(edge: Edge) -> None:
    async with httpx.AsyncClient(base_url=edge.fleet.control_url, timeout=5.0) as control:
        for name in ("node-001", "node-002"):
            response = await control.put(f"/sim/nodes/{name}", json={"fault": "bad_deploy"})
            assert response.status_code == 200, response.text
        nodes = {n["name"]: n for n in (await control.get("/sim/nodes")).json()["nodes"]}
        assert {nodes[n]["revision"] for n in ("node-001", "node-002")} == {"rev-3"}

        run = await edge.run("rollback", "pool-a", "--yes", "-o", "json", "--reason", "bad rev-3")
        assert run.code == 0, run.stdout + run.stderr
        outcome = valid(run.json(), "action")
        assert outcome["outcome"] == "verified"
        nodes = {n["name"]: n for n in (await control.get("/sim/nodes")).json()["nodes"]}
    assert {nodes[n]["revision"] for n in ("node-001", "node-002")} == {"rev-2"}
    assert all(nodes[n]["fault"] is None for n in ("node-001", "node-002"))
    # one node at a time: the first is drained, rolled back and undrained before the second
    agents = [n.agent for n in edge.fleet.nodes[:2]]
    order = [c["where"] for c in outcome["changes"]]
    first_agent, second_agent = order.index(agents[0]), order.index(agents[1])
    assert order[:first_agent] == edge.endpoints  # node-001 drained on both replicas first
    assert order[first_agent + 1 : second_agent] == edge.endpoints * 2  # undrain 1, drain 2
    assert await edge.states("node-001") == ["UP", "UP"]
    assert await edge.states("node-002") == ["UP", "UP"]

    status = await edge.run("status", "-o", "json", "--window", "1s")
    pool = next(p for p in status.json()["pools"] if p["name"] == "pool-a")
    assert pool["error_rate"] is not None and pool["error_rate"] < 0.05


async def test_two_drains_planned_together_cannot_both_pass_min_healthy(edge: Edge) -> None:
    config = load_config(edge.config)
    collector = Collector(config, load_registry())
    try:
        await collector.scrape_all()
        actions = Actions(config, collector, AuditLog(edge.audit))
        first = actions.plan(Request("drain", "node-001"))
        second = actions.plan(Request("drain", "node-002"))
        assert first.refusal is None and second.refusal is None  # each fine on its own
        assert "pool-a" in first.locks
        done = await actions.execute(first)
        late = await actions.execute(second)  # planned before the first ran
    finally:
        await collector.aclose()
    assert done.status == "verified"
    assert late.status == "refused" and late.detail is not None
    assert late.detail.startswith("on a fresh look: draining node-002 leaves 0 healthy")
    assert await edge.states("node-002") == ["UP", "UP"]
