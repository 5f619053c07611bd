"""One action per target at a time on this host: a lock file per target, held with flock.

The kernel drops an flock when the process holding it dies, so a console killed with SIGKILL
never leaves a stale lock behind. Lock files are never deleted: removing one that another process
has just opened would let two processes each hold "the" lock. While held, a file says who holds
it (JSON), so the next operator is told who to talk to; it is emptied on release.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from console.audit import format_time, parse_time
from console.errors import ActionError
from console.exitcodes import Exit
from console.identity import Identity

log = logging.getLogger("fleetdeck.locks")

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_MAX_NAME = 200  # escaped; file names stop at 255 bytes


def lock_folder(audit_path: Path) -> Path:
    """Where the locks live: `locks/` beside the audit log."""
    return audit_path.parent / "locks"


def lock_file_name(target: str) -> str:
    """`us-1` -> `us-1.lock`; anything but letters, digits, `-` and `_` is %-escaped, so names
    like `../x` or `a/b` stay inside the folder and two targets never share a file.
    """
    escaped = _UNSAFE.sub(lambda match: "".join(f"%{b:02X}" for b in match[0].encode()), target)
    if not target or len(escaped) > _MAX_NAME:
        raise ActionError(f"cannot lock target {target!r}: the name is empty or too long")
    return f"{escaped}.lock"


class LockHeld(ActionError):
    """Another process on this host is acting on the target (exit 1: refused)."""

    exit_code = Exit.WARN

    def __init__(self, target: str, holder: Mapping[str, Any] | None, now: float) -> None:
        self.target = target
        self.holder = holder
        self.age_s: float | None = None
        if holder is None:
            who = "another process (it has not written who it is yet)"
        else:
            action = f", {holder['action']}" if holder.get("action") else ""
            who = f"{holder.get('user')}@{holder.get('host')} (pid {holder.get('pid')}{action})"
            since = _epoch_or_none(holder.get("since"))
            if since is not None:
                self.age_s = max(0.0, now - since)
                who += f" since {holder['since']} ({self.age_s:.0f} s ago)"
        super().__init__(f"{target}: locked by {who}; another action on it is under way")


class TargetLocks:
    """`with TargetLocks(folder, targets, identity):` holds every target's lock, or raises
    LockHeld (releasing whatever it took). Locks are taken in sorted order and never wait, so two
    operators locking overlapping sets cannot deadlock, and the later one is told at once.
    """

    def __init__(
        self,
        folder: Path,
        targets: Sequence[str],
        identity: Identity,
        clock: Callable[[], float] = time.time,
        *,
        action: str | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.targets = tuple(sorted(set(targets)))
        self._paths = [self.folder / lock_file_name(target) for target in self.targets]
        self._identity = identity
        self._clock = clock
        self._action = action
        self._held: list[int] = []

    def __enter__(self) -> TargetLocks:
        try:
            self._make_folder()
            for target, path in zip(self.targets, self._paths, strict=True):
                self._held.append(self._take(target, path))
        except BaseException:
            self._release()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._release()

    def _make_folder(self) -> None:
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            names = ", ".join(self.targets)
            raise ActionError(f"cannot lock {names}: {self.folder}: {exc.strerror or exc}") from exc

    def _take(self, target: str, path: Path) -> int:
        try:
            descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise ActionError(f"cannot lock {target}: {path}: {exc.strerror or exc}") from exc
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(descriptor)
            os.close(descriptor)
            raise LockHeld(target, holder, self._clock()) from None
        except OSError as exc:
            os.close(descriptor)
            raise ActionError(f"cannot lock {target}: {path}: {exc.strerror or exc}") from exc
        self._write_holder(descriptor)
        return descriptor

    def _write_holder(self, descriptor: int) -> None:
        holder = {
            "user": self._identity.user,
            "host": self._identity.host,
            "origin": self._identity.origin,
            "pid": os.getpid(),
            "since": format_time(self._clock()),
            "action": self._action,
        }
        os.ftruncate(descriptor, 0)  # a holder killed earlier left its line behind
        os.pwrite(descriptor, json.dumps(holder).encode() + b"\n", 0)

    def _release(self) -> None:
        while self._held:
            descriptor = self._held.pop()
            try:
                os.ftruncate(descriptor, 0)  # still locked: nobody else is writing
            except OSError as exc:  # the lock still goes; only the holder line stays
                log.warning("could not clear a lock file's holder: %s", exc)
            os.close(descriptor)  # closing drops the flock


def _read_holder(descriptor: int) -> dict[str, Any] | None:
    """Who holds the lock, as its file says; None when it says nothing usable yet."""
    try:
        holder = json.loads(os.pread(descriptor, 4096, 0))
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


def _epoch_or_none(text: Any) -> float | None:
    try:
        return parse_time(text) if isinstance(text, str) else None
    except ValueError:
        return None
