"""A frozen fleet for the TUI's snapshot tests, built in code: three pools and fourteen nodes in
every state the screens must show, the fifteen minutes of history leading up to it, and the
plan of a drain on it. Fixed numbers and fixed times only (no randomness, no wall clock), so a
render is the same on every run.

The incident, in seconds before `NOW`: chat-03 takes a bad revision (420: errors), the chat
pool is failed over to its standby chat-dr (300: the standby's queues grow), code-02 logs an
ECC XID (240) and then loses its GPU 2 (180), acknowledged by the on-call (120), dr-03 stops
answering (60), code-03's data goes stale (last good reading: 9). chat-04 is drained and code-04 in
maintenance throughout; a gateway reload undid the drain of chat-06 (drift); one replica of the
code gateway is unreachable. Severities and their reasons come from `console.rules`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from console.fleet import (
    Alerts,
    FleetConfig,
    GatewayConfig,
    NodeConfig,
    PoolConfig,
    Refresh,
    Route,
)
from console.gateway import ReplicaState, ServerState
from console.gateways import ReplicaRead, gateway_watches
from console.history import History
from console.model import (
    Ack,
    BackendFigures,
    Drift,
    EngineFigures,
    GatewayStatus,
    GpuSample,
    HostSample,
    NodeStatus,
    PoolStatus,
    ReplicaHealth,
    Severity,
    Snapshot,
    TargetHealth,
)
from console.plans import Plan, Planner, Request
from console.plugin import load_registry
from console.rules import Verdict, engine_verdict, gpu_verdict, total
from console.tui.events import EventLog

NOW = 1_750_000_000.0  # 2025-06-15 15:06:40 UTC: the snapshot's time
CLOCK = NOW + 1.0  # what the injected clock says: the data is one second old
HISTORY_S = 900  # one snapshot a second for the detail screens' 15-minute sparklines

DEPLOY_AGO = 420
FAILOVER_AGO = 300
XID_AGO = 240
GPU_LOST_AGO = 180
ACK_AGO = 120
DOWN_AGO = 60
LAST_OK_AGO = 9  # code-03's last good reading

GIB = 2**30
REFRESH = Refresh(interval=2.0, timeout=1.0)
ALERTS = Alerts()
ROUTES = "/etc/haproxy/routes.map"
GATEWAYS = {  # gateway -> its replicas' runtime endpoints
    "edge": ("tcp://10.0.0.10:9999", "tcp://10.0.0.11:9999"),
    "code-gw": ("tcp://10.0.2.10:9999", "tcp://10.0.2.11:9999"),
}
UNREACHABLE = {"tcp://10.0.2.11:9999": "connection refused"}


@dataclass(frozen=True, slots=True)
class PoolSpec:
    name: str
    model: str
    engine: str
    gateway: str
    standby: str | None
    min_healthy: int
    nodes: tuple[str, ...]
    routed: bool = True  # has a route in the gateway's map


POOLS = (
    PoolSpec("chat", "llama-3.1-70b-instruct", "vllm", "edge", "chat-dr", 3,
             ("chat-01", "chat-02", "chat-03", "chat-04", "chat-05", "chat-06")),
    PoolSpec("chat-dr", "llama-3.1-70b-instruct", "sglang", "edge", None, 1,
             ("dr-01", "dr-02", "dr-03"), routed=False),
    PoolSpec("code", "qwen2.5-coder-32b", "tgi", "code-gw", None, 4,
             ("code-01", "code-02", "code-03", "code-04", "code-05")),
)  # fmt: skip
CAPACITY = 16  # requests a node holds at once: the drain plan warns that the rest is full


def _wave(ago: float, phase: int) -> float:
    """A gentle, repeatable swing around 1 for the sparklines; exactly 1 at `ago` 0."""
    return 1.0 + 0.12 * (math.sin(ago / 37.0 + phase) - math.sin(phase))


@dataclass(frozen=True, slots=True)
class Load:
    """A node's engine figures now; history swings around them."""

    running: float
    waiting: float
    error_rate: float
    requests_per_s: float
    tokens_per_s: float
    ttft_p95_s: float

    def at(self, ago: float, phase: int, model: str) -> EngineFigures:
        swing = _wave(ago, phase)
        return EngineFigures(
            running=round(self.running * swing),
            waiting=round(self.waiting * swing),
            kv_cache_usage=min(0.97, 0.04 * (self.running + self.waiting)),
            requests_per_s=round(self.requests_per_s * swing, 2),
            tokens_per_s=round(self.tokens_per_s * swing),
            prompt_tokens_per_s=round(self.tokens_per_s * swing * 3),
            error_rate=round(self.error_rate * swing, 4),
            ttft_p50_s=round(self.ttft_p95_s * swing * 0.4, 2),
            ttft_p95_s=round(self.ttft_p95_s * swing, 2),
            model=model,
        )


