"""Per-target locks: held by another process, released when it dies, taken in sorted order."""

from __future__ import annotations

import fcntl
import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from console.errors import ActionError
from console.exitcodes import Exit
from console.identity import Identity
from console.locks import LockHeld, TargetLocks, lock_file_name, lock_folder

BOB = Identity(user="bob", host="laptop", origin=None)

HOLDER = """
import sys
from pathlib import Path
from console.identity import Identity
from console.locks import TargetLocks

alice = Identity("alice", "bastion", "10.0.0.9")
with TargetLocks(Path(sys.argv[1]), sys.argv[2:], alice, action="drain"):
    print("locked", flush=True)
    sys.stdin.readline()  # hold until told, or killed
"""

Holder = Callable[..., subprocess.Popen[str]]


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[Holder]:
    """Start a process that holds the given targets' locks until it is told or killed."""
    started: list[subprocess.Popen[str]] = []

    def start(*targets: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(tmp_path / "locks"), *targets],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 20)
        assert ready, "the holder did not take its locks within 20 s"
        assert process.stdout.readline() == "locked\n"
        return process

    yield start
    for process in started:
        process.kill()
        process.wait(timeout=10)


def test_a_lock_held_by_another_process_names_who_and_since_when(
    tmp_path: Path, holder: Holder
) -> None:
    process = holder("us-1")
    later = time.time() + 30
    with (
        pytest.raises(LockHeld) as caught,
        TargetLocks(tmp_path / "locks", ["us-1"], BOB, clock=lambda: later),
    ):
        pytest.fail("took a lock another process holds")
    held = caught.value
    assert held.target == "us-1"
    assert held.holder is not None and held.holder["pid"] == process.pid
    assert held.age_s is not None and 29 <= held.age_s <= 60
    message = str(held)
    assert message.startswith(f"us-1: locked by alice@bastion (pid {process.pid}, drain) since 20")
    assert f"({held.age_s:.0f} s ago)" in message
    assert held.exit_code == Exit.WARN and isinstance(held, ActionError)


def test_the_lock_file_says_who_holds_it_until_release(tmp_path: Path) -> None:
    folder = tmp_path / "locks"
    with TargetLocks(folder, ["us-1"], BOB, clock=lambda: 1_795_860_000.0, action="undrain"):
        holder = json.loads((folder / "us-1.lock").read_text())
        assert holder == {
            "user": "bob",
            "host": "laptop",
            "origin": None,
            "pid": os.getpid(),
            "since": "2026-11-28T10:00:00.000Z",
            "action": "undrain",
        }
    assert (folder / "us-1.lock").read_text() == ""
    assert folder.stat().st_mode & 0o777 == 0o700
    assert (folder / "us-1.lock").stat().st_mode & 0o777 == 0o600


def test_a_sigkilled_holder_leaves_no_stale_lock(tmp_path: Path, holder: Holder) -> None:
    process = holder("us-1", "us-2")
    process.kill()
    process.wait(timeout=10)
    # its holder line is still in the file, but the kernel dropped the lock with the process
    assert json.loads((tmp_path / "locks" / "us-1.lock").read_text())["pid"] == process.pid
    with TargetLocks(tmp_path / "locks", ["us-2", "us-1"], BOB):
        assert json.loads((tmp_path / "locks" / "us-1.lock").read_text())["user"] == "bob"


def test_a_holder_that_finishes_releases_every_lock(tmp_path: Path, holder: Holder) -> None:
    process = holder("us-1", "us-2")
    assert process.stdin is not None
    process.stdin.write("done\n")
    process.stdin.close()
    assert process.wait(timeout=10) == 0
    with TargetLocks(tmp_path / "locks", ["us-1", "us-2"], BOB):
        pass


def test_locks_are_taken_in_sorted_order_and_a_failure_releases_those_taken(
    tmp_path: Path, holder: Holder
) -> None:
    folder = tmp_path / "locks"
    holder("b")
    with (
        pytest.raises(LockHeld, match=r"^b: locked by alice@bastion"),
        TargetLocks(folder, ["c", "b", "a"], BOB),
    ):
        pytest.fail("took b while another process holds it")
    # a (before b) was taken and released again; c (after b) was never tried
    assert sorted(path.name for path in folder.iterdir()) == ["a.lock", "b.lock"]
    with TargetLocks(folder, ["a", "c"], BOB) as locks:
        assert locks.targets == ("a", "c")


def test_overlapping_sets_in_one_process_conflict(tmp_path: Path) -> None:
    folder = tmp_path / "locks"
    with TargetLocks(folder, ["b", "a", "a"], BOB) as first:
        assert first.targets == ("a", "b")
        with pytest.raises(LockHeld) as caught, TargetLocks(folder, ["c", "b"], BOB):
            pytest.fail("took b twice")
        assert caught.value.holder is not None and caught.value.holder["pid"] == os.getpid()
    with TargetLocks(folder, ["c", "b"], BOB):
        pass


def test_a_holder_that_has_not_written_yet_is_still_a_holder(tmp_path: Path) -> None:
    folder = tmp_path / "locks"
    folder.mkdir()
    descriptor = os.open(folder / "us-1.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with (
            pytest.raises(LockHeld, match="has not written who it is yet") as caught,
            TargetLocks(folder, ["us-1"], BOB),
        ):
            pytest.fail("took a lock that is held")
        assert caught.value.holder is None and caught.value.age_s is None
    finally:
        os.close(descriptor)


@pytest.mark.parametrize(
    ("target", "name"),
    [
        ("us-1", "us-1.lock"),
        ("pool_a", "pool_a.lock"),
        ("../etc/passwd", "%2E%2E%2Fetc%2Fpasswd.lock"),
        ("a/b", "a%2Fb.lock"),
        ("a%2Fb", "a%252Fb.lock"),
        (".", "%2E.lock"),
        ("nœud", "n%C5%93ud.lock"),
    ],
)
def test_target_names_become_safe_distinct_file_names(target: str, name: str) -> None:
    assert lock_file_name(target) == name


@pytest.mark.parametrize("target", ["", "x" * 201, "/" * 67])
def test_names_that_cannot_be_files_are_refused(target: str) -> None:
    with pytest.raises(ActionError, match="the name is empty or too long"):
        lock_file_name(target)


def test_a_tricky_name_stays_in_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "state" / "locks"
    with TargetLocks(folder, ["../escape"], BOB):
        assert [path.name for path in folder.iterdir()] == ["%2E%2E%2Fescape.lock"]
    assert sorted(path.name for path in folder.parent.iterdir()) == ["locks"]


def test_a_folder_that_cannot_be_made_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "state").write_text("a file where the folder should be")
    with (
        pytest.raises(ActionError, match=r"cannot lock us-1: .*state/locks: "),
        TargetLocks(tmp_path / "state" / "locks", ["us-1"], BOB),
    ):
        pytest.fail("locked in a folder that cannot exist")


def test_the_folder_is_beside_the_audit_log(tmp_path: Path) -> None:
    assert lock_folder(tmp_path / "audit.jsonl") == tmp_path / "locks"
