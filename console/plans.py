"""Planning an action: what it would change, and whether it should (the preflight).

A `Plan` is built from the fleet's config, the current snapshot and the gateways' last reads;
it touches nothing. It names the blast radius (nodes, pools, replicas, requests in flight),
the steps, the warnings, and — when the action must not go ahead — the refusal. The same
plan is shown by `--dry-run`, by the confirm prompt, by the TUI's modal, and kept in the
audit record.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from console.fleet import CommandConfig, FleetConfig, NodeConfig, PoolConfig
from console.gateways import GatewayWatch
from console.model import NodeStatus, PoolStatus, Severity, Snapshot

ACTIONS = ("drain", "undrain", "failover", "failback", "rollback", "ack", "forget", "command")
# actions that change the fleet: refused in read-only mode, recorded for drift
CHANGING = ("drain", "undrain", "failover", "failback", "rollback")


@dataclass(frozen=True, slots=True)
class Request:
    """What an operator asked for, before anyone looked at the fleet."""

    action: str  # one of ACTIONS
    target: str  # a node, a pool, or (command) the command's scope target
    to: str | None = None  # failover: the standby pool; rollback: the revision
    command: str | None = None  # command: the operator command's name
    reason: str | None = None
    force: bool = False  # act on the reachable replicas when some are not
    wait: bool = False  # drain: wait until the requests in flight have finished
    timeout: float = 30.0  # seconds for the whole action, verification included
    ack_for: float | None = None  # ack: seconds


@dataclass(frozen=True, slots=True)
class Plan:
    request: Request
    summary: str  # one line for people
    nodes: tuple[str, ...] = ()  # blast radius
    pools: tuple[str, ...] = ()
    gateway: str | None = None
    replicas: tuple[str, ...] = ()  # gateway endpoints it changes
    skipped: tuple[str, ...] = ()  # unreachable replicas left out under --force
    in_flight: float | None = None  # requests in flight on what it takes out of service
    steps: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    refusal: str | None = None  # why it must not go ahead; None when it may
    noop: bool = False  # already as asked: succeeds without touching anything
    locks: tuple[str, ...] = ()  # the targets locked while it runs
    argv: tuple[str, ...] = ()  # command: the program and arguments, placeholders filled
    # what execution needs to know (JSON values: kept in the audit record, read for drift)
    details: Mapping[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        r = self.request
        return {
            "action": r.action,
            "target": r.target,
            "to": r.to,
            "command": r.command,
            "summary": self.summary,
            "nodes": list(self.nodes),
            "pools": list(self.pools),
            "gateway": self.gateway,
            "replicas": list(self.replicas),
            "skipped": list(self.skipped),
            "in_flight": self.in_flight,
            "steps": list(self.steps),
            "warnings": list(self.warnings),
            "refusal": self.refusal,
            "noop": self.noop,
            "argv": list(self.argv),
            "force": r.force,
            "wait": r.wait,
            "timeout_s": r.timeout,
            **({"ack_for_s": r.ack_for} if r.ack_for is not None else {}),
            **self.details,  # e.g. backend, server, state, map, key, until
        }

    def lines(self) -> list[str]:
        """The plan for people: summary, blast radius, steps, warnings, refusal."""
        lines = [self.summary, f"  nodes: {', '.join(self.nodes) or '-'}"]
        lines.append(f"  pools: {', '.join(self.pools) or '-'}")
        if self.gateway:
            lines.append(f"  gateway: {self.gateway} ({len(self.replicas)} replica(s))")
        if self.in_flight is not None:
            lines.append(f"  in flight: {self.in_flight:g} request(s)")
        lines += [f"  step: {step}" for step in self.steps]
        lines += [f"  skipped: {replica} (unreachable)" for replica in self.skipped]
        lines += [f"  warning: {warning}" for warning in self.warnings]
        if self.noop:
            lines.append("  already as asked: nothing to change")
        if self.refusal:
            lines.append(f"  refused: {self.refusal}")
        return lines


def _load(node: NodeStatus) -> float:
    return (node.engine.running or 0.0) + (node.engine.waiting or 0.0)


class Planner:
    """Builds plans against one fleet config; stateless between calls."""

    def __init__(self, config: FleetConfig, read_only: bool = False) -> None:
        self.config = config
        self.read_only = read_only or config.read_only

    def plan(self, request: Request, snapshot: Snapshot, watches: Sequence[GatewayWatch]) -> Plan:
        build = getattr(self, f"_{request.action}", None)
        if request.action not in ACTIONS or build is None:
            return Plan(request, f"{request.action} {request.target}", refusal="unknown action")
        plan: Plan = build(request, snapshot, {w.config.name: w for w in watches})
        if self.read_only and (request.action != "command" or plan.details.get("dangerous")):
            return replace(plan, refusal="read-only mode: actions are disabled")
        return plan

    # --- lookups ----------------------------------------------------------------------

    def _node_config(self, name: str) -> NodeConfig | None:
        return next((n for n in self.config.nodes if n.name == name), None)

    def _pool_config(self, name: str) -> PoolConfig | None:
        return next((p for p in self.config.pools if p.name == name), None)

    def _unknown(self, request: Request, kinds: str) -> Plan:
        names = [n.name for n in self.config.nodes] if "node" in kinds else []
        names += [p.name for p in self.config.pools] if "pool" in kinds else []
        close = [n for n in names if n.startswith(request.target[:3])][:3]
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        return Plan(
            request,
            f"{request.action} {request.target}",
            refusal=f"no {kinds} named '{request.target}'{hint}",
        )

    def _replicas(
        self, request: Request, pool: PoolConfig, watches: Mapping[str, GatewayWatch]
    ) -> tuple[tuple[str, ...], tuple[str, ...], str | None]:
        """(replicas to act on, replicas skipped, refusal) for the pool's gateway."""
        watch = watches.get(pool.gateway or "")
        if watch is None:
            return (), (), f"gateway {pool.gateway} is not read"
        if watch.driver is None:
            return (), (), f"gateway {pool.gateway}: {watch.error}"
        up = tuple(e for e, r in watch.replicas.items() if r.up)
        down = tuple(e for e, r in watch.replicas.items() if not r.up)
        if not up:
            return (), down, f"gateway {pool.gateway}: no replica answers"
        if down and not request.force:
            why = "; ".join(f"{e}: {watch.replicas[e].error}" for e in down)
            return (
                up,
                down,
                (
                    f"gateway {pool.gateway} replica unreachable ({why}); "
                    "--force acts on the reachable ones and reports partial"
                ),
            )
        return up, down, None

    # --- drain / undrain --------------------------------------------------------------

    def _drain(
        self, request: Request, snapshot: Snapshot, watches: Mapping[str, GatewayWatch]
    ) -> Plan:
        return self._server_state(request, snapshot, watches, "DRAIN")

    def _undrain(
        self, request: Request, snapshot: Snapshot, watches: Mapping[str, GatewayWatch]
    ) -> Plan:
        return self._server_state(request, snapshot, watches, "UP")

    def _server_state(
        self,
        request: Request,
        snapshot: Snapshot,
        watches: Mapping[str, GatewayWatch],
        wanted: str,
    ) -> Plan:
        node = self._node_config(request.target)
        if node is None:
            return self._unknown(request, "node")
        pool = self.config.pool(node.pool)
        status = next(n for n in snapshot.nodes if n.name == node.name)
        base = Plan(
            request,
            f"{request.action} node {node.name} (pool {pool.name})",
            nodes=(node.name,),
            pools=(pool.name,),
            # the pool too: two drains in one pool must not both pass the min_healthy check
            locks=(node.name, pool.name),
            in_flight=_load(status) if status.up else None,
        )
        warnings: list[str] = []
        if wanted == "DRAIN":
            refusal = _min_healthy(pool, snapshot, node.name)
            if refusal is not None:
                return replace(base, refusal=refusal)
            warnings += _capacity_warnings(pool, snapshot, (node.name,), self.config)
        if pool.gateway is None:
            hook = "stop_accepting" if wanted == "DRAIN" else "resume"
            if node.agent is None:
                return replace(
                    base,
                    refusal=f"node {node.name} has no gateway and no agent: nothing can "
                    f"{request.action} it",
                )
            return replace(
                base,
                steps=(f"agent {node.agent}: hook {hook}",),
                warnings=tuple(warnings),
                details={"hook": hook},
            )
        replicas, skipped, refusal = self._replicas(request, pool, watches)
        backend, server = pool.backend or "", node.server or node.name
        watch = watches[pool.gateway]
        states = {
            e: r.state.servers[(backend, server)].state
            for e, r in watch.replicas.items()
            if e in replicas and r.state is not None and (backend, server) in r.state.servers
        }
        missing = [e for e in replicas if e not in states and watch.replicas[e].state is not None]
        if missing:
            refusal = refusal or f"no server {backend}/{server} on {', '.join(missing)}"
        others = sorted({s for s in states.values() if s != wanted})
        if wanted == "DRAIN" and "MAINT" in others:
            warnings.append(f"{node.name} is in MAINT on some replicas; drain will lift it")
        if len(set(states.values())) > 1:
            warnings.append(
                "replicas disagree (another operator acting?): "
                + ", ".join(f"{s} on {e}" for e, s in sorted(states.items()))
            )
        noop = bool(replicas) and not skipped and all(states.get(e) == wanted for e in replicas)
        admin = {"DRAIN": "drain", "UP": "ready"}[wanted]
        steps = [f"{e}: set server {backend}/{server} state {admin}" for e in replicas]
        if request.wait and wanted == "DRAIN":
            steps.append(f"wait until {server} has no request in flight (≤ {request.timeout:g} s)")
        return replace(
            base,
            gateway=pool.gateway,
            replicas=replicas,
            skipped=skipped,
            steps=tuple(steps),
            warnings=tuple(warnings),
            refusal=refusal,
            noop=noop,
            details={"backend": backend, "server": server, "state": wanted},
        )

    # --- failover / failback ----------------------------------------------------------

    def _failover(
        self, request: Request, snapshot: Snapshot, watches: Mapping[str, GatewayWatch]
    ) -> Plan:
        pool = self._pool_config(request.target)
        if pool is None:
            return self._unknown(request, "pool")
        standby_name = request.to or pool.standby
        if standby_name is None:
            return Plan(
                request,
                f"failover pool {pool.name}",
                refusal=f"pool {pool.name} has no standby: name one with --to",
            )
        standby = self._pool_config(standby_name)
        if standby is None:
            unknown = self._unknown(replace(request, target=standby_name), "pool")
            return replace(unknown, request=request, summary=f"failover pool {pool.name}")
        if standby is pool:
            return Plan(
                request, f"failover pool {pool.name}", refusal="a pool cannot fail over to itself"
            )
        plan = self._route(request, snapshot, watches, pool, standby)
        if plan.refusal is not None or plan.noop:
            return plan
        status = next(p for p in snapshot.pools if p.name == standby.name)
        refusal = _standby_refusal(status, standby)
        if refusal is not None:
            return replace(plan, refusal=refusal)
        warnings = list(plan.warnings)
        source = next(p for p in snapshot.pools if p.name == pool.name)
        warnings += _absorb_warnings(source, standby, snapshot, self.config)
        return replace(plan, warnings=tuple(warnings))

    def _failback(
        self, request: Request, snapshot: Snapshot, watches: Mapping[str, GatewayWatch]
    ) -> Plan:
        pool = self._pool_config(request.target)
        if pool is None:
            return self._unknown(request, "pool")
        plan = self._route(request, snapshot, watches, pool, pool)
        status = next(p for p in snapshot.pools if p.name == pool.name)
        if plan.refusal is None and not plan.noop and status.healthy == 0:
            why = f"pool {pool.name} has no healthy node to take its traffic back"
            if not request.force:
                return replace(plan, refusal=f"{why}; --force fails back all the same")
            return replace(plan, warnings=(*plan.warnings, why))
        return plan

    def _route(
        self,
        request: Request,
        snapshot: Snapshot,
        watches: Mapping[str, GatewayWatch],
        pool: PoolConfig,
        serving: PoolConfig,
    ) -> Plan:
        """Point `pool`'s route at `serving`'s backend on every replica."""
        base = Plan(
            request,
            f"{request.action} pool {pool.name}: route → {serving.backend} (pool {serving.name})",
            pools=tuple(dict.fromkeys((pool.name, serving.name))),
            locks=(pool.name,),
        )
        if pool.route is None or pool.gateway is None:
            return replace(base, refusal=f"pool {pool.name} has no route to switch")
        if serving.gateway != pool.gateway or serving.backend is None:
            return replace(
                base, refusal=f"pool {serving.name} has no backend on gateway {pool.gateway}"
            )
        replicas, skipped, refusal = self._replicas(request, pool, watches)
        route = pool.route
        watch = watches[pool.gateway]
        current = {
            e: r.state.maps.get(route.map, {}).get(route.key)
            for e, r in watch.replicas.items()
            if e in replicas and r.state is not None
        }
        warnings = []
        if len({v for v in current.values()}) > 1:
            warnings.append(
                "replicas disagree on the route: "
                + ", ".join(f"{v} on {e}" for e, v in sorted(current.items()))
            )
        noop = (
            bool(replicas) and not skipped and all(v == serving.backend for v in current.values())
        )
        source = next(p for p in snapshot.pools if p.name == pool.name)
        return replace(
            base,
            gateway=pool.gateway,
            nodes=pool.nodes + (serving.nodes if serving is not pool else ()),
            replicas=replicas,
            skipped=skipped,
            in_flight=source.running,
            steps=tuple(
                f"{e}: set map {route.map} {route.key} {serving.backend}" for e in replicas
            ),
            warnings=tuple(warnings),
            refusal=refusal,
            noop=noop,
            details={"map": route.map, "key": route.key, "backend": serving.backend},
        )

    # --- rollback ---------------------------------------------------------------------

    def _rollback(
        self, request: Request, snapshot: Snapshot, watches: Mapping[str, GatewayWatch]
    ) -> Plan:
        node = self._node_config(request.target)
        pool = self.config.pool(node.pool) if node else self._pool_config(request.target)
        if pool is None:
            return self._unknown(request, "node or pool")
        nodes = [node] if node else [self.config.node(n) for n in pool.nodes]
        scope = f"node {node.name}" if node else f"pool {pool.name}, rolling"
        base = Plan(
            request,
            f"rollback {scope} to {request.to or 'the previous revision'}",
            nodes=tuple(n.name for n in nodes),
            pools=(pool.name,),
            locks=(pool.name, *(n.name for n in nodes)),
        )
        lacking = [n.name for n in nodes if n.agent is None]
        if lacking:
            return replace(base, refusal=f"no agent to roll back on {', '.join(lacking)}")
        replicas: tuple[str, ...] = ()
        skipped: tuple[str, ...] = ()
        refusal = None
        if pool.gateway is not None:
            replicas, skipped, refusal = self._replicas(request, pool, watches)
        width = 1 if node else pool.max_unavailable
        status = next(p for p in snapshot.pools if p.name == pool.name)
        warnings = []
        by_name = {s.name: s for s in snapshot.nodes}
        serving = [n for n in nodes if by_name[n.name].healthy]
        if serving and status.healthy - min(width, len(serving)) < pool.min_healthy:
            why = (
                f"taking {width} node(s) out at a time leaves fewer than min_healthy "
                f"{pool.min_healthy} healthy in {pool.name}"
            )
            if not request.force:
                refusal = refusal or f"{why}; --force rolls back all the same"
            else:
                warnings.append(why)
        steps = []
        for batch_start in range(0, len(nodes), width):
            batch = ", ".join(n.name for n in nodes[batch_start : batch_start + width])
            drain = "drain at the gateway, " if pool.gateway else ""
            steps.append(f"{batch}: {drain}roll back through the agent, check healthy, undrain")
        in_flight = [_load(s) for s in snapshot.nodes if s.name in {n.name for n in nodes} and s.up]
        return replace(
            base,
            gateway=pool.gateway,
            replicas=replicas,
            skipped=skipped,
            in_flight=sum(in_flight) if in_flight else None,
            steps=tuple(steps),
            warnings=tuple(warnings),
            refusal=refusal,
            details={
                "width": width,
                "backend": pool.backend,
                # a node already out of rotation (DRAIN, MAINT) is put back as it was
                "prior": {n.name: by_name[n.name].state or "UP" for n in nodes},
            },
        )

    # --- ack, forget, operator commands -------------------------------------------------

    def _ack(
        self, request: Request, snapshot: Snapshot, watches: Mapping[str, GatewayWatch]
    ) -> Plan:
        if self._node_config(request.target) is None and self._pool_config(request.target) is None:
            return self._unknown(request, "node or pool")
        seconds = request.ack_for or 0.0
        if seconds <= 0:
            return Plan(request, f"ack {request.target}", refusal="--for must be longer than 0s")
        return Plan(
            request,
            f"ack {request.target} for {seconds:g} s: left out of check and roll-ups",
            nodes=(request.target,) if self._node_config(request.target) else (),
            pools=(request.target,) if self._pool_config(request.target) else (),
            steps=("record the acknowledgement in the audit log",),
            locks=(request.target,),
            details={"until": snapshot.time + seconds},
        )

    def _forget(
        self, request: Request, snapshot: Snapshot, watches: Mapping[str, GatewayWatch]
    ) -> Plan:
        drift = [d for d in snapshot.drift if d.target == request.target]
        return Plan(
            request,
            f"forget the last verified action on {request.target}: accept what the gateways show",
            steps=("record it in the audit log",),
            warnings=() if drift else (f"no drift on {request.target} right now",),
            locks=(request.target,),
        )

    def _command(
        self, request: Request, snapshot: Snapshot, watches: Mapping[str, GatewayWatch]
    ) -> Plan:
        command = next((c for c in self.config.commands if c.name == request.command), None)
        if command is None:
            known = ", ".join(c.name for c in self.config.commands) or "none configured"
            return Plan(
                request,
                f"command {request.command}",
                refusal=f"no command named '{request.command}' (known: {known})",
            )
        values = self._placeholders(command, request.target)
        if values is None:
            return self._unknown(request, command.scope)
        argv = tuple(_fill(word, values) for word in command.argv)
        return Plan(
            request,
            f"command {command.name} on {command.scope} {request.target}: {shlex.join(argv)}",
            nodes=(request.target,) if command.scope == "node" else (),
            pools=(request.target,) if command.scope == "pool" else (),
            steps=(f"run {shlex.join(argv)} (no shell, killed after {command.timeout:g} s)",),
            locks=(request.target,),
            argv=argv,
            details={
                "dangerous": command.dangerous,
                "timeout": command.timeout,
                "confirm": command.confirm,
            },
        )

    def _placeholders(self, command: CommandConfig, target: str) -> dict[str, str] | None:
        if command.scope == "gateway":
            found = any(g.name == target for g in self.config.gateways)
            return {"gateway": target} if found else None
        if command.scope == "pool":
            pool = self._pool_config(target)
            if pool is None:
                return None
            return {"pool": pool.name, "backend": pool.backend or "", "gateway": pool.gateway or ""}
        node = self._node_config(target)
        if node is None:
            return None
        pool = self.config.pool(node.pool)
        return {
            "node": node.name,
            "pool": pool.name,
            "server": node.server or "",
            "backend": pool.backend or "",
            "gateway": pool.gateway or "",
        }