def _gpus(
    ago: float, phase: int, utils: Sequence[float], temps: Sequence[float]
) -> list[GpuSample]:
    gpus = []
    for index, (util, temp) in enumerate(zip(utils, temps, strict=True)):
        busy = min(100.0, round(util * _wave(ago, phase + index)))
        gpus.append(
            GpuSample(
                index=index,
                uuid=f"GPU-{phase:02d}{index:02d}",
                name="NVIDIA H100 80GB HBM3",
                util=busy,
                mem_util=busy * 0.6,
                mem_used=(52 + 0.25 * util) * GIB,
                mem_total=80.0 * GIB,
                temp=temp,
                power=round(110 + 5.5 * busy),
                power_limit=700.0,
                ecc_uncorrected=0,
                throttle=("sw_thermal",) if temp >= 83 else (),
            )
        )
    return gpus


def _node(
    spec: PoolSpec,
    name: str,
    ago: float,
    load: Load,
    gpus: Sequence[GpuSample],
    *,
    state: str = "UP",
    revision: str = "r41",
    down: str | None = None,
    last_ok_ago: float | None = None,
    ack: Ack | None = None,
) -> NodeStatus:
    phase = spec.nodes.index(name) + 3 * POOLS.index(spec)
    age = 0.6 if last_ok_ago is None else last_ok_ago - ago  # seconds since its last good read
    stale = down is not None or age > ALERTS.stale_after * REFRESH.interval
    engine = EngineFigures() if down else load.at(ago, phase, spec.model)
    verdict = Verdict()  # as console.snapshot judges a node: down, stale, then its figures
    if down is not None:
        verdict.raise_to(Severity.CRIT, f"down: {down}")
    elif stale:
        verdict.raise_to(Severity.UNKNOWN, f"stale: last data {age:.0f}s ago")
    else:
        engine_verdict(verdict, engine, ALERTS)
    gpu_verdict(verdict, gpus, ALERTS, NOW - ago)
    url = f"http://{name}.internal:8000/metrics"
    return NodeStatus(
        name=name,
        pool=spec.name,
        engine_kind=spec.engine,
        up=down is None,
        stale=stale,
        age_s=age,
        scrape_ms=None if down else 12.0 + phase,
        error=down,
        state=state,
        severity=verdict.severity,
        reasons=tuple(verdict.reasons),
        engine=engine,
        gpus=() if down else tuple(gpus),
        host=None if down else HostSample(cpu=31.0, mem_used=210 * GIB, mem_total=1024 * GIB),
        revision=None if down else revision,
        targets=(TargetHealth(url, down is None, stale, NOW - ago - age, age, None, down),),
        ack=ack,
    )


def _chat(ago: float) -> list[NodeStatus]:
    spec = POOLS[0]
    bad = ago <= DEPLOY_AGO
    chat_03 = Load(11, 0, 0.142 if bad else 0.003, 2.4, 610 if bad else 1150, 0.52)
    return [
        _node(spec, "chat-01", ago, Load(14, 0, 0.003, 2.2, 1240, 0.38),
              _gpus(ago, 0, (64, 61), (66, 64))),
        _node(spec, "chat-02", ago, Load(12, 0, 0.002, 2.0, 1180, 0.36),
              _gpus(ago, 1, (59, 62), (65, 63))),
        _node(spec, "chat-03", ago, chat_03, _gpus(ago, 2, (41, 38), (61, 60)),
              revision="r42" if bad else "r41"),
        _node(spec, "chat-04", ago, Load(2, 0, 0.0, 0.3, 150, 0.33),
              _gpus(ago, 3, (12, 9), (48, 47)), state="DRAIN"),
        _node(spec, "chat-05", ago, Load(16, 1, 0.004, 2.3, 1300, 0.40),
              _gpus(ago, 4, (71, 74), (78, 86))),
        _node(spec, "chat-06", ago, Load(13, 0, 0.003, 2.1, 1210, 0.37),
              _gpus(ago, 5, (63, 60), (66, 65))),
    ]  # fmt: skip


