"""The action engine: plan → preflight → confirm → audit intent → execute → verify → audit
result, shared by the TUI and the headless commands.

`Actions.plan` reads the current snapshot and the gateways' last reads (console.plans); the
caller confirms (a modal, `--yes`, or a prompt); `Actions.execute` then takes the targets'
locks, writes the intent (fsynced) before touching anything, changes every replica or agent
concurrently, reads the result back, and writes the result record. The outcome is one of
verified, noop, refused, failed, partial or verify_timeout, with the exact command to retry
or revert it. Nothing here raises to the caller for a failure of the fleet: it is an outcome.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from console.audit import AuditLog, AuditRecord, AuditUnwritable
from console.collector import Collector
from console.commandline import CommandLine
from console.controllers import (
    AgentClient,
    Change,
    engine_healthy,
    fan_out,
    read_replicas,
    run_program,
)
from console.errors import FleetdeckError
from console.exitcodes import Exit
from console.fleet import FleetConfig, NodeConfig
from console.gateway import GatewayDriver, ReplicaState
from console.locks import LockHeld, TargetLocks, lock_folder
from console.model import Snapshot
from console.plans import Plan, Planner, Request

log = logging.getLogger("fleetdeck.actions")

OUTCOME_EXIT = {
    "verified": Exit.OK,
    "noop": Exit.OK,
    "refused": Exit.WARN,
    "failed": Exit.CRIT,
    "partial": Exit.UNKNOWN,
    "verify_timeout": Exit.VERIFY_TIMEOUT,
}
Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Outcome:
    plan: Plan
    status: str  # a key of OUTCOME_EXIT
    changes: tuple[Change, ...] = ()
    detail: str | None = None
    duration_s: float = 0.0
    retry: str | None = None
    revert: str | None = None
    audit_id: str | None = None
    revision: str | None = None  # rollback: the revision the nodes were rolled back to

    @property
    def exit_code(self) -> int:
        return int(OUTCOME_EXIT[self.status])

    def as_json(self) -> dict[str, Any]:
        return {
            "schema_version": 1,
            "outcome": self.status,
            "exit_code": self.exit_code,
            "detail": self.detail,
            "duration_s": round(self.duration_s, 4),
            "changes": [c.as_json() for c in self.changes],
            "retry": self.retry,
            "revert": self.revert,
            "audit_id": self.audit_id,
            "plan": self.plan.as_json(),
        }


class Actions:
    """Plans and runs actions on one fleet, through one collector's view of it."""

    def __init__(
        self,
        config: FleetConfig,
        collector: Collector,
        audit: AuditLog,
        *,
        read_only: bool = False,
        clock: Callable[[], float] = time.monotonic,
        commands: CommandLine | None = None,
    ) -> None:
        self.collector = collector
        self.audit = audit
        self.planner = Planner(config, read_only)
        self.clock = clock
        self.commands = commands or CommandLine.for_fleet(config)  # retry, revert

    @property
    def config(self) -> FleetConfig:
        """The fleet as the collector knows it now: listed, plus what a source discovered."""
        return self.collector.fleet

    def plan(self, request: Request, snapshot: Snapshot | None = None) -> Plan:
        """The plan on `snapshot` (the TUI's latest), else on the collector's current view."""
        current = snapshot if snapshot is not None else self.collector.current()
        self.planner.config = self.collector.fleet
        return self.planner.plan(request, current, self.collector.gateways)

    # --- execute ----------------------------------------------------------------------

    async def execute(self, plan: Plan, progress: Progress | None = None) -> Outcome:
        """Run a confirmed plan; every outcome but a read-only refusal is audited."""
        say = progress or (lambda text: None)
        started = self.clock()
        if plan.refusal is not None:
            refused = Outcome(plan, "refused", detail=plan.refusal)
            if self.planner.read_only:  # nothing was attempted; the log may not be writable
                return refused
            return self._record(plan, refused, started)
        try:
            folder = lock_folder(self.audit.path)
            with TargetLocks(folder, plan.locks, self.audit.identity, action=plan.request.action):
                # the world may have moved since the plan was shown: plan again under the lock
                await self.collector.read_gateways()
                plan = self.plan(plan.request)
                if plan.refusal is not None:
                    refused = Outcome(plan, "refused", detail=f"on a fresh look: {plan.refusal}")
                    return self._record(plan, refused, started)
                intent = self._intent(plan)
                say(f"intent recorded ({intent.id})")
                try:
                    outcome = await self._run_guarded(plan, say)
                except asyncio.CancelledError:
                    detail = "interrupted before the result was known: check fleetdeck status"
                    self._finish(intent, Outcome(plan, "failed", detail=detail), started)
                    raise
                return self._finish(intent, outcome, started)
        except LockHeld as exc:
            return self._record(plan, Outcome(plan, "refused", detail=str(exc)), started)

    async def _run_guarded(self, plan: Plan, say: Progress) -> Outcome:
        deadline = self.clock() + plan.request.timeout
        try:
            return await self._run(plan, say, deadline)
        except TimeoutError as exc:
            return Outcome(plan, "verify_timeout", detail=str(exc) or "timed out")
        except FleetdeckError as exc:
            return Outcome(plan, "failed", detail=str(exc))
        except Exception as exc:  # the result record must be written whatever happened
            log.exception("action %s failed", plan.summary)
            return Outcome(plan, "failed", detail=f"internal error: {exc!r}")

    def _record(self, plan: Plan, outcome: Outcome, started: float) -> Outcome:
        """A refusal is audited too: who tried what, and why it was refused."""
        return self._finish(self._intent(plan), outcome, started)

    def _intent(self, plan: Plan) -> AuditRecord:
        request = plan.request
        action = request.action
        if action == "command":
            action = f"command:{request.command}"
        # a rollback names its pool and nodes; anything else its one target (not the locks)
        targets = plan.locks if request.action == "rollback" else (request.target,)
        return self.audit.intent(action, targets, plan.as_json(), request.reason)

    def _finish(self, intent: AuditRecord, outcome: Outcome, started: float) -> Outcome:
        retry, revert = self._commands(outcome)
        outcome = replace(
            outcome,
            duration_s=self.clock() - started,
            retry=retry,
            revert=revert,
            audit_id=intent.id,
        )
        commands = {k: v for k, v in (("retry", retry), ("revert", revert)) if v is not None}
        try:
            self.audit.result(
                intent,
                outcome.status,
                replicas=[c.as_json() for c in outcome.changes],
                detail=outcome.detail,
                duration_s=outcome.duration_s,
                commands=commands,
            )
        except AuditUnwritable as exc:  # the fleet did change: say what happened all the same
            warning = f"the result could not be written to the audit log: {exc}"
            detail = f"{outcome.detail}; {warning}" if outcome.detail else warning
            outcome = replace(outcome, detail=detail)
        return outcome

    def _commands(self, outcome: Outcome) -> tuple[str | None, str | None]:
        """The command that tries again (after a failure) and the one that undoes it."""
        request = outcome.plan.request
        force = request.force
        retry = None
        if outcome.status in ("failed", "partial", "verify_timeout"):
            words = [request.action, request.target]
            to = outcome.revision or request.to  # a rollback retries to the same revision
            if to:
                words += ["--to", to]
            if request.command:
                words = [request.action, request.command, request.target]
            retry = self.commands(*words, force=force)
        if outcome.status not in ("verified", "partial", "verify_timeout"):
            return retry, None
        revert = {
            "drain": ("undrain", request.target),
            "undrain": ("drain", request.target),
            "failover": ("failback", request.target),
            "failback": ("failover", request.target),
        }.get(request.action)
        return retry, None if revert is None else self.commands(*revert, force=force)

    # --- the actions ------------------------------------------------------------------

    async def _run(self, plan: Plan, say: Progress, deadline: float) -> Outcome:
        action = plan.request.action
        if plan.noop:
            noop = Outcome(plan, "noop", detail="already as asked: nothing to change")
            if action == "drain" and plan.request.wait and plan.gateway is not None:
                return await self._wait_idle(plan, noop, plan.replicas, say, deadline)
            return noop
        if action in ("drain", "undrain"):
            if "hook" in plan.details:
                return await self._hook(plan, say, deadline)
            return await self._server_state(plan, say, deadline)
        if action in ("failover", "failback"):
            return await self._route(plan, say)
        if action == "rollback":
            return await self._rollback(plan, say, deadline)
        if action == "command":
            change = await run_program(plan.argv, float(plan.details["timeout"]))
            return Outcome(plan, "verified" if change.ok else "failed", (change,), change.detail)
        # ack and forget change nothing but the audit log, which `_finish` writes
        return Outcome(plan, "verified", detail=_until_text(plan))

    def _driver(self, plan: Plan) -> GatewayDriver:
        watch = next(w for w in self.collector.gateways if w.config.name == plan.gateway)
        assert watch.driver is not None  # the planner refuses a gateway without one
        return watch.driver

    def _timeout(self, plan: Plan) -> float:
        watch = next(w for w in self.collector.gateways if w.config.name == plan.gateway)
        return watch.config.refresh.timeout

    async def _set_servers(
        self, plan: Plan, server: str, state: str, replicas: Sequence[str]
    ) -> list[Change]:
        driver, backend = self._driver(plan), str(plan.details["backend"])
        return await fan_out(
            replicas,
            lambda e: driver.set_server_state(e, backend, server, state),
            self._timeout(plan),
            f"{backend}/{server} → {state}",
        )

    async def _server_state(self, plan: Plan, say: Progress, deadline: float) -> Outcome:
        server, state = str(plan.details["server"]), str(plan.details["state"])
        backend = str(plan.details["backend"])
        changes = await self._set_servers(plan, server, state, plan.replicas)
        say(f"{plan.request.action}: {sum(c.ok for c in changes)}/{len(changes)} replicas changed")
        done = [c.where for c in changes if c.ok]
        reads = await read_replicas(self._driver(plan), done, (), self._timeout(plan))
        verified = _check_servers(reads, backend, server, state)
        outcome = _conclude(plan, changes, verified)
        if _shows(reads, backend, server, "DOWN"):
            note = f"{server} is DOWN (health check failing): it takes no traffic until it passes"
            outcome = replace(outcome, detail=f"{outcome.detail}; {note}")
        if outcome.status != "verified" or not plan.request.wait or state != "DRAIN":
            return outcome
        return await self._wait_idle(plan, outcome, done, say, deadline)

    async def _wait_idle(
        self, plan: Plan, outcome: Outcome, replicas: Sequence[str], say: Progress, deadline: float
    ) -> Outcome:
        """`outcome`, once the server has no request in flight on any replica; verify_timeout
        when it still has some at the deadline."""
        server, backend = str(plan.details["server"]), str(plan.details["backend"])
        say(f"waiting for {server}'s requests in flight to finish")
        while True:
            reads = await read_replicas(self._driver(plan), replicas, (), self._timeout(plan))
            in_flight = _in_flight(reads, backend, server)
            if in_flight == 0:
                return replace(outcome, detail="drained: no request in flight")
            if self.clock() >= deadline:
                left = "an unknown number of" if in_flight is None else str(in_flight)
                return replace(
                    outcome,
                    status="verify_timeout",
                    detail=f"still {left} request(s) in flight after {plan.request.timeout:g} s",
                )
            await asyncio.sleep(0.1)

    async def _route(self, plan: Plan, say: Progress) -> Outcome:
        map_file, key = str(plan.details["map"]), str(plan.details["key"])
        backend = str(plan.details["backend"])
        driver = self._driver(plan)
        changes = await fan_out(
            plan.replicas,
            lambda e: driver.set_map(e, map_file, key, backend),
            self._timeout(plan),
            f"{map_file} {key} → {backend}",
        )
        say(f"route: {sum(c.ok for c in changes)}/{len(changes)} replicas changed")
        done = [c.where for c in changes if c.ok]
        reads = await read_replicas(driver, done, (map_file,), self._timeout(plan))
        verified = {
            e: (
                read
                if isinstance(read, str)
                else _expect(read.maps.get(map_file, {}).get(key), backend, f"{key} →")
            )
            for e, read in reads.items()
        }
        return _conclude(plan, changes, verified)

    async def _hook(self, plan: Plan, say: Progress, deadline: float) -> Outcome:
        node = self.config.node(plan.nodes[0])
        hook = str(plan.details["hook"])
        async with AgentClient(node) as agent:
            action_id = await agent.start(
                f"/v1/hooks/{hook}", {"reason": plan.request.reason or plan.request.action}
            )
            say(f"agent hook {hook} started ({action_id})")
            action = await agent.wait(action_id, deadline, self.clock)
        ok = action.get("state") == "done"
        change = Change(agent.url, ok, f"hook {hook}: {action.get('state')}")
        return Outcome(plan, "verified" if ok else "failed", (change,), change.detail)

    # --- rollback ---------------------------------------------------------------------

    async def _rollback(self, plan: Plan, say: Progress, deadline: float) -> Outcome:
        width = int(plan.details["width"])
        nodes = [self.config.node(name) for name in plan.nodes]
        changes: list[Change] = []
        rolled: list[str] = []
        revisions: list[str] = []
        for start in range(0, len(nodes), width):
            batch = nodes[start : start + width]
            results = await asyncio.gather(
                *(self._rollback_node(plan, node, say, deadline) for node in batch),
                return_exceptions=True,  # a sibling is never cancelled halfway through
            )
            for node, result in zip(batch, results, strict=True):
                if isinstance(result, BaseException):
                    if isinstance(result, asyncio.CancelledError):
                        raise result
                    result = _NodeRollback([Change(node.name, False, f"{result!r}")], None)
                changes += result.changes
                if result.revision is not None:
                    revisions.append(result.revision)
                if all(c.ok for c in result.changes):
                    rolled.append(node.name)
            if len(rolled) < start + len(batch):
                failed = [n.name for n in batch if n.name not in rolled]
                status = "partial" if rolled else "failed"
                detail = (
                    f"stopped at {', '.join(failed)}; rolled back: {', '.join(rolled) or 'none'}; "
                    f"not started: {', '.join(n.name for n in nodes[start + width :]) or 'none'}"
                )
                drained = [n for n in failed if plan.gateway is not None]
                if drained:
                    undo = "; ".join(self.commands("undrain", n) for n in drained)
                    detail += f"; left drained at the gateway (undrain with: {undo})"
                revision = revisions[0] if revisions else None
                return Outcome(plan, status, tuple(changes), detail, revision=revision)
        status = "partial" if plan.skipped else "verified"
        detail = f"rolled back: {', '.join(rolled)}"
        return Outcome(plan, status, tuple(changes), detail, revision=next(iter(revisions), None))

    async def _rollback_node(
        self, plan: Plan, node: NodeConfig, say: Progress, deadline: float
    ) -> _NodeRollback:
        """Drain at the gateway, let in-flight requests finish, roll back, check the new
        revision answers, put the node back as it was."""
        server = node.server or node.name
        # a node an operator took out of rotation (DRAIN, MAINT) is left out; others come back
        in_rotation = plan.details.get("prior", {}).get(node.name) not in ("DRAIN", "MAINT")
        changes: list[Change] = []
        async with AgentClient(node) as agent:
            current = await self._revision(agent)
            if plan.request.to is not None and current == plan.request.to:
                return _NodeRollback([Change(agent.url, True, f"already at {current}")], current)
            if plan.gateway is not None and in_rotation:
                drained = await self._set_servers(plan, server, "DRAIN", plan.replicas)
                changes += drained
                if not all(c.ok for c in drained):
                    return _NodeRollback(changes, None)
                say(f"{node.name}: drained")
                await self._drain_wait(plan, server, deadline)
            body = {"to": plan.request.to, "reason": plan.request.reason or "rollback"}
            try:
                action_id = await agent.start("/v1/rollback", body)
            except FleetdeckError as exc:
                # nothing changed on the node: put it back as it was before giving up
                changes.append(Change(agent.url, False, str(exc)))
                if plan.gateway is not None and in_rotation:
                    changes += await self._set_servers(plan, server, "UP", plan.replicas)
                return _NodeRollback(changes, None)
            say(f"{node.name}: rollback started ({action_id})")
            try:
                action = await agent.wait(action_id, deadline, self.clock)
            except (FleetdeckError, TimeoutError) as exc:
                return _NodeRollback([*changes, Change(agent.url, False, str(exc))], None)
            revision = action.get("to")
            revision = None if revision is None else str(revision)
            if action.get("state") != "done":
                why = action.get("error") or action.get("state")
                failure = Change(agent.url, False, f"rollback {action_id}: {why}")
                return _NodeRollback([*changes, failure], revision)
            problem = await self._healthy(node, agent, revision)
            changes.append(
                Change(agent.url, problem is None, problem or f"{node.name} serves {revision}")
            )
            if problem is not None:
                return _NodeRollback(changes, revision)  # left drained: not fit for traffic
        say(f"{node.name}: {revision} answers")
        if plan.gateway is not None and in_rotation:
            changes += await self._set_servers(plan, server, "UP", plan.replicas)
        return _NodeRollback(changes, revision)

    async def _drain_wait(self, plan: Plan, server: str, deadline: float) -> None:
        """Give the node's requests in flight until the deadline to finish before a restart."""
        backend = str(plan.details["backend"])
        while self.clock() < deadline:
            reads = await read_replicas(self._driver(plan), plan.replicas, (), self._timeout(plan))
            if _in_flight(reads, backend, server) == 0:
                return
            await asyncio.sleep(0.1)

    @staticmethod
    async def _revision(agent: AgentClient) -> str | None:
        try:
            snapshot = await agent.snapshot()
        except FleetdeckError:
            return None  # the rollback itself will say what is wrong with the agent
        revision = snapshot.get("revision")
        return None if revision is None else str(revision)

    async def _healthy(self, node: NodeConfig, agent: AgentClient, revision: Any) -> str | None:
        try:
            snapshot = await agent.snapshot()
        except FleetdeckError as exc:
            return f"cannot check the new revision: {exc}"
        if revision is not None and snapshot.get("revision") != revision:
            return f"agent reports revision {snapshot.get('revision')}, expected {revision}"
        url = node.engine_metrics_url
        return None if url is None else await engine_healthy(url, node.refresh.timeout * 2)


