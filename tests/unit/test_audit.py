"""The audit log: records as written and read back, torn and corrupt lines, redaction,
several processes appending at once, and what the records say (unfinished, drift, acks)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from console.audit import (
    AUDIT_SCHEMA_VERSION,
    MASK,
    AuditLog,
    AuditRecord,
    AuditUnreadable,
    AuditUnwritable,
    active_acks,
    default_audit_path,
    entries,
    format_time,
    last_verified,
    parse_time,
    redact,
    unfinished,
)
from console.exitcodes import Exit
from console.identity import Identity, current_identity

ALICE = Identity(user="alice", host="bastion", origin="10.0.0.9")
T0 = 1_795_860_000.0  # 2026-11-28T10:00:00Z


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def log(tmp_path: Path, clock: Clock) -> AuditLog:
    return AuditLog(tmp_path / "state" / "audit.jsonl", clock=clock, identity=ALICE)


def lines(log: AuditLog) -> list[bytes]:
    return log.path.read_bytes().split(b"\n")


def test_intent_and_result_read_back_as_written(log: AuditLog, clock: Clock) -> None:
    clock.now = T0 + 0.1234567
    intent = log.intent("drain", ["us-1"], {"steps": ["DRAIN on 2 replicas"]}, "INC-42")
    clock.now += 1.5
    result = log.result(
        intent,
        "verified",
        replicas=[{"replica": "tcp://127.0.0.1:9999", "outcome": "verified"}],
        duration_s=1.5,
        commands={"revert": "fleetdeck undrain us-1 --yes"},
    )
    readout = log.read()
    assert readout.problems == ()
    assert readout.records == (intent, result)
    assert intent.id == result.id
    assert (intent.kind, result.kind) == ("intent", "result")
    assert intent.time == T0 + 0.123  # to the millisecond, as the line says
    assert (result.user, result.host, result.origin) == ("alice", "bastion", "10.0.0.9")
    assert (result.action, result.targets, result.reason) == ("drain", ("us-1",), "INC-42")
    assert result.outcome == "verified" and result.duration_s == 1.5


def test_each_line_is_one_compact_json_object_with_schema_version(log: AuditLog) -> None:
    intent = log.intent("failover", ["pool-a"], {"to": "pool-b"}, None)
    log.result(intent, "partial", duration_s=0.25, detail="1 of 2 replicas")
    raw = lines(log)
    assert raw[-1] == b"" and len(raw) == 3
    for line in raw[:2]:
        document = json.loads(line)
        assert document["schema_version"] == AUDIT_SCHEMA_VERSION
        assert b", " not in line and b'": ' not in line
    assert json.loads(raw[0])["time"] == format_time(intent.time)
    assert json.loads(raw[0])["time"].endswith("Z")


def test_file_is_private_and_its_folder_too(log: AuditLog) -> None:
    log.intent("drain", ["us-1"], {}, None)
    assert log.path.stat().st_mode & 0o777 == 0o600
    assert log.path.parent.stat().st_mode & 0o777 == 0o700


def test_ids_are_unique_and_sort_by_time(log: AuditLog, clock: Clock) -> None:
    made = []
    for step in range(20):
        clock.now = T0 + step * 0.001  # a new millisecond each
        made.append(log.intent("ack", ["us-1"], {}, None).id)
    assert made == sorted(made)
    same_moment = {log.intent("ack", ["us-1"], {}, None).id for _ in range(20)}
    assert len(same_moment) == 20


def test_times_format_and_parse_back() -> None:
    assert format_time(T0 + 0.5) == "2026-11-28T10:00:00.500Z"
    assert parse_time("2026-11-28T10:00:00.500Z") == T0 + 0.5
    with pytest.raises(ValueError, match="no UTC offset"):
        parse_time("2026-11-28T10:00:00")


def test_torn_last_line_is_reported_and_the_next_record_starts_fresh(log: AuditLog) -> None:
    first = log.intent("drain", ["us-1"], {}, None)
    with open(log.path, "ab") as file:  # a record cut short by power loss
        file.write(b'{"schema_version":1,"id":"2026')
    readout = log.read()
    assert readout.records == (first,)
    assert len(readout.problems) == 1
    assert readout.problems[0].startswith(f"{log.path}:2: torn last line (no newline): not JSON")
    second = log.result(first, "verified", duration_s=0.1)
    readout = log.read()
    assert readout.records == (first, second)  # not glued to the torn line
    assert len(readout.problems) == 1 and readout.problems[0].startswith(f"{log.path}:2: not JSON")


def test_corrupt_line_in_the_middle_is_skipped_with_its_line_number(log: AuditLog) -> None:
    first = log.intent("drain", ["us-1"], {}, None)
    with open(log.path, "ab") as file:
        file.write(b"\x00\xff garbage\n")
        file.write(b"[1, 2]\n")
        file.write(b"\n")  # blank lines are nothing, not problems
    last = log.result(first, "failed", duration_s=2.0)
    readout = log.read()
    assert readout.records == (first, last)
    assert [problem.split(": ", 1)[0] for problem in readout.problems] == [
        f"{log.path}:2",
        f"{log.path}:3",
    ]
    assert "not JSON" in readout.problems[0]
    assert "a JSON list, not an object" in readout.problems[1]


def record_json(log: AuditLog, **changes: Any) -> bytes:
    document = log.intent("drain", ["us-1"], {}, None).as_json()
    document.update(changes)
    return json.dumps(document).encode() + b"\n"


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"schema_version": 2}, "unknown schema_version 2 (this fleetdeck reads 1)"),
        ({"schema_version": True}, "unknown schema_version True"),
        ({"kind": "guess"}, "unknown kind 'guess'"),
        ({"outcome": "great"}, "unknown outcome 'great'"),
        ({"targets": "us-1"}, "'targets' is a JSON str"),
        ({"targets": [1]}, "'targets' holds a non-string"),
        ({"duration_s": True}, "'duration_s' is a JSON bool"),
        ({"time": "yesterday"}, "bad 'time'"),
        ({"time": "2026-11-28T10:00:00"}, "bad 'time': time '2026-11-28T10:00:00' has no UTC"),
    ],
)
def test_a_record_the_reader_cannot_use_is_a_problem(
    tmp_path: Path, log: AuditLog, changes: dict[str, Any], problem: str
) -> None:
    line = record_json(log, **changes)
    other = AuditLog(tmp_path / "other.jsonl")
    other.path.write_bytes(line)
    readout = other.read()
    assert readout.records == ()
    assert len(readout.problems) == 1
    assert readout.problems[0].startswith(f"{other.path}:1: {problem}")


def test_a_missing_field_is_named(tmp_path: Path, log: AuditLog) -> None:
    document = json.loads(record_json(log))
    del document["reason"]
    other = AuditLog(tmp_path / "other.jsonl")
    other.path.write_text(json.dumps(document) + "\n")
    assert other.read().problems == (f"{other.path}:1: no 'reason'",)


def test_read_since_keeps_records_at_or_after(log: AuditLog, clock: Clock) -> None:
    for step in range(5):
        clock.now = T0 + 60 * step
        log.intent("drain", [f"n{step}"], {}, None)
    assert [r.targets[0] for r in log.read(since=T0 + 120).records] == ["n2", "n3", "n4"]


def test_missing_log_is_empty_and_a_folder_in_its_place_is_unreadable(tmp_path: Path) -> None:
    readout = AuditLog(tmp_path / "nothing" / "audit.jsonl").read()
    assert (readout.records, readout.problems) == ((), ())
    (tmp_path / "audit.jsonl").mkdir()
    with pytest.raises(AuditUnreadable, match=r"audit.jsonl: cannot read the audit log: Is a dir"):
        AuditLog(tmp_path / "audit.jsonl").read()
    assert AuditUnreadable.exit_code == Exit.CONFIG


def test_an_unwritable_log_refuses_the_intent(tmp_path: Path) -> None:
    (tmp_path / "state").write_text("a file where the folder should be")
    log = AuditLog(tmp_path / "state" / "audit.jsonl", identity=ALICE)
    with pytest.raises(AuditUnwritable, match=r"state/audit.jsonl: cannot write the audit log"):
        log.intent("drain", ["us-1"], {}, None)
    assert AuditUnwritable.exit_code == Exit.WARN


def test_result_checks_its_arguments(log: AuditLog) -> None:
    intent = log.intent("drain", ["us-1"], {}, None)
    with pytest.raises(ValueError, match="unknown outcome 'fine'"):
        log.result(intent, "fine", duration_s=1.0)
    result = log.result(intent, "verified", duration_s=1.0)
    with pytest.raises(ValueError, match="takes an intent record"):
        log.result(result, "verified", duration_s=1.0)


# --- redaction -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "token",
        "access_token",
        "apiToken",
        "Authorization",
        "password",
        "db-password",
        "secret",
        "client_secret",
        "api_key",
        "X-Api-Key",
        "privateKey",
        "credentials",
        "cookie",
    ],
)
def test_values_under_secret_keys_are_masked(key: str) -> None:
    assert redact({"outer": [{key: "hunter2"}]}) == {"outer": [{key: MASK}]}
    assert redact({key: {"nested": "hunter2"}}) == {key: MASK}


@pytest.mark.parametrize("key", ["tokens_per_s", "prompt_tokens", "max_tokens", "keyboard"])
def test_figures_that_only_look_like_secrets_stay(key: str) -> None:
    assert redact({key: 42}) == {key: 42}


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("Authorization: Bearer eyJhbGciOi.x-y_z", f"Authorization: Bearer {MASK}"),
        ("curl -H 'authorization: basic dXNlcjpwdw=='", f"curl -H 'authorization: basic {MASK}'"),
        ("http://h/v1?token=abc123&x=1", f"http://h/v1?token={MASK}&x=1"),
        ('{"password": "hunter2"}', f'{{"password": "{MASK}"}}'),
        ("api-key: s3cr3t and more", f"api-key: {MASK} and more"),
        ("https://ops:hunter2@gw.example/stats", f"https://ops:{MASK}@gw.example/stats"),
        ("fleetdeck agent --token abc --port 1", f"fleetdeck agent --token {MASK} --port 1"),
        ("--db-password=abc", f"--db-password={MASK}"),
        ("fleetdeck agent --token-file /run/t", "fleetdeck agent --token-file /run/t"),
        ("tokens_per_s: 800", "tokens_per_s: 800"),
        ("drained 3 nodes", "drained 3 nodes"),
    ],
)
def test_secrets_inside_strings_are_masked(text: str, masked: str) -> None:
    assert redact(text) == masked


def test_the_word_after_a_secret_flag_in_an_argv_is_masked() -> None:
    argv = ["tool", "--token", "abc", "--api-key", "def", "-v", "--token-file", "/run/t"]
    assert redact({"argv": argv}) == {
        "argv": ["tool", "--token", MASK, "--api-key", MASK, "-v", "--token-file", "/run/t"]
    }


def test_redact_makes_any_value_json(tmp_path: Path) -> None:
    plain = redact({"inf": float("inf"), "path": tmp_path, "set": {1}, "ok": True, "n": None})
    assert plain == {"inf": None, "path": str(tmp_path), "set": [1], "ok": True, "n": None}
    json.dumps(plain, allow_nan=False)


def test_odd_values_still_make_a_record(log: AuditLog) -> None:
    intent = log.intent("drain", ["n\udcff1"], {"note": "line\nbreak"}, None)
    log.result(intent, "failed", duration_s=float("nan"))
    readout = log.read()
    assert readout.problems == ()
    assert readout.records[0].targets == ("n\udcff1",)
    assert readout.records[1].duration_s is None


def test_no_secret_reaches_the_file(log: AuditLog) -> None:
    plan = {"agent": {"url": "http://n1:9401", "token": "t0ps3cret"}, "tokens_per_s": 800.0}
    intent = log.intent("rollback", ["n1"], plan, "INC-7 header Bearer t0ps3cret")
    log.result(
        intent,
        "failed",
        replicas=[{"agent": "n1", "error": "401 for Authorization: Bearer t0ps3cret"}],
        detail="agent said: password=t0ps3cret",
        duration_s=3.0,
        commands={"retry": "fleetdeck rollback n1 --yes --token t0ps3cret"},
    )
    raw = log.path.read_bytes()
    assert b"t0ps3cret" not in raw
    assert b'"tokens_per_s":800.0' in raw
    assert intent.plan == {"agent": {"url": "http://n1:9401", "token": MASK}, "tokens_per_s": 800.0}


# --- several processes at once -------------------------------------------------------------

WRITER = """
import sys
from pathlib import Path
from console.audit import AuditLog
from console.identity import Identity

