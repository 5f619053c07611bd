"""The append-only audit log: an intent fsynced before an action touches anything, a result after.

One JSON object per line (JSONL). Each record goes out in one `os.write` of the whole line on an
O_APPEND descriptor, so lines from several processes never interleave, and is fsynced before the
call returns. A torn last line (power loss, a full disk) is left as it is: the next record starts
on a fresh line, and readers report the torn one as a problem and go on. Secrets are masked
before anything is written (`redact`).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from console.errors import ActionError, FleetdeckError
from console.exitcodes import Exit
from console.identity import Identity, current_identity

AUDIT_SCHEMA_VERSION = 1
INTENT = "intent"
RESULT = "result"
OUTCOMES = frozenset({"verified", "partial", "failed", "refused", "verify_timeout", "noop"})
VERIFIED = frozenset({"verified", "noop"})  # outcomes after which the target is as asked
STATE_CHANGING = frozenset({"drain", "undrain", "failover", "failback", "rollback"})
MASK = "***"

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class AuditUnwritable(ActionError):
    """The log cannot take a record; from `intent` it means nothing was touched (refused)."""

    title = "audit"
    exit_code = Exit.WARN


class AuditUnreadable(FleetdeckError):
    """The log exists but cannot be read (permissions, a folder in its place, an I/O error)."""

    title = "audit"
    exit_code = Exit.CONFIG


def default_audit_path() -> Path:
    from console.logfile import state_dir

    return state_dir() / "audit.jsonl"


def format_time(epoch: float) -> str:
    """ISO 8601 UTC with milliseconds: 2026-11-28T10:00:00.123Z."""
    moment = _EPOCH + dt.timedelta(milliseconds=round(epoch * 1000))
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: str) -> float:
    """Epoch seconds of an ISO 8601 time with a UTC offset; ValueError otherwise."""
    moment = dt.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"time '{text}' has no UTC offset")
    return moment.timestamp()


# --- redaction -----------------------------------------------------------------------------

# Whole words of a key: `access_token` and `apiToken` are secret, `tokens_per_s` is a figure.
_SECRET_WORDS = frozenset(
    [
        "token",
        "authorization",
        "password",
        "passwords",
        "passwd",
        "secret",
        "secrets",
        "credential",
        "credentials",
        "cookie",
        "cookies",
    ]
)
_SECRET_JOINED = ("apikey", "privatekey", "accesskey")  # api_key, X-Api-Key, privateKey, ...
_CAMEL_HUMP = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_KEY_WORD = re.compile(r"[a-z0-9]+")
_FLAG = r"--?(?:[a-z0-9]+-)*(?:token|password|passwd|secret|api-?key)"  # not --token-file
_SECRET_FLAG = re.compile(_FLAG, re.IGNORECASE)
_SECRET_TEXT = (
    # Authorization header values
    (re.compile(r"(?i)\b(bearer|basic)\s+[^\s\"',;]+"), r"\1 " + MASK),
    # token=..., "password": "...", api-key: ... (not tokens_per_s: the word must end there)
    (
        re.compile(
            r"(?i)(?<![a-z0-9])(token|password|passwd|secret|api[_-]?key)"
            r"([\"']?\s*[=:]\s*[\"']?)[^\s\"',;&}]+"
        ),
        r"\1\2" + MASK,
    ),
    # command-line flags: --token VALUE, --db-password VALUE
    (re.compile(rf"({_FLAG})\s+[^\s-]\S*", re.IGNORECASE), r"\1 " + MASK),
    # user:password@ in URLs
    (re.compile(r"(://[^/\s:@]+:)[^/\s@]+@"), r"\1" + MASK + "@"),
)


def _secret_key(key: str) -> bool:
    words = _KEY_WORD.findall(_CAMEL_HUMP.sub("_", key).lower())
    joined = "".join(words)
    return any(word in _SECRET_WORDS for word in words) or any(
        part in joined for part in _SECRET_JOINED
    )


def _secret_flag(item: Any) -> bool:
    return isinstance(item, str) and _SECRET_FLAG.fullmatch(item) is not None


def redact_text(text: str) -> str:
    for pattern, replacement in _SECRET_TEXT:
        text = pattern.sub(replacement, text)
    return text


def redact(value: Any) -> Any:
    """A JSON-plain copy of `value` with secrets masked: every value under a secret-looking key,
    the word after `--token` in an argv list, and bearer tokens, `token=...` pairs, `--token X`
    and URL passwords inside strings. A non-finite number
    becomes null and anything JSON cannot hold becomes its text, so a record always serialises.
    """
    if isinstance(value, Mapping):
        return {
            str(key): MASK if _secret_key(str(key)) and item is not None else redact(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        items = list(value)
        return [
            MASK if index and _secret_flag(items[index - 1]) else redact(item)
            for index, item in enumerate(items)
        ]
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, bool | int):
        return value
    return redact_text(str(value))


# --- records -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuditRecord:
    id: str  # shared by an intent and its result; sorts by time
    kind: str  # INTENT | RESULT
    time: float  # epoch seconds, whole milliseconds
    user: str
    host: str
    origin: str | None  # the SSH client's address
    action: str  # drain, undrain, failover, failback, rollback, ack, unack, command:NAME, ...
    targets: tuple[str, ...]
    reason: str | None
    plan: Mapping[str, Any]  # intent: blast radius, steps, preflight
    outcome: str | None  # result: one of OUTCOMES
    replicas: tuple[Mapping[str, Any], ...]  # result: per replica or agent
    duration_s: float | None
    detail: str | None
    commands: Mapping[str, str]  # result: {"retry": "fleetdeck ...", "revert": "fleetdeck ..."}

    def as_json(self) -> dict[str, Any]:
        return {
            "schema_version": AUDIT_SCHEMA_VERSION,
            "id": self.id,
            "kind": self.kind,
            "time": format_time(self.time),
            "user": self.user,
            "host": self.host,
            "origin": self.origin,
            "action": self.action,
            "targets": list(self.targets),
            "reason": self.reason,
            "plan": dict(self.plan),
            "outcome": self.outcome,
            "replicas": [dict(replica) for replica in self.replicas],
            "duration_s": self.duration_s,
            "detail": self.detail,
            "commands": dict(self.commands),
        }


@dataclass(frozen=True, slots=True)
class AuditReadout:
    records: tuple[AuditRecord, ...]
    problems: tuple[str, ...]  # 'FILE:LINE: what is wrong', one per line the reader skipped


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One action: its intent and its result, either missing (unfinished, or a lost line)."""

    intent: AuditRecord | None
    result: AuditRecord | None

    @property
    def first(self) -> AuditRecord:
        record = self.intent or self.result
        assert record is not None
        return record