@dataclass(frozen=True, slots=True)
class _NodeRollback:
    changes: list[Change]
    revision: str | None  # where the node was rolled back to, when known


def _until_text(plan: Plan) -> str | None:
    until = plan.details.get("until")
    if until is None:
        return None
    return "until " + time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(float(until)))


def _expect(seen: str | None, wanted: str, what: str) -> str | None:
    """None when `seen` is what was wanted; else what was seen instead."""
    return None if seen == wanted else f"{what} {seen or 'missing'}, expected {wanted}"


def _check_servers(
    reads: dict[str, ReplicaState | str], backend: str, server: str, state: str
) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for endpoint, read in reads.items():
        if isinstance(read, str):
            found[endpoint] = f"read back failed: {read}"
            continue
        row = read.servers.get((backend, server))
        seen = None if row is None else row.state
        # HAProxy shows DOWN for a server whose health check fails, drained or not: the change
        # was accepted, and shows as DRAIN or UP once the server is back
        ok = seen in (state, "DOWN")
        found[endpoint] = None if ok else f"{backend}/{server} is {seen or 'missing'}"
    return found


def _shows(reads: dict[str, ReplicaState | str], backend: str, server: str, state: str) -> bool:
    return any(
        not isinstance(read, str)
        and (backend, server) in read.servers
        and read.servers[(backend, server)].state == state
        for read in reads.values()
    )