def _standby(ago: float) -> list[NodeStatus]:
    spec = POOLS[1]
    # the standby's queues grow for four minutes after the failover, then hold
    surge = min(1.0, max(0.0, (FAILOVER_AGO - ago) / 240))
    nodes = []
    for index, name in enumerate(spec.nodes):
        waiting = 1 + (33 - 6 * index) * surge
        load = Load(16, waiting, 0.006, 1.4 + 2 * surge, 700 + 900 * surge, 0.6 + 2.2 * surge)
        gpus = _gpus(ago, 10 + index, (40 + 50 * surge, 42 + 50 * surge), (62, 64))
        gone = name == "dr-03" and ago <= DOWN_AGO
        why = "connect timeout after 1.0 s" if gone else None
        last_ok_ago = DOWN_AGO if gone else None
        nodes.append(_node(spec, name, ago, load, gpus, down=why, last_ok_ago=last_ok_ago))
    return nodes


def _code(ago: float) -> list[NodeStatus]:
    spec = POOLS[2]
    code_02 = _gpus(ago, 21, (72, 70, 68, 71), (71, 70, 69, 72))
    lost = ago <= GPU_LOST_AGO
    if lost:  # GPU 2 fell off the bus; the others take its share
        code_02[2] = GpuSample(
            index=2,
            uuid="GPU-2102",
            name="NVIDIA H100 80GB HBM3",
            ecc_uncorrected=1,
            last_xid=79,
            last_xid_time=NOW - GPU_LOST_AGO,
            lost=True,
        )
        code_02[0] = replace(code_02[0], throttle=("sw_power_cap",))
    elif ago <= XID_AGO:  # an uncorrectable ECC error first
        code_02[2] = replace(
            code_02[2], ecc_uncorrected=1, last_xid=48, last_xid_time=NOW - XID_AGO
        )
    ack = Ack(NOW - ACK_AGO + 1800, "maya", "INC-2041: GPU swap booked") if ago <= ACK_AGO else None
    code_02_load = (
        Load(12, 9, 0.011, 2.6, 980, 1.84) if lost else Load(12, 2, 0.001, 2.6, 1390, 0.31)
    )
    return [
        _node(spec, "code-01", ago, Load(9, 2, 0.001, 3.1, 1420, 0.29),
              _gpus(ago, 20, (55, 58), (60, 61))),
        _node(spec, "code-02", ago, code_02_load, code_02, ack=ack),
        _node(spec, "code-03", ago, Load(8, 1, 0.002, 2.9, 1310, 0.30),
              _gpus(ago, 22, (52, 50), (59, 58)),
              last_ok_ago=LAST_OK_AGO if ago <= LAST_OK_AGO else None),
        _node(spec, "code-04", ago, Load(0, 0, 0.0, 0.0, 0, 0.0),
              _gpus(ago, 23, (0, 0), (38, 37)), state="MAINT", revision="r17"),
        _node(spec, "code-05", ago, Load(10, 1, 0.002, 3.0, 1450, 0.31),
              _gpus(ago, 24, (57, 54), (62, 61))),
    ]  # fmt: skip


def _pool(spec: PoolSpec, nodes: Sequence[NodeStatus], ago: float) -> PoolStatus:
    """The roll-ups as console.snapshot makes them, from the nodes above."""
    engines = [n.engine for n in nodes]
    healthy = sum(1 for n in nodes if n.healthy)
    counted = healthy + sum(1 for n in nodes if n.ack is not None and not n.healthy)
    requests = total(e.requests_per_s for e in engines) or 0.0
    errors = sum((e.error_rate or 0) * (e.requests_per_s or 0) for e in engines)
    error_rate = errors / requests if requests else None
    route = None
    if spec.routed:
        route = spec.standby if spec.standby and ago <= FAILOVER_AGO else spec.name
    verdict = Verdict()
    if counted < spec.min_healthy:
        verdict.raise_to(Severity.CRIT, f"{healthy} healthy < min_healthy {spec.min_healthy}")
    elif counted < len(nodes):
        verdict.raise_to(Severity.WARN, f"{len(nodes) - healthy}/{len(nodes)} nodes unhealthy")
    if route is not None and route != spec.name:
        verdict.raise_to(Severity.WARN, f"failed over: route names {route}")
    verdict.check("error rate", error_rate, ALERTS.error_rate, "%")
    ttfts = [e.ttft_p95_s for e in engines if e.ttft_p95_s is not None]
    utils = [g.util for n in nodes for g in n.gpus if g.util is not None and not g.lost]
    verdict.check("TTFT p95", max(ttfts, default=None), ALERTS.ttft_p95_s, "s")
    return PoolStatus(
        name=spec.name,
        model=spec.model,
        nodes=len(nodes),
        healthy=healthy,
        running=total(e.running for e in engines),
        waiting=total(e.waiting for e in engines),
        requests_per_s=requests,
        tokens_per_s=total(e.tokens_per_s for e in engines),
        error_rate=error_rate,
        ttft_p95_s=max(ttfts, default=None),
        gpu_util_avg=sum(utils) / len(utils) if utils else None,
        severity=verdict.severity,
        reasons=tuple(verdict.reasons),
        route=route,
        failed_over=None if route is None else route != spec.name,
    )


