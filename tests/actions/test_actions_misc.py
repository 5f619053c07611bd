"""ack, operator commands, read-only commands and crash safety of the action commands."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import httpx
import yaml

from console.actions import Actions
from console.audit import AuditLog
from console.collector import Collector
from console.config import load_config
from console.identity import Identity
from console.locks import TargetLocks, lock_folder
from console.plans import Request
from console.plugin import load_registry
from tests.actions.conftest import Edge, start_edge
from tests.integration.conftest import fleetdeck


async def test_ack_silences_a_node_until_it_expires(edge: Edge) -> None:
    async with httpx.AsyncClient(base_url=edge.fleet.control_url, timeout=5.0) as control:
        response = await control.put("/sim/nodes/node-004", json={"fault": "refuse"})
        assert response.status_code == 200
    before = await edge.run("check", "--window", "0.2s")
    assert before.code in (1, 2) and "pool pool-b" in before.stdout

    ack = await edge.run("ack", "node-004", "--for", "30m", "--reason", "known: INC-9", "--yes")
    assert ack.code == 0, ack.stdout + ack.stderr
    after = await edge.run("check", "--window", "0.2s")
    assert after.code == 0, after.stdout
    status = await edge.run("status", "-o", "json", "--window", "0.2s")
    node = next(n for n in status.json()["nodes"] if n["name"] == "node-004")
    assert node["ack"]["reason"] == "known: INC-9" and node["severity"] == "crit"

    short = await edge.run("ack", "node-004", "--for", "1s", "--yes")  # replaces the 30m one
    assert short.code == 0
    await asyncio.sleep(1.2)
    expired = await edge.run("check", "--window", "0.2s")
    assert expired.code in (1, 2), expired.stdout


async def test_operator_commands_run_without_a_shell_and_are_audited(
    edge: Edge, tmp_path: Path
) -> None:
    document = yaml.safe_load(edge.config.read_text())
    document["commands"] = [
        {
            "name": "where",
            "key": "W",
            "scope": "node",
            "argv": [
                sys.executable,
                "-c",
                "import sys; print(sys.argv[1:])",
                "{node}",
                "{server};ls",
            ],
        },
        {
            "name": "wipe",
            "scope": "pool",
            "argv": [sys.executable, "-c", "pass"],
            "dangerous": True,
        },
        {"name": "fails", "scope": "pool", "argv": [sys.executable, "-c", "raise SystemExit(3)"]},
    ]
    edge.config.write_text(yaml.safe_dump(document), encoding="utf-8")

    run = await edge.run("command", "where", "node-001", "--yes")
    assert run.code == 0, run.stdout + run.stderr
    assert "['node-001', 'node-001;ls']" in run.stdout  # one argument, no shell
    failed = await edge.run("command", "fails", "pool-a", "--yes")
    assert failed.code == 2 and "exit 3" in failed.stdout
    read_only = await edge.run("command", "wipe", "pool-a", "--yes", "--read-only")
    assert read_only.code == 1 and "read-only" in read_only.stdout
    allowed = await edge.run("command", "where", "node-002", "--yes", "--read-only")
    assert allowed.code == 0
    unknown = await edge.run("command", "nope", "pool-a", "--yes")
    assert unknown.code == 1 and "no command named 'nope'" in unknown.stdout
    actions = [json.loads(line)["action"] for line in edge.audit.read_text().splitlines()]
    assert actions.count("command:where") == 4 and "command:fails" in actions


async def test_a_console_killed_mid_action_leaves_an_unfinished_intent(tmp_path: Path) -> None:
    fleet, replicas, edge = await start_edge(tmp_path)
    try:
        url = replicas[0].frontend_url("pool-b") + "/v1/completions"
        async with httpx.AsyncClient(timeout=10.0) as client:
            long = {"prompt": "hold on", "max_tokens": 1000}
            requests = [asyncio.create_task(client.post(url, json=long)) for _ in range(2)]
            await edge.settle(lambda s: (s.servers[("pool-b", "node-003")].scur or 0) > 0)
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "console",
                "drain",
                "node-003",
                "-c",
                str(edge.config),
                "--audit-log",
                str(edge.audit),
                "--yes",
                "--wait",
                "--timeout",
                "20s",
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 10.0
            while not edge.audit.exists() or edge.audit.read_text().count("\n") < 1:
                assert loop.time() < deadline, "no intent was written"
                await asyncio.sleep(0.02)
            os.kill(process.pid, signal.SIGKILL)  # between the intent and the result
            await process.wait()
            await asyncio.gather(*requests)
        listing = await fleetdeck(
            "audit", "--audit-log", str(edge.audit), "--unfinished", "-o", "json"
        )
        assert listing.code == 0, listing.stderr
        (record,) = listing.json()["records"]
        assert (record["kind"], record["action"], record["targets"]) == (
            "intent",
            "drain",
            ["node-003"],
        )
        table = await fleetdeck("audit", "--audit-log", str(edge.audit))
        assert "UNFINISHED (no result)" in table.stdout
        # the next action started on this host names it first
        later = await edge.run("undrain", "node-003", "--yes")
        assert (
            later.code == 0 and f"unfinished action {record['id']}: drain node-003" in later.stderr
        )
    finally:
        for replica in replicas:
            await replica.stop()
        await fleet.stop()


async def test_a_held_lock_refuses_with_who_holds_it(edge: Edge) -> None:
    holder = Identity("alice", "bastion-2", None)
    with TargetLocks(lock_folder(edge.audit), ["node-001"], holder, action="drain"):
        run = await edge.run("drain", "node-001", "--yes")
    assert run.code == 1, run.stdout + run.stderr
    assert "node-001: locked by alice@bastion-2" in run.stdout
    assert await edge.states("node-001") == ["UP", "UP"]
    after = await edge.run("drain", "node-001", "--yes")  # released: the next one goes ahead
    assert after.code == 0


async def test_the_prompt_on_a_terminal_asks_before_acting(edge: Edge) -> None:
    async def answer(text: bytes) -> tuple[int, str]:
        leader, follower = os.openpty()
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "console",
            "drain",
            "node-001",
            "-c",
            str(edge.config),
            "--audit-log",
            str(edge.audit),
            stdin=follower,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        os.close(follower)
        try:
            os.write(leader, text)
            out, err = await asyncio.wait_for(process.communicate(), 30)
        finally:
            os.close(leader)
        assert process.returncode is not None
        return process.returncode, out.decode() + err.decode()

    code, said = await answer(b"n\n")
    assert code == 1 and "Proceed? [y/N]" in said and "not confirmed" in said
    assert "drain node node-001 (pool pool-a)" in said  # the plan is shown before the question
    assert await edge.states("node-001") == ["UP", "UP"]
    code, said = await answer(b"y\n")
    assert code == 0 and "verified" in said
    assert await edge.states("node-001") == ["DRAIN", "DRAIN"]


async def test_rollback_of_a_node_to_a_revision_and_a_busy_agent(edge: Edge) -> None:
    node = edge.fleet.nodes[2]  # node-003, pool-b
    run = await edge.run("rollback", node.name, "--to", "rev-1", "--yes")
    assert run.code == 0, run.stdout + run.stderr
    assert f"{node.name} serves rev-1" in run.stdout
    again = await edge.run("rollback", node.name, "--to", "rev-1", "--yes")
    assert again.code == 0 and "already at rev-1" in again.stdout  # not drained for nothing
    assert "DRAIN" not in again.stdout

    config = load_config(edge.config)
    collector = Collector(config, load_registry())
    try:
        await collector.scrape_all()
        actions = Actions(config, collector, AuditLog(edge.audit))
        async with httpx.AsyncClient(base_url=node.agent, timeout=5.0) as agent:
            started = await agent.post("/v1/rollback", json={"to": "rev-2"})
            assert started.status_code == 202  # someone else's rollback, still running
            busy = await actions.execute(actions.plan(Request("rollback", node.name, to="rev-2")))
    finally:
        await collector.aclose()
    assert (busy.status, busy.exit_code) == ("failed", 2)
    assert any("HTTP 409" in (c.detail or "") for c in busy.changes)
    assert busy.retry is not None and "--to rev-2" in busy.retry
    # the rollback never started: the node went back into rotation
    assert await edge.states(node.name, backend="pool-b") == ["UP", "UP"]