_NONE = type(None)
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "id": (str,),
    "kind": (str,),
    "time": (str,),
    "user": (str,),
    "host": (str,),
    "origin": (str, _NONE),
    "action": (str,),
    "targets": (list,),
    "reason": (str, _NONE),
    "plan": (dict,),
    "outcome": (str, _NONE),
    "replicas": (list,),
    "duration_s": (int, float, _NONE),
    "detail": (str, _NONE),
    "commands": (dict,),
}


def record_from_json(document: Any) -> AuditRecord:
    """The record a parsed line holds; ValueError naming what is wrong."""
    if not isinstance(document, dict):
        raise ValueError(f"a JSON {type(document).__name__}, not an object")
    version = document.get("schema_version")
    if version != AUDIT_SCHEMA_VERSION or isinstance(version, bool):
        raise ValueError(
            f"unknown schema_version {version!r} (this fleetdeck reads {AUDIT_SCHEMA_VERSION})"
        )
    for name, types in _FIELD_TYPES.items():
        if name not in document:
            raise ValueError(f"no '{name}'")
        value = document[name]
        if not isinstance(value, types) or isinstance(value, bool):
            raise ValueError(f"'{name}' is a JSON {type(value).__name__}")
    if document["kind"] not in (INTENT, RESULT):
        raise ValueError(f"unknown kind {document['kind']!r}")
    if document["outcome"] is not None and document["outcome"] not in OUTCOMES:
        raise ValueError(f"unknown outcome {document['outcome']!r}")
    if not all(isinstance(target, str) for target in document["targets"]):
        raise ValueError("'targets' holds a non-string")
    if not all(isinstance(replica, dict) for replica in document["replicas"]):
        raise ValueError("'replicas' holds a non-object")
    if not all(isinstance(command, str) for command in document["commands"].values()):
        raise ValueError("'commands' holds a non-string")
    try:
        moment = parse_time(document["time"])
    except ValueError as exc:
        raise ValueError(f"bad 'time': {exc}") from None
    return AuditRecord(
        id=document["id"],
        kind=document["kind"],
        time=moment,
        user=document["user"],
        host=document["host"],
        origin=document["origin"],
        action=document["action"],
        targets=tuple(document["targets"]),
        reason=document["reason"],
        plan=document["plan"],
        outcome=document["outcome"],
        replicas=tuple(document["replicas"]),
        duration_s=document["duration_s"],
        detail=document["detail"],
        commands=document["commands"],
    )


