"""The deployment history file: what a node runs, what it ran, and the action in flight.

A small JSON document, rewritten whole and atomically on every change (temp file in the same
directory, fsync, rename over, fsync the directory), so a crash at any instant leaves either the
old document or the new one. The action in flight is written before its command runs: an agent
killed mid-action finds it on restart and reports it interrupted.

    {"format": 1, "current": "rev-2", "configured": "rev-2",
     "history": [{"revision", "at", "reason", "action_id"}, ...],   newest first
     "actions": [{action}, ...],                                      finished, newest first
     "running": {action} | null}
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import NoneType
from typing import Any

from console.errors import FleetdeckError

FORMAT = 1
HISTORY_KEPT = 100  # deploy records kept in the file
ACTIONS_KEPT = 20  # finished actions kept in the file, so a restart still answers for them


class HistoryError(FleetdeckError):
    title = "history"


@dataclass(frozen=True, slots=True)
class Action:
    """A rollback or a hook run: requested, running, then done, failed or interrupted."""

    id: str
    kind: str  # rollback, hook
    name: str | None  # the hook's name; None for a rollback
    from_revision: str | None
    to_revision: str | None
    reason: str
    state: str  # running, done, failed, interrupted
    started: float
    finished: float | None = None
    exit_code: int | None = None
    output_tail: str = ""
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "name": self.name,
            "from": self.from_revision,
            "to": self.to_revision,
            "reason": self.reason,
            "state": self.state,
            "started": self.started,
            "finished": self.finished,
            "exit_code": self.exit_code,
            "output_tail": self.output_tail,
            "error": self.error,
        }

    @classmethod
    def from_json(cls, data: object) -> Action:
        fields = _object(data, "action")
        return cls(
            id=_field(fields, "id", str),
            kind=_field(fields, "kind", str),
            name=_field(fields, "name", str, NoneType),
            from_revision=_field(fields, "from", str, NoneType),
            to_revision=_field(fields, "to", str, NoneType),
            reason=_field(fields, "reason", str),
            state=_field(fields, "state", str),
            started=_field(fields, "started", int, float),
            finished=_field(fields, "finished", int, float, NoneType),
            exit_code=_field(fields, "exit_code", int, NoneType),
            output_tail=_field(fields, "output_tail", str),
            error=_field(fields, "error", str, NoneType),
        )


@dataclass(frozen=True, slots=True)
class Deployed:
    """One entry of the history: a revision became current."""

    revision: str
    at: float
    reason: str
    action_id: str | None  # None when the config declared it

    def as_json(self) -> dict[str, Any]:
        return {
            "revision": self.revision,
            "at": self.at,
            "reason": self.reason,
            "action_id": self.action_id,
        }

    @classmethod
    def from_json(cls, data: object) -> Deployed:
        fields = _object(data, "history entry")
        return cls(
            revision=_field(fields, "revision", str),
            at=_field(fields, "at", int, float),
            reason=_field(fields, "reason", str),
            action_id=_field(fields, "action_id", str, NoneType),
        )


@dataclass(frozen=True, slots=True)
class Record:
    """The whole document; every change makes a new one."""

    current: str | None = None
    configured: str | None = None  # the config's `current` last seen, to notice a new deploy
    history: tuple[Deployed, ...] = ()
    actions: tuple[Action, ...] = ()
    running: Action | None = None

    def previous(self) -> str | None:
        """The newest revision in the history that is not the current one."""
        return next((d.revision for d in self.history if d.revision != self.current), None)

    def knows(self, revision: str) -> bool:
        return any(d.revision == revision for d in self.history)

    def deploy(self, deployed: Deployed) -> Record:
        history = (deployed, *self.history[: HISTORY_KEPT - 1])
        return replace(self, current=deployed.revision, history=history)

    def finish(self, action: Action) -> Record:
        actions = (action, *self.actions[: ACTIONS_KEPT - 1])
        return replace(self, actions=actions, running=None)

    def as_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "current": self.current,
            "configured": self.configured,
            "history": [d.as_json() for d in self.history],
            "actions": [a.as_json() for a in self.actions],
            "running": None if self.running is None else self.running.as_json(),
        }

    @classmethod
    def from_json(cls, data: object) -> Record:
        fields = _object(data, "document")
        if fields.get("format") != FORMAT:
            raise ValueError(f"unsupported format {fields.get('format')!r} (expected {FORMAT})")
        running = fields.get("running")
        return cls(
            current=_field(fields, "current", str, NoneType),
            configured=_field(fields, "configured", str, NoneType),
            history=tuple(Deployed.from_json(d) for d in _field(fields, "history", list)),
            actions=tuple(Action.from_json(a) for a in _field(fields, "actions", list)),
            running=None if running is None else Action.from_json(running),
        )


class HistoryFile:
    """Reads and atomically rewrites the history document at `path`."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> Record | None:
        """The stored record, or None when the file does not exist yet."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise HistoryError(f"cannot read history file {self.path}: {exc.strerror}") from exc
        try:
            return Record.from_json(json.loads(text))
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise HistoryError(
                f"history file {self.path} is corrupt ({exc}); it was left as it is"
            ) from exc

    def save(self, record: Record) -> None:
        payload = json.dumps(record.as_json(), indent=1).encode()
        directory = self.path.parent
        try:
            descriptor, temp = tempfile.mkstemp(
                dir=directory, prefix=f".{self.path.name}.", suffix=".tmp"
            )
            try:
                with os.fdopen(descriptor, "wb") as file:
                    file.write(payload)
                    file.flush()
                    os.fsync(file.fileno())
                os.replace(temp, self.path)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temp)
                raise
            _fsync_directory(directory)
        except OSError as exc:
            raise HistoryError(
                f"cannot write history file {self.path}: {exc.strerror or exc}"
            ) from exc


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable."""
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _object(data: object, what: str) -> Mapping[str, Any]:
    if not isinstance(data, dict):
        raise ValueError(f"{what} is {type(data).__name__}, expected an object")
    return data


def _field(fields: Mapping[str, Any], key: str, *kinds: type) -> Any:
    value = fields.get(key)
    if not isinstance(value, kinds):
        expected = " or ".join(kind.__name__ for kind in kinds)
        raise ValueError(f"{key!r} is {type(value).__name__}, expected {expected}")
    return value