path, name, count = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
log = AuditLog(path, identity=Identity("ci", name, None))
print("ready", flush=True)
sys.stdin.readline()  # the start signal: every writer begins at once
for n in range(count):
    # lines longer than a page, so a line written in pieces would show
    intent = log.intent("drain", [name], {"n": n, "pad": name * 2500}, None)
    log.result(intent, "verified", duration_s=0.0, detail=name * 2500)
"""


@pytest.fixture
def writers(tmp_path: Path) -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        process.kill()
        process.wait(timeout=10)


def test_concurrent_appenders_never_interleave_within_a_line(
    tmp_path: Path, writers: list[subprocess.Popen[str]]
) -> None:
    path, count, names = tmp_path / "audit.jsonl", 60, ["w0", "w1", "w2", "w3"]
    for name in names:
        writers.append(
            subprocess.Popen(
                [sys.executable, "-c", WRITER, str(path), name, str(count)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
        )
    for process in writers:
        assert process.stdout is not None and process.stdout.readline() == "ready\n"
    for process in writers:
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.close()
    for process in writers:
        assert process.wait(timeout=60) == 0
    readout = AuditLog(path).read()
    assert readout.problems == ()
    assert len(readout.records) == 2 * count * len(names)
    for name in names:
        mine = [record for record in readout.records if record.host == name]
        assert [r.plan["n"] for r in mine if r.kind == "intent"] == list(range(count))
        assert all(r.detail == name * 2500 for r in mine if r.kind == "result")
    assert unfinished(readout.records) == []


# --- what the records say ------------------------------------------------------------------


def act(
    log: AuditLog,
    clock: Clock,
    action: str,
    targets: list[str],
    outcome: str | None,
    plan: dict[str, Any] | None = None,
) -> AuditRecord:
    """One action a minute apart; `outcome` None leaves it unfinished. Returns the last record."""
    clock.now += 60
    intent = log.intent(action, targets, plan or {}, None)
    if outcome is None:
        return intent
    return log.result(intent, outcome, duration_s=1.0)


def test_unfinished_are_intents_without_result_newest_first(log: AuditLog, clock: Clock) -> None:
    older = act(log, clock, "drain", ["us-1"], None)
    act(log, clock, "drain", ["us-2"], "verified")
    newer = act(log, clock, "failover", ["pool-a"], None)
    records = log.read().records
    assert unfinished(records) == [newer, older]
    assert [entry.result is None for entry in entries(records)] == [True, False, True]


def test_last_verified_is_the_newest_state_change_that_held(log: AuditLog, clock: Clock) -> None:
    drained = act(log, clock, "drain", ["us-1", "us-2"], "verified")
    act(log, clock, "undrain", ["us-1"], "failed")  # us-1 should still be drained
    undrained = act(log, clock, "undrain", ["us-2"], "noop")  # already up: as asked
    act(log, clock, "ack", ["us-2"], "verified", {"until": T0 + 10**6})  # not a state change
    act(log, clock, "drain", ["us-3"], "partial")
    act(log, clock, "drain", ["us-4"], None)
    failed_over = act(log, clock, "failover", ["pool-a"], "verified")
    assert last_verified(log.read().records) == {
        "us-1": drained,
        "us-2": undrained,
        "pool-a": failed_over,
    }


def test_active_acks(log: AuditLog, clock: Clock) -> None:
    now = T0 + 3600
    act(log, clock, "ack", ["us-1"], "verified", {"until": now + 600})
    act(log, clock, "ack", ["us-2"], "verified", {"until": now - 1})  # expired
    act(log, clock, "ack", ["us-3"], "verified", {"until": now + 600})
    act(log, clock, "ack", ["us-3"], "verified", {"until": now - 1})  # replaced, now expired
    act(log, clock, "ack", ["us-4"], "verified", {"until": now + 600})
    act(log, clock, "unack", ["us-4"], "verified")
    act(log, clock, "ack", ["us-5"], None, {"until": now + 600})  # never finished
    act(log, clock, "ack", ["us-6"], "failed", {"until": now + 600})
    act(log, clock, "ack", ["us-7"], "verified", {"until": "soon"})
    act(log, clock, "ack", ["pool-a", "pool-b"], "verified", {"until": now + 60})
    act(log, clock, "ack", ["pool-b"], "noop", {"until": now + 900})
    acks = active_acks(log.read().records, now)
    assert sorted(acks) == ["pool-a", "pool-b", "us-1"]
    assert acks["pool-b"].plan["until"] == now + 900
    assert all(ack.kind == "intent" for ack in acks.values())
    assert active_acks(log.read().records, now + 61) == {
        "us-1": acks["us-1"],
        "pool-b": acks["pool-b"],
    }


# --- identity and places -------------------------------------------------------------------


def test_identity_names_the_ssh_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSH_CLIENT", "192.0.2.7 52114 22")
    monkeypatch.setenv("USER", "carol")
    monkeypatch.setenv("LOGNAME", "carol")
    identity = current_identity()
    assert identity == Identity(user="carol", host=socket.gethostname(), origin="192.0.2.7")
    assert str(identity) == f"carol@{socket.gethostname()}"
    monkeypatch.delenv("SSH_CLIENT")
    assert current_identity().origin is None


def test_identity_without_a_login_name_falls_back_to_the_uid(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_login() -> str:
        raise OSError("No username set in the environment")

    monkeypatch.setattr("getpass.getuser", no_login)
    assert current_identity().user == f"uid:{os.getuid()}"


def test_default_path_is_in_the_state_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert default_audit_path() == tmp_path / "fleetdeck" / "audit.jsonl"
    monkeypatch.delenv("XDG_STATE_HOME")
    assert default_audit_path() == Path.home() / ".local" / "state" / "fleetdeck" / "audit.jsonl"