_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _fill(word: str, values: Mapping[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), word)


# --- preflight checks -----------------------------------------------------------------


def _min_healthy(pool: PoolConfig, snapshot: Snapshot, leaving: str) -> str | None:
    members = [n for n in snapshot.nodes if n.pool == pool.name]
    healthy = [n.name for n in members if n.healthy]
    if leaving not in healthy:
        return None  # taking out a node that serves nothing removes no capacity
    after = len(healthy) - 1
    if pool.min_healthy and after < pool.min_healthy:
        return (
            f"draining {leaving} leaves {after} healthy node(s) in {pool.name}, "
            f"below min_healthy {pool.min_healthy}"
        )
    return None


def _capacity_warnings(
    pool: PoolConfig, snapshot: Snapshot, leaving: Sequence[str], config: FleetConfig
) -> list[str]:
    members = [n for n in snapshot.nodes if n.pool == pool.name]
    moving = sum(_load(n) for n in members if n.name in leaving and n.up)
    rest = [n for n in members if n.name not in leaving and n.healthy]
    if not rest:
        return [f"no other healthy node in {pool.name} to take its {moving:g} requests"]
    capacities = [config.node(n.name).capacity for n in rest]
    if any(c is None for c in capacities):
        return []  # unknown capacity: nothing to warn about with confidence
    room = sum((c or 0) - _load(n) for c, n in zip(capacities, rest, strict=True))
    if moving > room:
        return [
            f"the rest of {pool.name} has room for {max(room, 0):g} more requests but "
            f"{moving:g} would move: expect queues to grow"
        ]
    return []


