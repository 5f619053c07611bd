"""Faults a simulated node can be given through the control API.

- hang: the engine port accepts connections and never answers;
- slow: the engine port answers after `seconds`;
- http500: every engine request gets a 500;
- garbage: every engine request gets 200 with random bytes;
- refuse: the engine port stops listening (reopened on the same port when cleared);
- bad_deploy: a new revision is deployed and about half the requests fail, until the node
  is rolled back through its agent;
- xid: GPU `gpu` falls off the bus (XID 79): lost, no readings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

FAULT_KINDS = ("hang", "slow", "http500", "garbage", "refuse", "bad_deploy", "xid")
DEFAULT_SLOW_S = 5.0
XID_FELL_OFF_THE_BUS = 79


class FaultError(ValueError):
    """A fault description that cannot be used; the message is one line for the caller."""


@dataclass(frozen=True, slots=True)
class Fault:
    kind: str
    seconds: float | None = None  # slow: how long each answer is held back
    gpu: int | None = None  # xid: which GPU falls off the bus

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "seconds": self.seconds, "gpu": self.gpu}


def parse_fault(value: Any, gpus: int) -> Fault | None:
    """A fault from its JSON form: a kind, `{"kind", "seconds", "gpu"}`, or null (none)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = {"kind": value}
    if not isinstance(value, dict):
        raise FaultError("fault must be a kind, an object with 'kind', or null")
    unknown = sorted(set(value) - {"kind", "seconds", "gpu"})
    if unknown:
        raise FaultError(f"unknown fault field {unknown[0]!r} (known: kind, seconds, gpu)")
    kind = value.get("kind")
    if kind not in FAULT_KINDS:
        raise FaultError(f"unknown fault kind {kind!r} (known: {', '.join(FAULT_KINDS)})")
    seconds = value.get("seconds")
    if seconds is not None and (not _is_number(seconds) or seconds <= 0):
        raise FaultError("fault 'seconds' must be a positive number")
    if kind == "slow" and seconds is None:
        seconds = DEFAULT_SLOW_S
    gpu = value.get("gpu")
    if gpu is not None and (not isinstance(gpu, int) or isinstance(gpu, bool)):
        raise FaultError("fault 'gpu' must be a GPU index")
    if kind == "xid":
        gpu = 0 if gpu is None else gpu
        if not 0 <= gpu < gpus:
            raise FaultError(f"fault 'gpu' {gpu} is out of range (the node has {gpus} GPUs)")
    return Fault(kind, None if seconds is None else float(seconds), gpu)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