# --- the log -------------------------------------------------------------------------------


class AuditLog:
    def __init__(
        self,
        path: Path,
        *,
        clock: Callable[[], float] = time.time,
        identity: Identity | None = None,
    ) -> None:
        self.path = Path(path)
        self._clock = clock
        self._identity = identity  # resolved at the first write: reading needs no identity

    @property
    def identity(self) -> Identity:
        if self._identity is None:
            self._identity = current_identity()
        return self._identity

    def intent(
        self,
        action: str,
        targets: Sequence[str],
        plan: Mapping[str, Any],
        reason: str | None,
    ) -> AuditRecord:
        """Write and fsync the intent; AuditUnwritable when it cannot be (touch nothing then)."""
        now = self._now()
        record = AuditRecord(
            id=f"{_compact_time(now)}-{secrets.token_hex(4)}",
            kind=INTENT,
            time=now,
            **self._who(),
            action=action,
            targets=tuple(targets),
            reason=None if reason is None else redact_text(reason),
            plan=redact(plan),
            outcome=None,
            replicas=(),
            duration_s=None,
            detail=None,
            commands={},
        )
        self._append(record)
        return record

    def result(
        self,
        intent: AuditRecord,
        outcome: str,
        *,
        replicas: Sequence[Mapping[str, Any]] = (),
        detail: str | None = None,
        duration_s: float,
        commands: Mapping[str, str] | None = None,
    ) -> AuditRecord:
        """Write and fsync the result of `intent` (its id, action, targets and reason)."""
        if intent.kind != INTENT:
            raise ValueError(f"result() takes an intent record, got a {intent.kind}")
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r} (one of {', '.join(sorted(OUTCOMES))})")
        record = AuditRecord(
            id=intent.id,
            kind=RESULT,
            time=self._now(),
            **self._who(),
            action=intent.action,
            targets=intent.targets,
            reason=intent.reason,
            plan={},
            outcome=outcome,
            replicas=tuple(redact(replica) for replica in replicas),
            duration_s=duration_s if math.isfinite(duration_s) else None,
            detail=None if detail is None else redact_text(detail),
            commands={str(k): redact_text(str(v)) for k, v in (commands or {}).items()},
        )
        self._append(record)
        return record

    def read(self, since: float | None = None) -> AuditReadout:
        """Every usable record (at or after `since`) in file order, and a problem per bad line.

        A missing log is empty; one that exists but cannot be read raises AuditUnreadable.
        """
        records: list[AuditRecord] = []
        problems: list[str] = []
        try:
            with open(self.path, "rb") as file:
                for number, line in enumerate(file, 1):
                    if not line.strip():
                        continue  # two writers both saw a torn end and each started a fresh line
                    try:
                        record = _parse_line(line)
                    except ValueError as exc:
                        torn = "" if line.endswith(b"\n") else "torn last line (no newline): "
                        problems.append(f"{self.path}:{number}: {torn}{exc}")
                        continue
                    if since is None or record.time >= since:
                        records.append(record)
        except FileNotFoundError:
            return AuditReadout(records=(), problems=())
        except OSError as exc:
            raise AuditUnreadable(
                f"{self.path}: cannot read the audit log: {exc.strerror or exc}"
            ) from exc
        return AuditReadout(records=tuple(records), problems=tuple(problems))

    def _now(self) -> float:
        return round(self._clock() * 1000) / 1000  # what the line says, to the millisecond

    def _who(self) -> dict[str, Any]:
        identity = self.identity
        return {"user": identity.user, "host": identity.host, "origin": identity.origin}

    def _append(self, record: AuditRecord) -> None:
        line = json.dumps(record.as_json(), separators=(",", ":"), ensure_ascii=False) + "\n"
        data = line.encode("utf-8", "backslashreplace")  # a stray surrogate: a JSON \u escape
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            descriptor, created = _open_for_append(self.path)
            try:
                if not _ends_with_newline(descriptor):
                    data = b"\n" + data  # never glue a record to a torn line
                written = os.write(descriptor, data)  # one write: appenders never interleave
                if written != len(data):
                    raise AuditUnwritable(
                        f"{self.path}: short write to the audit log "
                        f"({written} of {len(data)} bytes; is the disk full?)"
                    )
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
            if created:
                _fsync_folder(self.path.parent)  # the new file's name is durable too
        except OSError as exc:
            raise AuditUnwritable(
                f"{self.path}: cannot write the audit log: {exc.strerror or exc}"
            ) from exc