def _gateways(nodes: Sequence[NodeStatus]) -> tuple[GatewayStatus, ...]:
    errors = {  # 5xx per second at each backend: the failed requests of its nodes
        spec.name: sum(
            (n.engine.error_rate or 0) * (n.engine.requests_per_s or 0)
            for n in nodes
            if n.pool == spec.name
        )
        for spec in POOLS
    }
    statuses = []
    for gateway, endpoints in GATEWAYS.items():
        replicas = tuple(
            ReplicaHealth(
                e, e not in UNREACHABLE, 0.4 if e not in UNREACHABLE else None, UNREACHABLE.get(e)
            )
            for e in endpoints
        )
        reasons = tuple(f"replica {r.endpoint}: {r.error}" for r in replicas if not r.up)
        backends = tuple(
            BackendFigures(spec.name, "UP", 40, 0, round(errors[spec.name], 2))
            for spec in POOLS
            if spec.gateway == gateway
        )
        statuses.append(
            GatewayStatus(
                name=gateway,
                replicas_up=sum(1 for r in replicas if r.up),
                replicas_total=len(replicas),
                severity=Severity.WARN if reasons else Severity.OK,
                reasons=reasons,
                replicas=replicas,
                backends=backends,
            )
        )
    return tuple(statuses)


DRIFT = Drift(
    target="chat-06",
    expected="DRAIN",
    observed="UP on tcp://10.0.0.10:9999, tcp://10.0.0.11:9999",
    since=NOW - 3600,
    reapply="fleetdeck drain chat-06",
    forget="fleetdeck forget chat-06",
)


def fleet_at(ago: float) -> Snapshot:
    """The fleet `ago` seconds before `NOW`."""
    nodes = [*_chat(ago), *_standby(ago), *_code(ago)]
    pools = tuple(_pool(spec, [n for n in nodes if n.pool == spec.name], ago) for spec in POOLS)
    return Snapshot(NOW - ago, tuple(nodes), pools, _gateways(nodes), (DRIFT,))


def snapshot() -> Snapshot:
    return fleet_at(0)


def recorded() -> tuple[History, EventLog]:
    """The history and the events of the last 15 minutes, one snapshot a second."""
    history, events = History(), EventLog()
    for ago in range(HISTORY_S - 1, -1, -1):
        frame = fleet_at(ago)
        history.record(frame)
        events.observe(frame)
    return history, events


def config() -> FleetConfig:
    """The fleet's configuration, for planning actions on the snapshot."""
    gateways = tuple(
        GatewayConfig(name, "haproxy", ends, REFRESH) for name, ends in GATEWAYS.items()
    )
    pools = tuple(
        PoolConfig(
            name=spec.name,
            model=spec.model,
            gateway=spec.gateway,
            backend=spec.name,
            route=Route(ROUTES, spec.name) if spec.routed else None,
            standby=spec.standby,
            min_healthy=spec.min_healthy,
            nodes=spec.nodes,
            alerts=ALERTS,
        )
        for spec in POOLS
    )
    nodes = tuple(
        NodeConfig(
            name=name,
            pool=spec.name,
            engine=spec.engine,
            url=f"http://{name}.internal:8000",
            metrics_url=None,
            agent=f"http://{name}.internal:9401",
            dcgm=None,
            server=name,
            refresh=REFRESH,
            capacity=CAPACITY,
        )
        for spec in POOLS
        for name in spec.nodes
    )
    return FleetConfig(
        path=None, refresh=REFRESH, alerts=ALERTS, gateways=gateways, pools=pools, nodes=nodes
    )


def plan(request: Request) -> Plan:
    """What the action engine would plan on the snapshot, the gateways read as they stand
    (the real HAProxy driver is made but never called: planning touches nothing)."""
    fleet, current = config(), snapshot()
    watches = gateway_watches(fleet, load_registry())
    for watch in watches:
        members = [p for p in fleet.pools if p.gateway == watch.config.name]
        servers = {
            (pool.name, node.name): ServerState(pool.name, node.name, node.state, node.state)
            for pool in members
            for node in current.nodes
            if node.pool == pool.name and node.state is not None
        }
        for endpoint in watch.replicas:
            error = UNREACHABLE.get(endpoint)
            state = None if error else ReplicaState(endpoint, servers)
            watch.replicas[endpoint] = ReplicaRead(endpoint, state, error, last_ok=0.0)
    return Planner(fleet).plan(request, current, watches)
