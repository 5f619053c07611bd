"""What the gateways' replicas say, rolled into a snapshot's view: node server states, pool
routes, replica disagreement, 5xx rates, and drift against the audit log's verified actions."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from console.audit import AuditLog
from console.config import load_config
from console.fleet import FleetConfig
from console.gateway import BackendState, ReplicaState, ServerState
from console.gateways import GatewayWatch, gateway_view
from console.identity import Identity
from console.model import Severity
from console.overlay import AuditOverlay

FLEET = """
gateways:
  - {name: edge, plugin: haproxy, endpoints: ["tcp://127.0.0.1:1", "tcp://127.0.0.1:2"]}
pools:
  - name: us
    gateway: edge
    backend: be_us
    route: {map: route.map, key: active}
    standby: eu
    nodes:
      - {name: us-1, url: "http://127.0.0.1:8001"}
      - {name: us-2, url: "http://127.0.0.1:8002", server: s2}
  - name: eu
    gateway: edge
    backend: be_eu
    nodes: [{name: eu-1, url: "http://127.0.0.1:8101"}]
"""
ONE, TWO = "tcp://127.0.0.1:1", "tcp://127.0.0.1:2"


@pytest.fixture
def config(tmp_path: Path) -> FleetConfig:
    path = tmp_path / "fleet.yaml"
    path.write_text(textwrap.dedent(FLEET), encoding="utf-8")
    return load_config(path)


def replica(
    endpoint: str, states: dict[str, str] | None = None, route: str = "be_us", errors: int = 0
) -> ReplicaState:
    names = {"us-1": ("be_us", "us-1"), "us-2": ("be_us", "s2"), "eu-1": ("be_eu", "eu-1")}
    servers = {
        key: ServerState(key[0], key[1], (states or {}).get(node, "UP"), "UP")
        for node, key in names.items()
    }
    backends = {
        b: BackendState(b, "UP", scur=2, qcur=0, hrsp_5xx=errors) for b in ("be_us", "be_eu")
    }
    return ReplicaState(endpoint, servers, backends, {"route.map": {"active": route}})


def watch(config: FleetConfig, *reads: ReplicaState | None, at: float = 10.0) -> GatewayWatch:
    watched = GatewayWatch.of(config, config.gateways[0], driver=object())  # type: ignore[arg-type]
    for endpoint, read in zip((ONE, TWO), reads, strict=True):
        target = watched.replicas[endpoint]
        if read is None:
            target.error = "connection refused"
        else:
            target.state, target.error, target.last_ok = read, None, at
    return watched


def test_agreeing_replicas_give_states_and_routes(config: FleetConfig) -> None:
    view = gateway_view([watch(config, replica(ONE), replica(TWO))], 10.5, 3.0)
    (status,) = view.statuses
    assert (status.replicas_up, status.replicas_total, status.severity) == (2, 2, Severity.OK)
    assert view.servers["us-2"].value == "UP" and view.routes["us"].value == "be_us"
    assert [(b.name, b.scur) for b in status.backends] == [("be_us", 4), ("be_eu", 4)]


def test_a_drain_on_one_replica_only_is_a_warning(config: FleetConfig) -> None:
    view = gateway_view([watch(config, replica(ONE, {"us-1": "DRAIN"}), replica(TWO))], 10.5, 3.0)
    assert view.servers["us-1"].value == "DRAIN"  # the state furthest out of service
    (status,) = view.statuses
    assert status.severity is Severity.WARN
    assert status.reasons == (f"us-1: replicas disagree: DRAIN on {ONE}, UP on {TWO}",)


def test_routes_that_disagree_are_a_warning(config: FleetConfig) -> None:
    view = gateway_view([watch(config, replica(ONE, route="be_eu"), replica(TWO))], 10.5, 3.0)
    assert view.routes["us"].disagreement == f"be_eu on {ONE}, be_us on {TWO}"
    assert view.statuses[0].severity is Severity.WARN


def test_dead_and_stale_replicas(config: FleetConfig) -> None:
    half = gateway_view([watch(config, replica(ONE), None)], 10.5, 3.0)
    (status,) = half.statuses
    assert status.replicas_up == 1 and status.severity is Severity.WARN
    assert status.reasons == (f"replica {TWO}: connection refused",)
    # refresh interval 2s, stale after 3 intervals: a read 7 s old no longer counts
    stale = gateway_view([watch(config, replica(ONE), replica(TWO), at=3.0)], 10.0, 3.0)
    assert stale.statuses[0].replicas_up == 0 and stale.statuses[0].severity is Severity.CRIT
    assert stale.servers == {}


def test_a_missing_server_is_named(config: FleetConfig) -> None:
    read = replica(ONE)
    servers = {k: v for k, v in read.servers.items() if k != ("be_us", "s2")}
    gone = ReplicaState(ONE, servers, read.backends, read.maps)
    view = gateway_view([watch(config, gone, replica(TWO))], 10.5, 3.0)
    assert f"no server be_us/s2 on {ONE}" in view.statuses[0].reasons


def test_5xx_rate_from_counter_deltas(config: FleetConfig) -> None:
    watched = watch(config, replica(ONE, errors=10), replica(TWO, errors=0))
    for endpoint, errors in ((ONE, 30), (TWO, 5)):
        target = watched.replicas[endpoint]
        target.previous = (target.last_ok or 0.0, target.state)  # type: ignore[assignment]
        target.state, target.last_ok = replica(endpoint, errors=errors), 12.0
    view = gateway_view([watched], 12.5, 3.0)
    be_us = view.statuses[0].backends[0]
    assert be_us.errors_5xx_per_s == pytest.approx((20 + 5) / 2.0)


def test_drift_after_a_reload_dropped_a_drain_and_a_failover(
    config: FleetConfig, tmp_path: Path
) -> None:
    audit = AuditLog(tmp_path / "audit.jsonl", identity=Identity("ops", "bastion", None))
    for action, target, plan in (
        ("drain", "us-1", {"server": "us-1", "backend": "be_us", "state": "DRAIN"}),
        ("failover", "us", {"map": "route.map", "key": "active", "backend": "be_eu", "to": None}),
    ):
        audit.result(audit.intent(action, [target], plan, None), "verified", duration_s=0.1)
    overlay = AuditOverlay(audit.path, config)
    kept = gateway_view(
        [watch(config, *(replica(e, {"us-1": "DRAIN"}, "be_eu") for e in (ONE, TWO)))],
        10.5,
        3.0,
    )
    assert overlay.drift(kept) == ()
    lost = gateway_view(
        [watch(config, replica(ONE), replica(TWO, {"us-1": "DRAIN"}, "be_eu"))], 10.5, 3.0
    )
    first, second = overlay.drift(lost)
    assert (first.target, first.expected, first.observed) == (
        "us",
        "route → be_eu",
        f"route → be_us on {ONE}",
    )
    assert (second.target, second.observed) == ("us-1", f"UP on {ONE}")
    flags = f"-c {config.path} --yes"
    assert second.reapply == f"fleetdeck drain us-1 {flags}"
    assert second.forget == f"fleetdeck forget us-1 {flags}"

    audit.result(audit.intent("forget", ["us-1"], {}, None), "verified", duration_s=0.0)
    assert [d.target for d in overlay.drift(lost)] == ["us"]
    audit.result(audit.intent("failback", ["us"], {}, None), "verified", duration_s=0.1)
    assert overlay.drift(lost) == ()


def test_a_later_undrain_that_failed_leaves_no_drift_to_re_apply(
    config: FleetConfig, tmp_path: Path
) -> None:
    audit = AuditLog(tmp_path / "audit.jsonl", identity=Identity("ops", "bastion", None))
    plan = {"server": "us-1", "backend": "be_us", "state": "DRAIN"}
    audit.result(audit.intent("drain", ["us-1"], plan, None), "verified", duration_s=0.1)
    audit.result(audit.intent("undrain", ["us-1"], plan, None), "partial", duration_s=0.1)
    lost = gateway_view([watch(config, replica(ONE), replica(TWO))], 10.5, 3.0)
    assert AuditOverlay(audit.path, config).drift(lost) == ()  # not "re-drain it"
    # a rollback of the pool is not a route change: the failover's drift stays
    audit.result(
        audit.intent("failover", ["us"], {"backend": "be_eu", "to": None}, None),
        "verified",
        duration_s=0.1,
    )
    audit.result(audit.intent("rollback", ["us", "us-1"], {}, None), "verified", duration_s=1.0)
    (drift,) = AuditOverlay(audit.path, config).drift(lost)
    assert drift.target == "us" and drift.expected == "route → be_eu"
