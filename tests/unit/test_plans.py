"""The preflight: plans built from a config, a snapshot and the gateways' last reads, with no
network (the gateway replicas' states are set by hand)."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest

from console.config import load_config
from console.fleet import FleetConfig
from console.gateway import ReplicaState, ServerState
from console.gateways import GatewayWatch
from console.model import EngineFigures, NodeStatus, PoolStatus, Severity, Snapshot
from console.plans import Planner, Request

FLEET = """
commands:
  - {name: logs, scope: node, argv: [journalctl, -u, "{server}", --host, "{node}"]}
  - {name: wipe, scope: pool, argv: [rm, -rf, "/var/{pool}"], dangerous: true}
gateways:
  - {name: edge, plugin: haproxy, endpoints: ["tcp://127.0.0.1:1", "tcp://127.0.0.1:2"]}
pools:
  - name: us
    gateway: edge
    backend: be_us
    route: {map: route.map, key: active}
    standby: eu
    min_healthy: 2
    capacity: 10
    max_unavailable: 2
    nodes:
      - {name: us-1, url: "http://127.0.0.1:8001"}
      - {name: us-2, url: "http://127.0.0.1:8002", agent: "http://127.0.0.1:9002"}
      - {name: us-3, url: "http://127.0.0.1:8003", agent: "http://127.0.0.1:9003"}
  - name: eu
    gateway: edge
    backend: be_eu
    capacity: 10
    nodes:
      - {name: eu-1, url: "http://127.0.0.1:8101"}
  - name: solo
    nodes:
      - {name: solo-1, url: "http://127.0.0.1:8201", agent: "http://127.0.0.1:9201"}
      - {name: solo-2, url: "http://127.0.0.1:8202"}