def _in_flight(reads: dict[str, ReplicaState | str], backend: str, server: str) -> int | None:
    total = 0
    for read in reads.values():
        if isinstance(read, str):
            return None
        row = read.servers.get((backend, server))
        total += (row.scur or 0) if row is not None else 0
    return total


def _conclude(plan: Plan, changes: Sequence[Change], verified: dict[str, str | None]) -> Outcome:
    """Changes and read-backs per replica → verified, partial or failed."""
    final = [
        c
        if not c.ok or verified.get(c.where) is None
        else Change(c.where, False, verified[c.where])
        for c in changes
    ]
    good = [c.where for c in final if c.ok]
    bad = [f"{c.where}: {c.detail}" for c in final if not c.ok]
    bad += [f"{e}: skipped (unreachable before the action)" for e in plan.skipped]
    if not bad:
        return Outcome(plan, "verified", tuple(final), f"verified on {len(good)} replica(s)")
    status = "partial" if good else "failed"
    return Outcome(plan, status, tuple(final), "; ".join(bad))


def audit_path(explicit: str | None, config: FleetConfig | None = None) -> Path:
    """`--audit-log`, else the config's `audit_log` (shared by all who use the file), else
    the user's own in the state dir."""
    from console.audit import default_audit_path

    if explicit:
        return Path(explicit).expanduser()
    if config is not None and config.audit_log is not None:
        return Path(config.audit_log)
    return default_audit_path()