def _compact_time(epoch: float) -> str:
    """20261128T100000.123Z: fixed width, so ids sort by time."""
    return format_time(epoch).replace("-", "").replace(":", "")


def _parse_line(line: bytes) -> AuditRecord:
    try:
        document = json.loads(line)
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise ValueError(f"not JSON ({exc})") from None
    return record_from_json(document)


def _open_for_append(path: Path) -> tuple[int, bool]:
    """A descriptor open for appending (and reading the last byte), and whether it was created."""
    flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
    try:
        return os.open(path, flags | os.O_EXCL, 0o600), True
    except FileExistsError:
        return os.open(path, flags, 0o600), False


def _ends_with_newline(descriptor: int) -> bool:
    size = os.fstat(descriptor).st_size
    return size == 0 or os.pread(descriptor, 1, size - 1) == b"\n"


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


# --- what the records say ------------------------------------------------------------------


def entries(records: Iterable[AuditRecord]) -> list[AuditEntry]:
    """Intents paired with their results, in the order each action first appears."""
    pairs: dict[str, list[AuditRecord | None]] = {}
    for record in records:
        pair = pairs.setdefault(record.id, [None, None])
        pair[0 if record.kind == INTENT else 1] = record
    return [AuditEntry(intent=intent, result=result) for intent, result in pairs.values()]


def unfinished(records: Sequence[AuditRecord]) -> list[AuditRecord]:
    """Intents with no result (the console died or lost its host mid-action), newest first."""
    finished = {record.id for record in records if record.kind == RESULT}
    left = [r for r in records if r.kind == INTENT and r.id not in finished]
    return sorted(left, key=lambda record: (record.time, record.id), reverse=True)


def last_verified(records: Iterable[AuditRecord]) -> dict[str, AuditRecord]:
    """Per target, the newest verified (or no-op) result of a state-changing action: what the
    target should look like now. The intent with the same id holds its plan.
    """
    latest: dict[str, AuditRecord] = {}
    for record in records:
        if record.kind == RESULT and record.outcome in VERIFIED and record.action in STATE_CHANGING:
            for target in record.targets:
                if target not in latest or record.time >= latest[target].time:
                    latest[target] = record
    return latest


def active_acks(records: Iterable[AuditRecord], now: float) -> dict[str, AuditRecord]:
    """Per target, the ack intent (its plan's "until" is epoch seconds) still in force at `now`.

    An ack or unack counts once its result is verified or a no-op; a later one on the same target
    replaces an earlier one, whatever their expiries.
    """
    done = [
        entry
        for entry in entries(records)
        if entry.intent is not None
        and entry.result is not None
        and entry.result.outcome in VERIFIED
        and entry.intent.action in ("ack", "unack")
    ]
    current: dict[str, AuditRecord] = {}
    for entry in sorted(done, key=lambda entry: entry.first.time):
        intent = entry.first
        for target in intent.targets:
            if intent.action == "ack":
                current[target] = intent
            else:
                current.pop(target, None)
    return {target: ack for target, ack in current.items() if _ack_until(ack) > now}


def _ack_until(ack: AuditRecord) -> float:
    until = ack.plan.get("until")
    if isinstance(until, int | float) and not isinstance(until, bool):
        return float(until)
    return -math.inf  # an ack without a usable expiry is not in force