"""


@pytest.fixture
def config(tmp_path: Path) -> FleetConfig:
    path = tmp_path / "fleet.yaml"
    path.write_text(textwrap.dedent(FLEET), encoding="utf-8")
    return load_config(path)


def node(
    name: str, pool: str, running: float = 2, waiting: float = 0, **changes: object
) -> NodeStatus:
    status = NodeStatus(
        name=name,
        pool=pool,
        engine_kind="vllm",
        up=True,
        stale=False,
        age_s=0.5,
        scrape_ms=1.0,
        error=None,
        state="UP",
        severity=Severity.OK,
        reasons=(),
        engine=EngineFigures(running=running, waiting=waiting),
        gpus=(),
        host=None,
        revision="rev-2",
        targets=(),
    )
    return dataclasses.replace(status, **changes)  # type: ignore[arg-type]


def pool(name: str, nodes: list[NodeStatus], **changes: object) -> PoolStatus:
    status = PoolStatus(
        name=name,
        model=None,
        nodes=len(nodes),
        healthy=sum(n.healthy for n in nodes),
        running=sum(n.engine.running or 0 for n in nodes),
        waiting=sum(n.engine.waiting or 0 for n in nodes),
        requests_per_s=None,
        tokens_per_s=None,
        error_rate=0.0,
        ttft_p95_s=None,
        gpu_util_avg=None,
        severity=Severity.OK,
        reasons=(),
        route="be_us",
    )
    return dataclasses.replace(status, **changes)  # type: ignore[arg-type]


def snapshot(*nodes: NodeStatus, **pool_changes: dict[str, object]) -> Snapshot:
    pools = []
    for name in ("us", "eu", "solo"):
        members = [n for n in nodes if n.pool == name]
        pools.append(pool(name, members, **pool_changes.get(name, {})))
    return Snapshot(time=1000.0, nodes=tuple(nodes), pools=tuple(pools))


def healthy_fleet(**changes: dict[str, object]) -> Snapshot:
    return snapshot(
        node("us-1", "us"),
        node("us-2", "us"),
        node("us-3", "us"),
        node("eu-1", "eu"),
        node("solo-1", "solo", state=None),
        node("solo-2", "solo", state=None),
        **changes,
    )


def watches(
    config: FleetConfig,
    states: dict[str, str] | None = None,
    route: str = "be_us",
    down: tuple[str, ...] = (),
) -> list[GatewayWatch]:
    """The edge gateway as if both replicas had just been read (all servers UP unless told)."""
    watch = GatewayWatch.of(config, config.gateways[0], driver=object())  # type: ignore[arg-type]
    servers = {}
    for member in config.nodes:
        pool_config = config.pool(member.pool)
        if pool_config.backend is None:
            continue
        state = (states or {}).get(member.name, "UP")
        key = (pool_config.backend, member.server or member.name)
        servers[key] = ServerState(key[0], key[1], state, state, scur=1)
    for endpoint, replica in watch.replicas.items():
        if endpoint in down:
            replica.error = "connection refused"
            continue
        replica.state = ReplicaState(endpoint, servers, {}, {"route.map": {"active": route}})
        replica.error, replica.last_ok = None, 0.0
    return [watch]


def test_drain_plans_every_replica_with_its_blast_radius(config: FleetConfig) -> None:
    plan = Planner(config).plan(Request("drain", "us-1"), healthy_fleet(), watches(config))
    assert plan.refusal is None and not plan.noop
    assert plan.replicas == ("tcp://127.0.0.1:1", "tcp://127.0.0.1:2")
    assert (plan.nodes, plan.pools, plan.gateway, plan.in_flight) == (("us-1",), ("us",), "edge", 2)
    assert plan.steps[0] == "tcp://127.0.0.1:1: set server be_us/us-1 state drain"
    assert plan.as_json()["server"] == "us-1"


def test_drain_below_min_healthy_is_refused(config: FleetConfig) -> None:
    fleet = healthy_fleet()
    fleet = dataclasses.replace(
        fleet,
        nodes=tuple(
            dataclasses.replace(n, state="DRAIN") if n.name == "us-3" else n for n in fleet.nodes
        ),
    )
    plan = Planner(config).plan(Request("drain", "us-1"), fleet, watches(config, {"us-3": "DRAIN"}))
    assert plan.refusal == "draining us-1 leaves 1 healthy node(s) in us, below min_healthy 2"


def test_drain_warns_when_the_rest_cannot_absorb_the_load(config: FleetConfig) -> None:
    fleet = snapshot(
        node("us-1", "us", running=8, waiting=6),
        node("us-2", "us", running=9),
        node("us-3", "us", running=9),
        node("eu-1", "eu"),
    )
    plan = Planner(config).plan(Request("drain", "us-1"), fleet, watches(config))
    assert plan.refusal is None
    assert plan.warnings == (
        "the rest of us has room for 2 more requests but 14 would move: expect queues to grow",
    )


def test_draining_a_drained_node_is_a_noop(config: FleetConfig) -> None:
    plan = Planner(config).plan(
        Request("drain", "us-1"), healthy_fleet(), watches(config, {"us-1": "DRAIN"})
    )
    assert plan.noop and plan.refusal is None


def test_a_dead_replica_refuses_unless_forced(config: FleetConfig) -> None:
    dead = watches(config, down=("tcp://127.0.0.1:2",))
    plan = Planner(config).plan(Request("drain", "us-1"), healthy_fleet(), dead)
    assert plan.refusal is not None
    assert "tcp://127.0.0.1:2: connection refused" in plan.refusal and "--force" in plan.refusal
    forced = Planner(config).plan(Request("drain", "us-1", force=True), healthy_fleet(), dead)
    assert forced.refusal is None
    assert (forced.replicas, forced.skipped) == (("tcp://127.0.0.1:1",), ("tcp://127.0.0.1:2",))


def test_replicas_that_disagree_are_reported(config: FleetConfig) -> None:
    split = watches(config)
    replica = split[0].replicas["tcp://127.0.0.1:2"]
    assert replica.state is not None
    servers = dict(replica.state.servers)
    servers[("be_us", "us-1")] = ServerState("be_us", "us-1", "DRAIN", "DRAIN")
    replica.state = dataclasses.replace(replica.state, servers=servers)
    plan = Planner(config).plan(Request("drain", "us-1"), healthy_fleet(), split)
    assert not plan.noop
    assert any(
        "replicas disagree" in w and "DRAIN on tcp://127.0.0.1:2" in w for w in plan.warnings
    )


def test_a_node_without_gateway_drains_through_its_agent_hook(config: FleetConfig) -> None:
    planner = Planner(config)
    plan = planner.plan(Request("drain", "solo-1"), healthy_fleet(), watches(config))
    assert plan.details["hook"] == "stop_accepting" and plan.refusal is None
    bare = planner.plan(Request("drain", "solo-2"), healthy_fleet(), watches(config))
    assert bare.refusal == "node solo-2 has no gateway and no agent: nothing can drain it"


def test_failover_to_a_healthy_standby(config: FleetConfig) -> None:
    plan = Planner(config).plan(Request("failover", "us"), healthy_fleet(), watches(config))
    assert plan.refusal is None
    assert plan.details == {"map": "route.map", "key": "active", "backend": "be_eu"}
    assert plan.locks == ("us",) and plan.pools == ("us", "eu")
    back = Planner(config).plan(Request("failback", "us"), healthy_fleet(), watches(config))
    assert back.noop  # the route already names be_us


@pytest.mark.parametrize(
    ("standby", "reason"),
    [
        ({"healthy": 0}, "standby eu is unhealthy: 0/1 healthy"),
        ({"severity": Severity.CRIT, "reasons": ("no healthy node",)}, "standby eu is crit"),
        ({"error_rate": 0.05}, "already over its threshold: error rate 0.05 >= 0.02"),
    ],
)
def test_failover_to_a_sick_standby_is_refused(
    config: FleetConfig, standby: dict[str, object], reason: str
) -> None:
    plan = Planner(config).plan(
        Request("failover", "us"), healthy_fleet(eu=standby), watches(config)
    )
    assert plan.refusal is not None and reason in plan.refusal


def test_failover_warns_when_the_standby_cannot_absorb_the_pool(config: FleetConfig) -> None:
    fleet = snapshot(
        node("us-1", "us", running=8),
        node("us-2", "us", running=8),
        node("us-3", "us", running=8),
        node("eu-1", "eu", running=5),
    )
    plan = Planner(config).plan(Request("failover", "us"), fleet, watches(config))
    assert plan.warnings == (
        "standby eu has room for 5 more requests but us carries 24: expect queues to grow",
    )


def test_failover_needs_a_route_and_a_standby(config: FleetConfig) -> None:
    planner = Planner(config)
    assert planner.plan(Request("failover", "eu"), healthy_fleet(), watches(config)).refusal == (
        "pool eu has no standby: name one with --to"
    )
    plan = planner.plan(Request("failover", "eu", to="us"), healthy_fleet(), watches(config))
    assert plan.refusal == "pool eu has no route to switch"


def test_rollback_of_a_pool_rolls_in_batches_of_max_unavailable(config: FleetConfig) -> None:
    plan = Planner(config).plan(Request("rollback", "us"), healthy_fleet(), watches(config))
    assert plan.refusal == "no agent to roll back on us-1"
    plan = Planner(config).plan(
        Request("rollback", "us-2", to="rev-1"), healthy_fleet(), watches(config)
    )
    assert plan.refusal is None and plan.details["width"] == 1
    assert plan.summary == "rollback node us-2 to rev-1"


def test_unknown_targets_are_named_with_a_hint(config: FleetConfig) -> None:
    plan = Planner(config).plan(Request("drain", "us-9"), healthy_fleet(), watches(config))
    assert plan.refusal == "no node named 'us-9' (did you mean us-1, us-2, us-3?)"


def test_read_only_refuses_actions_but_not_safe_commands(config: FleetConfig) -> None:
    planner = Planner(config, read_only=True)
    for request in (
        Request("drain", "us-1"),
        Request("ack", "us", ack_for=60),
        Request("command", "us", command="wipe"),
    ):
        plan = planner.plan(request, healthy_fleet(), watches(config))
        assert plan.refusal == "read-only mode: actions are disabled"
    logs = planner.plan(
        Request("command", "us-2", command="logs"), healthy_fleet(), watches(config)
    )
    assert logs.refusal is None
    assert logs.argv == ("journalctl", "-u", "us-2", "--host", "us-2")


def test_ack_records_when_it_ends(config: FleetConfig) -> None:
    plan = Planner(config).plan(
        Request("ack", "us-1", ack_for=1800), healthy_fleet(), watches(config)
    )
    assert plan.as_json()["until"] == 2800.0 and plan.nodes == ("us-1",)
    zero = Planner(config).plan(Request("ack", "us", ack_for=0), healthy_fleet(), watches(config))
    assert zero.refusal == "--for must be longer than 0s"
