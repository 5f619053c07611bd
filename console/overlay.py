"""What the audit log adds to a snapshot: acknowledged alerts, and drift.

Drift is a verified action the gateways no longer show: HAProxy forgets `set server` and
`set map` on a reload unless a state file is configured, so a node drained at 03:00 takes
traffic again after a config push at 03:10. The last verified drain or failover of each target
(from the audit log) is compared with what the replicas report now; each difference comes with
the command that re-applies the action and the one that forgets it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from console.audit import INTENT, RESULT, VERIFIED, AuditLog, AuditRecord, active_acks
from console.commandline import CommandLine
from console.errors import FleetdeckError
from console.fleet import FleetConfig
from console.gateways import GatewayView
from console.model import Ack, Drift

log = logging.getLogger("fleetdeck.overlay")


# which part of a target each state-changing action sets
ASPECTS = {"drain": "server", "undrain": "server", "failover": "route", "failback": "route"}


class AuditOverlay:
    """Reads the audit log again only when it has changed (its size or mtime)."""

    def __init__(
        self, path: Path, config: FleetConfig, commands: CommandLine | None = None
    ) -> None:
        self.log = AuditLog(path)
        self.config = config
        self.commands = commands or CommandLine.for_fleet(config)
        self._seen: tuple[int, int] | None = None
        self._records: tuple[AuditRecord, ...] = ()

    def records(self) -> tuple[AuditRecord, ...]:
        try:
            stat = self.log.path.stat()
        except OSError:
            return ()
        if (stat.st_size, stat.st_mtime_ns) != self._seen:
            try:
                self._records = self.log.read().records
            except (FleetdeckError, OSError) as exc:
                log.warning("audit log %s: %s", self.log.path, exc)
                return self._records
            self._seen = (stat.st_size, stat.st_mtime_ns)
        return self._records

    def acks(self, wall: float) -> dict[str, Ack]:
        return {
            target: Ack(until=float(record.plan["until"]), user=record.user, reason=record.reason)
            for target, record in active_acks(self.records(), wall).items()
        }

    def drift(self, view: GatewayView) -> tuple[Drift, ...]:
        """Each target's newest action on each aspect (its server state, its route), when that
        action was a verified drain or failover the gateways no longer show. A later undrain,
        failback or forget — or a later attempt that failed — leaves nothing to compare."""
        records = self.records()
        intents = {r.id: r for r in records if r.kind == INTENT}
        latest: dict[tuple[str, str], AuditRecord] = {}
        for record in records:
            if record.kind != RESULT or record.outcome == "refused":
                continue
            if record.action == "forget" and record.outcome in VERIFIED:
                latest = {k: v for k, v in latest.items() if k[0] not in record.targets}
            aspect = ASPECTS.get(record.action)
            if aspect is not None:
                latest.update({(target, aspect): record for target in record.targets})
        found = []
        for (target, _), result in sorted(latest.items()):
            intent = intents.get(result.id)
            if result.outcome not in VERIFIED or intent is None:
                continue
            drift = self._compare(target, result, intent, view)
            if drift is not None:
                found.append(drift)
        return tuple(found)

    def _compare(
        self, target: str, result: AuditRecord, intent: AuditRecord, view: GatewayView
    ) -> Drift | None:
        plan = intent.plan
        if result.action == "drain" and target in view.servers and "server" in plan:
            # a server whose health check fails shows DOWN, drained or not: no claim either way
            seen = _differing(view.servers[target].by_replica, ("DRAIN", "MAINT", "DOWN"))
            if seen:
                return self._drift(target, "DRAIN", seen, result, ["drain", target])
        if result.action == "failover" and target in view.routes and "backend" in plan:
            wanted = str(plan["backend"])
            seen = _differing(view.routes[target].by_replica, (wanted,))
            if seen:
                words = ["failover", target] + (["--to", str(plan["to"])] if plan.get("to") else [])
                return self._drift(target, f"route → {wanted}", f"route → {seen}", result, words)
        return None

    def _drift(
        self, target: str, expected: str, observed: str, result: AuditRecord, words: list[str]
    ) -> Drift:
        return Drift(
            target=target,
            expected=expected,
            observed=observed,
            since=result.time,
            reapply=self.commands(*words),
            forget=self.commands("forget", target),
        )


def _differing(by_replica: Mapping[str, str], expected: tuple[str, ...]) -> str:
    """What the replicas that lost the change show, e.g. 'UP on tcp://10.0.0.1:9999'."""
    return ", ".join(
        f"{value} on {endpoint}"
        for endpoint, value in sorted(by_replica.items())
        if value not in expected
    )