def _standby_refusal(status: PoolStatus, standby: PoolConfig) -> str | None:
    if status.healthy == 0 or status.healthy < standby.min_healthy:
        return f"standby {standby.name} is unhealthy: {status.healthy}/{status.nodes} healthy"
    if status.severity in (Severity.CRIT, Severity.UNKNOWN):
        return f"standby {standby.name} is {status.severity.label}: {'; '.join(status.reasons)}"
    alerts = standby.alerts
    waiting = None if status.waiting is None else status.waiting / max(status.nodes, 1)
    for label, value, limit in (
        ("error rate", status.error_rate, alerts.error_rate.warn),
        ("TTFT p95", status.ttft_p95_s, alerts.ttft_p95_s.warn),
        ("waiting per node", waiting, alerts.waiting.warn),
    ):
        if value is not None and limit is not None and value >= limit:
            return (
                f"standby {standby.name} is already over its threshold: "
                f"{label} {value:.3g} >= {limit:g}"
            )
    return None


def _absorb_warnings(
    source: PoolStatus, standby: PoolConfig, snapshot: Snapshot, config: FleetConfig
) -> list[str]:
    nodes = [n for n in snapshot.nodes if n.pool == standby.name and n.healthy]
    capacities = [config.node(n.name).capacity for n in nodes]
    if not nodes or any(c is None for c in capacities):
        return []
    room = sum((c or 0) - _load(n) for c, n in zip(capacities, nodes, strict=True))
    moving = (source.running or 0.0) + (source.waiting or 0.0)
    if moving > room:
        return [
            f"standby {standby.name} has room for {max(room, 0):g} more requests but "
            f"{source.name} carries {moving:g}: expect queues to grow"
        ]
    return []
