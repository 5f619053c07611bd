"""The HAProxy driver against real HAProxy replicas in front of simulated nodes: reads, state,
weight and route changes that really move traffic, HAProxy's own error replies, and replicas
that are dead, silent or garbled."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from console.builtin import haproxy
from console.errors import FleetdeckError, GatewayError, GatewayRefused, GatewayUnreachable
from console.fleet import GatewayConfig, Refresh
from console.gateway import ReplicaState
from console.plugin import load_registry
from console.sim import haproxy as sim_haproxy
from console.sim.haproxy import (
    MAP_NAME,
    BackendSpec,
    FrontendSpec,
    HaproxyProcess,
    Ports,
    ServerSpec,
)
from tests.gateway.conftest import MAPS, Gateway, all_up

COMPLETION = {"prompt": "ping", "max_tokens": 1}


def state_of(state: ReplicaState, server: str) -> tuple[str, str]:
    backend = "pool-a" if server in ("node-001", "node-002") else "pool-b"
    found = state.servers[(backend, server)]
    return found.state, found.status


async def served_by(url: str, count: int) -> list[str]:
    """The nodes that answered `count` completions sent one after another to a frontend."""
    nodes = []
    async with httpx.AsyncClient(timeout=5.0) as client:
        for _ in range(count):
            response = await client.post(url + "/v1/completions", json=COMPLETION)
            assert response.status_code == 200, response.text
            # "cmpl-node-001-7": the node's name and how many it has served
            nodes.append(response.json()["id"].removeprefix("cmpl-").rsplit("-", 1)[0])
    return nodes


# --- reading ------------------------------------------------------------------------------


async def test_read_reports_servers_backends_and_the_route_map(gateway: Gateway) -> None:
    first = gateway.replicas[0]
    for endpoint in (first.runtime_endpoint, first.unix_endpoint, first.user_endpoint):
        state = await gateway.driver.read(endpoint, MAPS)
        assert state.endpoint == endpoint
        assert set(state.servers) == {
            ("pool-a", "node-001"),
            ("pool-a", "node-002"),
            ("pool-b", "node-003"),
            ("pool-b", "node-004"),
        }
        for server in state.servers.values():
            assert (server.state, server.status, server.check_status) == ("UP", "UP", "L7OK")
            assert (server.weight, server.scur, server.qcur) == (1, 0, 0)
        assert {name: b.status for name, b in state.backends.items()} == {
            "pool-a": "UP",
            "pool-b": "UP",
        }
        assert state.maps == {MAP_NAME: {"pool-a": "pool-a", "pool-b": "pool-b"}}


async def test_counters_count_requests_through_the_frontend(gateway: Gateway) -> None:
    first, second = gateway.replicas
    endpoint = first.runtime_endpoint
    await gateway.driver.set_server_state(endpoint, "pool-a", "node-002", "DRAIN")
    await gateway.fleet.apply("node-001", {"error_rate": 1.0})  # every completion fails
    async with httpx.AsyncClient(timeout=5.0) as client:
        for _ in range(3):
            response = await client.post(
                first.frontend_url("pool-a") + "/v1/completions", json=COMPLETION
            )
            assert response.status_code == 500
    state = await gateway.driver.read(endpoint, MAPS)
    node = state.servers[("pool-a", "node-001")]
    assert (node.stot, node.hrsp_5xx) == (3, 3)
    assert state.servers[("pool-a", "node-002")].stot == 0
    backend = state.backends["pool-a"]
    assert (backend.stot, backend.hrsp_5xx, backend.scur, backend.qcur) == (3, 3, 0, 0)
    assert state.backends["pool-b"].stot == 0
    other = await gateway.driver.read(second.runtime_endpoint, MAPS)  # counters are per replica
    assert other.backends["pool-a"].stot == 0


async def test_the_driver_comes_from_the_registry_with_the_gateway_timeout(
    gateway: Gateway,
) -> None:
    endpoint = gateway.replicas[1].runtime_endpoint
    config = GatewayConfig("edge", "haproxy", (endpoint,), Refresh(interval=1.0, timeout=0.7))
    driver = load_registry().gateway(config)
    assert isinstance(driver, haproxy.HaproxyDriver)
    assert driver.timeout == 0.7
    assert all_up(await driver.read(endpoint, MAPS))


# --- changing -----------------------------------------------------------------------------


async def test_drain_maint_and_ready_round_trip_on_one_replica(gateway: Gateway) -> None:
    first, second = (replica.runtime_endpoint for replica in gateway.replicas)
    driver = gateway.driver
    for state, status in (("DRAIN", "DRAIN"), ("DRAIN", "DRAIN"), ("MAINT", "MAINT")):
        await driver.set_server_state(first, "pool-b", "node-003", state)
        assert state_of(await driver.read(first, MAPS), "node-003") == (state, status)
    await driver.set_server_state(first, "pool-b", "node-003", "UP")
    # out of maintenance a checked server is UP at once, one failed check from DOWN: "UP 1/2"
    assert state_of(await driver.read(first, MAPS), "node-003")[0] == "UP"
    await gateway.settle(first, all_up)
    assert state_of(await driver.read(second, MAPS), "node-003") == ("UP", "UP")


async def test_a_drained_server_takes_no_new_requests(gateway: Gateway) -> None:
    first, second = gateway.replicas
    await gateway.driver.set_server_state(first.runtime_endpoint, "pool-a", "node-001", "DRAIN")
    assert set(await served_by(first.frontend_url("pool-a"), 4)) == {"node-002"}
    assert set(await served_by(second.frontend_url("pool-a"), 4)) == {"node-001", "node-002"}


async def test_weight_round_trip_and_haproxy_range(gateway: Gateway) -> None:
    endpoint = gateway.replicas[0].runtime_endpoint
    await gateway.driver.set_server_weight(endpoint, "pool-a", "node-002", 7)
    state = await gateway.driver.read(endpoint, MAPS)
    assert state.servers[("pool-a", "node-002")].weight == 7
    assert state.servers[("pool-a", "node-001")].weight == 1
    with pytest.raises(GatewayRefused) as refused:
        await gateway.driver.set_server_weight(endpoint, "pool-a", "node-002", 300)
    assert refused.value.kind == "refused"
    assert "Absolute weight can only be between 0 and 256 inclusive." in str(refused.value)


async def test_set_map_moves_the_route_on_that_replica_only(gateway: Gateway) -> None:
    first, second = gateway.replicas
    assert set(await served_by(first.frontend_url("pool-a"), 2)) <= {"node-001", "node-002"}
    await gateway.driver.set_map(first.runtime_endpoint, MAP_NAME, "pool-a", "pool-b")
    state = await gateway.driver.read(first.runtime_endpoint, MAPS)
    assert state.maps[MAP_NAME] == {"pool-a": "pool-b", "pool-b": "pool-b"}
    assert set(await served_by(first.frontend_url("pool-a"), 4)) == {"node-003", "node-004"}
    assert set(await served_by(second.frontend_url("pool-a"), 2)) <= {"node-001", "node-002"}
    await gateway.driver.set_map(first.runtime_endpoint, MAP_NAME, "pool-a", "pool-a")
    assert set(await served_by(first.frontend_url("pool-a"), 2)) <= {"node-001", "node-002"}


async def test_a_dead_node_reads_down_and_a_drain_shows_once_it_is_back(
    gateway: Gateway,
) -> None:
    endpoint = gateway.replicas[0].runtime_endpoint
    await gateway.fleet.apply("node-004", {"fault": "refuse"})
    state = await gateway.settle(endpoint, lambda s: state_of(s, "node-004")[0] == "DOWN")
    assert state.servers[("pool-b", "node-004")].check_status == "L4CON"
    # HAProxy shows the worse of health and admin state: drained while DOWN still reads DOWN
    await gateway.driver.set_server_state(endpoint, "pool-b", "node-004", "DRAIN")
    assert state_of(await gateway.driver.read(endpoint, MAPS), "node-004") == ("DOWN", "DOWN")
    await gateway.fleet.apply("node-004", {"fault": None})
    await gateway.settle(endpoint, lambda s: state_of(s, "node-004") == ("DRAIN", "DRAIN"))


async def test_a_restart_forgets_runtime_changes(gateway: Gateway) -> None:
    replica = gateway.replicas[0]
    endpoint = replica.runtime_endpoint
    await gateway.driver.set_server_state(endpoint, "pool-a", "node-001", "DRAIN")
    await gateway.driver.set_map(endpoint, MAP_NAME, "pool-a", "pool-b")
    await replica.restart()
    assert replica.runtime_endpoint == endpoint
    state = await gateway.driver.read(endpoint, MAPS)
    assert state_of(state, "node-001")[0] == "UP"
    assert state.maps[MAP_NAME]["pool-a"] == "pool-a"


# --- HAProxy's error replies ------------------------------------------------------------


Call = Callable[[haproxy.HaproxyDriver, str], Awaitable[object]]
REFUSALS: list[tuple[Call, str, str, str]] = [
    (
        lambda d, e: d.set_server_state(e, "pool-a", "node-009", "DRAIN"),
        "no_such_server",
        "set server pool-a/node-009 state drain: No such server.",
        "runtime",
    ),
    (
        lambda d, e: d.set_server_weight(e, "pool-z", "node-001", 2),
        "no_such_backend",
        "set server pool-z/node-001 weight 2: No such backend.",
        "runtime",
    ),
    (
        lambda d, e: d.set_map(e, "nope.map", "pool-a", "pool-b"),
        "no_such_map",
        "set map nope.map pool-a pool-b: Unknown map identifier.",
        "runtime",
    ),
    (
        lambda d, e: d.read(e, (MAP_NAME, "nope.map")),
        "no_such_map",
        "show map nope.map: Unknown map identifier.",
        "runtime",
    ),
    (
        lambda d, e: d.set_map(e, MAP_NAME, "pool-z", "pool-b"),
        "no_such_key",
        "set map route.map pool-z pool-b: entry not found.",
        "runtime",
    ),
    (
        lambda d, e: d.set_server_state(e, "pool-a", "node-001", "MAINT"),
        "permission_denied",
        "set server pool-a/node-001 state maint: Permission denied",
        "user",
    ),
]


@pytest.mark.parametrize(("call", "kind", "message", "socket"), REFUSALS)
async def test_error_replies_are_typed_refusals_naming_replica_and_target(
    gateway: Gateway, call: Call, kind: str, message: str, socket: str
) -> None:
    replica = gateway.replicas[0]
    endpoint = replica.runtime_endpoint if socket == "runtime" else replica.user_endpoint
    with pytest.raises(GatewayRefused) as refused:
        await call(gateway.driver, endpoint)
    assert refused.value.kind == kind
    assert refused.value.replica == endpoint
    assert str(refused.value) == f"{endpoint}: {message}"


async def test_an_unknown_command_is_recognised(gateway: Gateway) -> None:
    endpoint = gateway.replicas[0].runtime_endpoint
    (answer,) = await gateway.driver.exchange(endpoint, ["show frobnication"])
    refusal = haproxy.refusal(endpoint, "show frobnication", answer)
    assert refusal is not None and refusal.kind == "unknown_command"


@pytest.mark.parametrize(
    "call",
    [
        lambda d, e: d.set_server_state(e, "pool-a", "node-001", "DOWN"),  # not settable
        lambda d, e: d.set_map(e, MAP_NAME, "pool-a", "pool-b;shutdown frontend x"),
        lambda d, e: d.read(e, ("route map",)),
    ],
)
async def test_what_cannot_be_sent_is_refused_before_sending(gateway: Gateway, call: Call) -> None:
    endpoint = gateway.replicas[0].runtime_endpoint
    with pytest.raises(GatewayError) as error:
        await call(gateway.driver, endpoint)
    assert type(error.value) is GatewayError
    assert str(error.value).startswith(endpoint + ": ")


# --- replicas that do not answer, or not as HAProxy -------------------------------------


async def test_a_killed_replica_is_unreachable_and_comes_back_on_restart(
    gateway: Gateway,
) -> None:
    replica = gateway.replicas[1]
    await replica.kill()
    with pytest.raises(GatewayUnreachable) as unreachable:
        await gateway.driver.read(replica.runtime_endpoint, MAPS)
    assert str(unreachable.value) == f"{replica.runtime_endpoint}: runtime API: connection refused"
    await replica.restart()
    state = await gateway.driver.read(replica.runtime_endpoint, MAPS)
    assert len(state.servers) == 4


async def test_a_missing_unix_socket_is_unreachable(gateway: Gateway) -> None:
    endpoint = gateway.replicas[0].unix_endpoint + ".gone"
    with pytest.raises(GatewayUnreachable, match="no such file or directory"):
        await gateway.driver.read(endpoint, MAPS)


FakeRuntime = Callable[[bytes | None], Awaitable[str]]


@pytest.fixture
async def fake_runtime() -> AsyncIterator[FakeRuntime]:
    """A loopback server that reads one command line and answers `reply` then closes, or,
    for None, never answers (it waits for the client to give up)."""
    servers: list[asyncio.Server] = []

    async def start(reply: bytes | None) -> str:
        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readline()
            if reply is None:
                await reader.read()
            else:
                writer.write(reply)
            writer.close()

        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        servers.append(server)
        return f"tcp://127.0.0.1:{server.sockets[0].getsockname()[1]}"

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


async def test_a_silent_replica_times_out_within_the_bound(fake_runtime: FakeRuntime) -> None:
    endpoint = await fake_runtime(None)
    driver = haproxy.HaproxyDriver(timeout=0.3)
    started = time.monotonic()
    with pytest.raises(GatewayUnreachable, match=r"no answer within 0\.3 s"):
        await driver.read(endpoint, MAPS)
    assert 0.3 <= time.monotonic() - started < 1.0


@pytest.mark.parametrize(
    ("reply", "error", "message"),
    [
        (b"", GatewayUnreachable, "connection closed after 0 of 2 answers$"),
        (b"# pxname,svname,status\nweb,s1,UP\n", GatewayUnreachable, "0 of 2 answers .cut off"),
        (b"\n\n\n", GatewayRefused, "2 commands drew 3 answers"),
        (b"web,s1,UP\n\n\n", GatewayRefused, "show stat: the answer has no CSV header"),
        (b"# pxname,svname,status\nweb,s1,UP\n\nnonsense\n\n", GatewayRefused, "line 1 is not"),
    ],
)
async def test_a_reply_that_is_not_haproxys_is_a_clear_error(
    fake_runtime: FakeRuntime, reply: bytes, error: type[GatewayError], message: str
) -> None:
    endpoint = await fake_runtime(reply)
    with pytest.raises(error, match=message) as raised:
        await haproxy.HaproxyDriver(timeout=1.0).read(endpoint, MAPS)
    if isinstance(raised.value, GatewayRefused):
        assert raised.value.kind == "bad_reply"


# --- the harness itself -----------------------------------------------------------------


async def test_a_replica_that_cannot_start_says_why() -> None:
    backends = [BackendSpec("pool-a", (ServerSpec("node-001", "no-such-host.invalid", 80),))]
    replica = HaproxyProcess(backends, [FrontendSpec("pool-a", "pool-a")])
    with pytest.raises(FleetdeckError, match=r"could not resolve address 'no-such-host\.invalid'"):
        await replica.start()
    assert replica.folder is None  # its folder is gone with it


async def test_a_missing_haproxy_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(sim_haproxy, "SBIN_FOLDERS", (str(tmp_path),))
    replica = HaproxyProcess([], [])
    with pytest.raises(FleetdeckError, match=r"haproxy not found .*\(apt-get install haproxy\)"):
        await replica.start()


@pytest.mark.parametrize(
    ("backends", "frontends", "message"),
    [
        (lambda: [], lambda: [FrontendSpec("pool-a", "pool-a")], "no backend 'pool-a'"),
        (lambda: [BackendSpec("pool a", ())], lambda: [], "backend 'pool a': only letters"),
        (lambda: [], lambda: [FrontendSpec("a,b", "pool-a")], "route key 'a,b': only letters"),
    ],
)
def test_a_topology_haproxy_cannot_take_is_refused(
    backends: Callable[[], list[BackendSpec]],
    frontends: Callable[[], list[FrontendSpec]],
    message: str,
) -> None:
    with pytest.raises(ValueError, match=message):
        sim_haproxy.haproxy_config(backends(), frontends(), Ports(runtime=1, frontends={}))
