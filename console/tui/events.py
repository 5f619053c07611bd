"""What happened, for people: state changes seen between snapshots, and actions taken.

The app feeds every snapshot it receives (paused or not) and every action outcome; the node
and pool screens show the events of their target, newest first.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from console.model import NodeStatus, Snapshot

KEPT = 500


@dataclass(frozen=True, slots=True)
class Event:
    time: float  # epoch seconds
    target: str  # a node or pool name
    text: str


class EventLog:
    def __init__(self, kept: int = KEPT) -> None:
        self.events: deque[Event] = deque(maxlen=kept)
        self._nodes: dict[str, NodeStatus] = {}

    def observe(self, snapshot: Snapshot) -> None:
        for node in snapshot.nodes:
            before = self._nodes.get(node.name)
            self._nodes[node.name] = node
            if before is None:
                continue
            for text in _changes(before, node):
                self.events.append(Event(snapshot.time, node.name, text))

    def add(self, time: float, targets: Iterable[str], text: str) -> None:
        for target in targets:
            self.events.append(Event(time, target, text))

    def of(self, targets: Iterable[str]) -> list[Event]:
        """The events of these targets, newest first."""
        wanted = set(targets)
        return [event for event in reversed(self.events) if event.target in wanted]


def _changes(before: NodeStatus, after: NodeStatus) -> list[str]:
    changes = []
    if before.up != after.up:
        changes.append("up again" if after.up else f"down: {after.error}")
    if before.state != after.state:
        changes.append(f"gateway {before.state or '-'} → {after.state or '-'}")
    if before.severity != after.severity:
        why = f": {'; '.join(after.reasons)}" if after.reasons else ""
        changes.append(f"{before.severity.label} → {after.severity.label}{why}")
    if before.revision != after.revision and after.revision is not None:
        changes.append(f"revision {before.revision or '-'} → {after.revision}")
    return changes
