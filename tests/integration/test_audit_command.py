"""`fleetdeck audit`: the table, JSON against its schema, --since, --unfinished, bad lines."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from console.audit import AuditLog
from console.commands import audit as audit_command
from console.exitcodes import Exit
from console.identity import Identity

SCHEMA = Path(__file__).resolve().parents[2] / "console" / "schemas" / "audit.schema.json"
ALICE = Identity(user="alice", host="bastion", origin="10.0.0.9")
BOB = Identity(user="bob", host="laptop", origin=None)
T0 = 1_795_860_000.0  # 2026-11-28T10:00:00Z


def validate(document: dict[str, Any]) -> None:
    jsonschema.validate(document, json.loads(SCHEMA.read_text()))


def audit(capsys: pytest.CaptureFixture[str], *words: str) -> tuple[int, str, str]:
    """Run `fleetdeck audit WORDS` through a parser built from the command's own register()."""
    parser = argparse.ArgumentParser(prog="fleetdeck")
    audit_command.register(parser.add_subparsers())
    args = parser.parse_args(["audit", *words])
    code = args.func(args)
    out, err = capsys.readouterr()
    return code, out, err


def write_log(path: Path, start: float) -> None:
    """A verified drain, a partial failover, an unfinished undrain and a corrupt line."""
    clock = [start]
    alice = AuditLog(path, clock=lambda: clock[0], identity=ALICE)
    bob = AuditLog(path, clock=lambda: clock[0], identity=BOB)
    drain = alice.intent("drain", ["us-1"], {"replicas": 2}, "INC-42\nsecond line")
    clock[0] += 1.25
    alice.result(drain, "verified", duration_s=1.25, commands={"revert": "fleetdeck undrain us-1"})
    clock[0] += 600
    failover = bob.intent("failover", ["pool-a", "pool-b"], {"to": "pool-c"}, None)
    with open(path, "ab") as file:
        file.write(b"not json at all\n")
    clock[0] += 3
    bob.result(failover, "partial", duration_s=3.0, detail="1 of 2 replicas")
    clock[0] += 600
    alice.intent("undrain", ["us-1"], {}, "INC-42")


def test_table_pairs_intents_and_results_newest_last(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, T0)
    code, out, err = audit(capsys, "--audit-log", str(path))
    assert code == Exit.OK
    assert out.splitlines() == [
        "TIME                  USER@HOST      ACTION    TARGETS        OUTCOME                 "
        "DURATION  REASON",
        "2026-11-28T10:00:00Z  alice@bastion  drain     us-1           verified                "
        "1.2s      INC-42 second line",
        "2026-11-28T10:10:01Z  bob@laptop     failover  pool-a,pool-b  partial                 "
        "3.0s      -",
        "2026-11-28T10:20:04Z  alice@bastion  undrain   us-1           UNFINISHED (no result)  "
        "-         INC-42",
    ]
    assert err.startswith(f"{path}:4: not JSON (") and err.count("\n") == 1


def test_json_matches_the_schema(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, T0)
    code, out, _ = audit(capsys, "--audit-log", str(path), "-o", "json")
    assert code == Exit.OK
    document = json.loads(out)
    validate(document)
    assert document["schema_version"] == 1
    assert [(r["kind"], r["action"]) for r in document["records"]] == [
        ("intent", "drain"),
        ("result", "drain"),
        ("intent", "failover"),
        ("result", "failover"),
        ("intent", "undrain"),
    ]
    assert document["records"][1]["commands"] == {"revert": "fleetdeck undrain us-1"}
    [problem] = document["problems"]
    assert problem.startswith(f"{path}:4: not JSON (")


def test_unfinished_shows_only_actions_without_a_result(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, T0)
    code, out, _ = audit(capsys, "--audit-log", str(path), "--unfinished", "-o", "json")
    assert code == Exit.OK
    assert [(r["kind"], r["action"]) for r in json.loads(out)["records"]] == [("intent", "undrain")]
    _, out, _ = audit(capsys, "--audit-log", str(path), "--unfinished")
    assert len(out.splitlines()) == 2 and "UNFINISHED" in out.splitlines()[1]


def test_since_a_duration_ago(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, time.time() - 1800)  # actions 30, 20 and 10 minutes ago
    _, out, _ = audit(capsys, "--audit-log", str(path), "--since", "25m", "-o", "json")
    assert [r["action"] for r in json.loads(out)["records"]] == ["failover", "failover", "undrain"]


@pytest.mark.parametrize(
    "since", ["2026-11-28T10:05Z", "2026-11-28T10:05", "2026-11-28T11:05+01:00"]
)
def test_since_a_time(tmp_path: Path, capsys: pytest.CaptureFixture[str], since: str) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, T0)
    _, out, _ = audit(capsys, "--audit-log", str(path), "--since", since)
    assert [line.split()[2] for line in out.splitlines()[1:]] == ["failover", "undrain"]


def test_a_bad_since_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        audit(capsys, "--since", "yesterday")
    assert "bad --since 'yesterday'" in capsys.readouterr().err


def test_a_missing_log_is_no_records(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "none" / "audit.jsonl"
    code, out, err = audit(capsys, "--audit-log", str(path))
    assert (code, out) == (Exit.OK, "")
    assert err == f"fleetdeck: audit: no actions recorded in {path}\n"
    code, out, _ = audit(capsys, "--audit-log", str(path), "-o", "json")
    assert code == Exit.OK
    assert json.loads(out) == {"schema_version": 1, "records": [], "problems": []}


def test_the_default_log_is_in_the_state_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    write_log(tmp_path / "fleetdeck" / "audit.jsonl", T0)
    code, out, _ = audit(capsys)
    assert code == Exit.OK and len(out.splitlines()) == 4


def test_an_unreadable_log_exits_78(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "audit.jsonl"
    path.mkdir()  # unreadable as a file whoever runs the test (root reads through chmod 000)
    code, out, err = audit(capsys, "--audit-log", str(path))
    assert (code, out) == (Exit.CONFIG, "")
    assert err == f"fleetdeck: audit: {path}: cannot read the audit log: Is a directory\n"


def test_the_real_command_line(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, T0)
    done = subprocess.run(
        [sys.executable, "-m", "console", "audit", "--audit-log", str(path), "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == Exit.OK, done.stderr
    validate(json.loads(done.stdout))
    assert done.stderr.count("\n") == 1 and ":4: not JSON" in done.stderr
