"""The audit log survives a console SIGKILLed at random moments: no line is ever corrupt, every
record a call returned is in the file, and each action cut short shows as unfinished."""

from __future__ import annotations

import random
import select
import subprocess
import sys
import time
from pathlib import Path

from console.audit import AuditLog, entries, unfinished

ACTIONS = 200
KILLS = 25
SEED = 20261128

CONSOLE = """
import random, sys, time
from pathlib import Path
from console.audit import AuditLog, entries
from console.identity import Identity

path, total, seed = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
log = AuditLog(path, identity=Identity("ci", "crash", None))
done = {e.intent.plan["n"] for e in entries(log.read().records) if e.intent and e.result}
pause = random.Random(seed)
print("ready", flush=True)
for n in range(total):
    if n in done:
        continue
    intent = log.intent("drain", [f"node-{n}"], {"n": n}, "crash test")
    print(f"intent {intent.id}", flush=True)
    time.sleep(pause.uniform(0.0005, 0.004))  # the action itself
    log.result(intent, "verified", duration_s=0.0)
    print(f"result {intent.id}", flush=True)
"""


def run_console(path: Path, run: int, kill_after: float | None) -> tuple[int, list[str]]:
    """One console run, SIGKILLed `kill_after` seconds after it starts acting (None: let it end).
    Returns its exit status and what it said it had written."""
    process = subprocess.Popen(
        [sys.executable, "-c", CONSOLE, str(path), str(ACTIONS), str(SEED + run)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 20)
        assert ready and process.stdout.readline() == "ready\n", "the console did not start"
        if kill_after is not None:
            time.sleep(kill_after)
            process.kill()
        said, _ = process.communicate(timeout=30)
    finally:
        process.kill()
        process.wait(timeout=10)
    return process.returncode, said.split("\n")[:-1]  # a line cut by the kill is no promise


def test_sigkill_at_random_moments_loses_nothing(tmp_path: Path) -> None:
    path, chance = tmp_path / "audit.jsonl", random.Random(SEED)
    said: list[str] = []
    killed = 0
    for run in range(KILLS + 2):
        kill_after = chance.uniform(0.0, 0.04) if killed < KILLS else None
        code, lines = run_console(path, run, kill_after)
        said += lines
        if code == 0:
            break
        killed += 1
    assert code == 0, "the console never finished its actions"

    raw = path.read_bytes()
    assert raw.endswith(b"\n") and b"\n\n" not in raw  # no torn line, no fresh-line repair
    readout = AuditLog(path).read()
    assert readout.problems == ()
    records = readout.records
    written = {(record.kind, record.id) for record in records}
    assert {tuple(line.split()) for line in said} <= written  # returned means in the file

    actions = entries(records)
    assert all(action.intent is not None for action in actions)  # no result without its intent
    done = [action for action in actions if action.result is not None]
    assert sorted(action.first.plan["n"] for action in done) == list(range(ACTIONS))

    cut_short = unfinished(records)
    assert {r.id for r in cut_short} == {a.first.id for a in actions if a.result is None}
    assert 1 <= len(cut_short) <= killed  # at most one action in flight per kill
    finished_at = {action.first.plan["n"]: action.first.time for action in done}
    for intent in cut_short:  # each was started again and finished by a later run
        assert finished_at[intent.plan["n"]] >= intent.time
