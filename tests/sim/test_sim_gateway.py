"""The sim's gateway: HAProxy's runtime API, proxying by route map, and load that follows it."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from console.config import check_config
from console.fleet import Route
from console.gateway import ReplicaState, ServerState
from console.httpserver import HttpServer, Response
from console.sim import SimFleet
from console.sim.engine_server import EngineServer
from console.sim.engines import ENGINES
from console.sim.gateway import ROUTE_MAP, SimGateway
from console.sim.loadflow import pool_demand
from console.sim.model import NodeModel
from console.sim.routing import Offer, split_load
from console.sim.runtime_api import STAT_HEADER, answer_line

BOUND = 5.0  # no wait in these tests lasts longer
HAPROXY = Path("/usr/sbin/haproxy")
ROOT = Path(__file__).resolve().parents[2]
SLOW_TOKENS = 250  # a real completion of this many tokens stays in flight about a second


async def ask(endpoint: str, line: str) -> str:
    """One runtime API connection: send `line`, read until the gateway closes."""
    host, port = endpoint.removeprefix("tcp://").rsplit(":", 1)
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), BOUND)
    writer.write(line.encode() + b"\n")
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), BOUND)
    writer.close()
    await writer.wait_closed()
    return answer.decode()


def parse_stat(text: str) -> dict[tuple[str, str], dict[str, str]]:
    lines = text.rstrip("\n").split("\n")
    columns = lines[0].removeprefix("# ").split(",")
    rows = (dict(zip(columns, line.split(","), strict=True)) for line in lines[1:])
    return {(row["pxname"], row["svname"]): row for row in rows}


async def stat(endpoint: str) -> dict[tuple[str, str], dict[str, str]]:
    return parse_stat(await ask(endpoint, "show stat"))


async def complete(client: httpx.AsyncClient, url: str, tokens: int = 1) -> httpx.Response:
    return await client.post(url + "/v1/completions", json={"prompt": "hi", "max_tokens": tokens})


def served_by(answer: httpx.Response) -> str:
    """The node that generated a completion (its id is cmpl-NODE-N)."""
    return str(answer.json()["id"]).rsplit("-", 1)[0].removeprefix("cmpl-")


@pytest.fixture
async def fleet() -> AsyncIterator[SimFleet]:
    """Two pools of two nodes: pool-a (routed) and its standby pool-b, two gateway replicas;
    static, with nothing modelled in flight, so only real requests load the servers."""
    async with SimFleet(
        nodes=4, seed=5, gpus=1, pools=2, static=True, gateway=True, gateway_replicas=2
    ) as running:
        for name in running.names:
            await running.apply(name, {"running": 0})
        yield running


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(BOUND)) as http:
        yield http


# -- the runtime API --------------------------------------------------------------------------


async def test_show_stat_reports_every_proxy_with_haproxys_columns(fleet: SimFleet) -> None:
    assert fleet.gateway is not None
    text = await ask(fleet.gateway.endpoint, "show stat")
    assert text.startswith(STAT_HEADER) and text.endswith(",\n\n")
    rows = parse_stat(text)
    assert list(rows) == [
        ("route-pool-a", "FRONTEND"),
        ("pool-a", "node-001"),
        ("pool-a", "node-002"),
        ("pool-a", "BACKEND"),
        ("pool-b", "node-003"),
        ("pool-b", "node-004"),
        ("pool-b", "BACKEND"),
    ]
    server = rows[("pool-a", "node-001")]
    assert (server["status"], server["weight"], server["check_status"]) == ("UP", "1", "L7OK")
    assert server["addr"] == fleet.nodes[0].url.removeprefix("http://")
    assert (server["type"], server["sid"], rows[("pool-a", "BACKEND")]["algo"]) == (
        "2",
        "1",
        "leastconn",
    )
    assert rows[("route-pool-a", "FRONTEND")]["status"] == "OPEN"
    only_servers = parse_stat(await ask(fleet.gateway.endpoint, "show stat pool-b 4 -1"))
    assert list(only_servers) == [("pool-b", "node-003"), ("pool-b", "node-004")]


async def test_a_batch_is_answered_in_order_then_the_connection_closes(fleet: SimFleet) -> None:
    assert fleet.gateway is not None
    endpoint = fleet.gateway.endpoint
    answer = await ask(
        endpoint,
        "set server pool-a/node-001 state drain; set server pool-a/node-002 weight 3;"
        f"set map {ROUTE_MAP} pool-a pool-b; show map {ROUTE_MAP}",
    )
    assert re.fullmatch(r"\n\n\n0x[0-9a-f]{12} pool-a pool-b\n\n", answer), answer
    rows = await stat(endpoint)
    assert rows[("pool-a", "node-001")]["status"] == "DRAIN"
    assert rows[("pool-a", "node-002")]["weight"] == "3"
    maint = await ask(endpoint, "set server pool-a/node-002 state maint; show stat -1 4 -1")
    assert parse_stat(maint.removeprefix("\n"))[("pool-a", "node-002")]["status"] == "MAINT"
    # replicas are independent: the second one saw none of it
    other = await stat(fleet.gateway.endpoints[1])
    assert other[("pool-a", "node-001")]["status"] == "UP"
    assert other[("pool-a", "node-002")]["weight"] == "1"


async def test_a_node_that_refuses_or_hangs_fails_its_check(fleet: SimFleet) -> None:
    assert fleet.gateway is not None
    await fleet.apply("node-001", {"fault": "refuse"})
    await fleet.apply("node-002", {"fault": "hang"})
    rows = await stat(fleet.gateway.endpoint)
    refusing, hanging = rows[("pool-a", "node-001")], rows[("pool-a", "node-002")]
    assert (refusing["status"], refusing["check_status"]) == ("DOWN", "L4CON")
    assert refusing["last_chk"] == "Connection refused"
    assert (hanging["status"], hanging["check_status"]) == ("DOWN", "L7TOUT")
    assert rows[("pool-a", "BACKEND")]["status"] == "DOWN"
    await fleet.apply("node-001", {"fault": None})
    assert (await stat(fleet.gateway.endpoint))[("pool-a", "node-001")]["status"] == "UP"


# -- the same answers as HAProxy 2.6 ------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def real_haproxy(folder: Path, fleet: SimFleet) -> Iterator[tuple[str, str]]:
    """HAProxy 2.6 over pool-a's nodes, as the sim's gateway is: (runtime endpoint, map file)."""
    if not HAPROXY.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{HAPROXY} is missing; CI installs haproxy")
        pytest.skip(f"{HAPROXY} is not installed")
    map_file = folder / "route.map"
    map_file.write_text("pool-a pool-a\n")
    api = free_port()
    servers = "".join(
        f"    server {node.name} {node.url.removeprefix('http://')} check inter 100ms\n"
        for node in fleet.nodes
        if node.pool == "pool-a"
    )
    config = folder / "haproxy.cfg"
    config.write_text(
        f"global\n    stats socket ipv4@127.0.0.1:{api} level admin\n"
        "defaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n"
        "    timeout server 5s\n    timeout check 1s\n"
        f"frontend route-pool-a\n    bind 127.0.0.1:{free_port()}\n"
        f"    use_backend %[str(pool-a),map({map_file},pool-a)]\n"
        "backend pool-a\n    balance leastconn\n    option httpchk GET /health\n" + servers
    )
    process = subprocess.Popen(
        [str(HAPROXY), "-f", str(config), "-db"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        yield f"tcp://127.0.0.1:{api}", str(map_file)
    finally:
        process.terminate()
        process.wait(BOUND)


async def until(check: Any, what: str) -> Any:
    """Poll `check()` (async) until it returns something truthy; fail after BOUND seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BOUND
    while loop.time() < deadline:
        try:
            result = await check()
        except OSError:
            result = None
        if result:
            return result
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


async def settled(endpoint: str) -> dict[tuple[str, str], dict[str, str]] | None:
    """The stats once every server's health check has run and none is on its way up or
    down ("UP 1/3", "DOWN 1/2", check "INI" or "* L7OK" in progress), else None."""
    rows = await stat(endpoint)
    servers = [row for key, row in rows.items() if key[1].startswith("node-")]
    moving = any(
        "/" in row["status"] or row["check_status"].startswith(("INI", "*")) for row in servers
    )
    return None if moving else rows


ERRORS = (
    "set server pool-x/node-001 state drain",  # unknown backend
    "set server pool-a/node-x state drain",  # unknown server
    "set server pool-a state drain",
    "set server pool-a/node-001 state ready-ish",  # bad state word
    "set server pool-a/node-001 state",
    "set server pool-a/node-001 weight 300",
    "set server pool-a/node-001 weight abc",
    "set server pool-a/node-001 weight 5abc",
    "set server pool-a/node-001 weight -5%",
    "set server pool-a/node-001 weight",
    "set server pool-a/node-001 frobnicate",
    "show map /no/such.map",  # unknown map
    "set map /no/such.map pool-a pool-b",
    "set map {map} no-such-key pool-b",  # missing key
    "set map {map} pool-a",
    "show stats",  # unknown commands
    "set mapp x y z",
    "set server pool-a/node-x state drain; set server pool-x/node-001 weight 2",
)


async def test_errors_and_states_read_as_haproxy_2_6_answers_them(
    fleet: SimFleet, tmp_path: Path
) -> None:
    assert fleet.gateway is not None
    sim = fleet.gateway.endpoint
    with real_haproxy(tmp_path, fleet) as (real, map_file):
        await until(lambda: settled(real), "HAProxy's first checks")
        assert (await ask(real, "show stat")).startswith(STAT_HEADER)
        for line in ERRORS:
            mine, theirs = line.format(map=ROUTE_MAP), line.format(map=map_file)
            assert await ask(sim, mine) == await ask(real, theirs), line
        for line in ("bogus", ""):  # the first line and the lines always shown are HAProxy's
            mine, theirs = (await ask(sim, line)).split("\n"), (await ask(real, line)).split("\n")
            assert mine[0] == theirs[0] and mine[-5:] == theirs[-5:], line

        async def shown(endpoint: str, *columns: str) -> dict[tuple[str, str], tuple[str, ...]]:
            rows = await stat(endpoint)
            return {
                key: tuple(row[column] for column in columns)
                for key, row in rows.items()
                if key[0] in ("pool-a", "route-pool-a")
            }

        commands = (
            "set server pool-a/node-001 state drain; set server pool-a/node-002 weight 0",
            "set server pool-a/node-001 state maint; set server pool-a/node-002 weight 200%",
            "set server pool-a/node-001 state ready; set server pool-a/node-002 state drain",
            "set server pool-a/node-002 state ready",
        )
        for line in commands:
            assert await ask(sim, line) == await ask(real, line) == "\n\n"[: line.count(";") + 1]
            await until(lambda: settled(real), f"HAProxy to settle after {line}")
            columns = ("status", "weight", "act")
            assert await shown(sim, *columns) == await shown(real, *columns), line

        check = ("status", "check_status", "check_code", "check_desc", "last_chk")
        for fault, found in (("http500", "L7STS"), ("refuse", "L4CON")):
            await fleet.apply("node-002", {"fault": fault})

            async def down(found: str = found) -> Any:
                rows = await settled(real)
                return rows and rows[("pool-a", "node-002")]["check_status"] == found

            await until(down, f"HAProxy to find node-002 down ({fault})")
            assert (await shown(sim, *check)) == (await shown(real, *check)), fault


# -- proxying ------------------------------------------------------------------------------------


async def test_completions_follow_the_route_map(fleet: SimFleet, client: httpx.AsyncClient) -> None:
    assert fleet.gateway is not None
    front = fleet.gateway.frontends["pool-a"]
    served = {served_by(await complete(client, front)) for _ in range(4)}
    assert served == {"node-001", "node-002"}  # leastconn takes turns among idle servers
    assert await ask(fleet.gateway.endpoint, f"set map {ROUTE_MAP} pool-a pool-b") == "\n"
    served = {served_by(await complete(client, front)) for _ in range(4)}
    assert served == {"node-003", "node-004"}
    rows = await stat(fleet.gateway.endpoint)
    assert rows[("pool-b", "BACKEND")]["stot"] == "4" and rows[("pool-a", "BACKEND")]["stot"] == "4"
    assert rows[("route-pool-a", "FRONTEND")]["hrsp_2xx"] == "8"
    # the second replica still routes pool-a to pool-a
    other = fleet.gateway.replicas[1].frontend_urls["pool-a"]
    assert served_by(await complete(client, other)) in {"node-001", "node-002"}


async def test_no_usable_server_answers_503_as_haproxy_does(
    fleet: SimFleet, client: httpx.AsyncClient
) -> None:
    assert fleet.gateway is not None
    await ask(
        fleet.gateway.endpoint,
        "set server pool-a/node-001 state maint; set server pool-a/node-002 weight 0",
    )
    answer = await complete(client, fleet.gateway.frontends["pool-a"])
    assert answer.status_code == 503 and "No server is available" in answer.text
    assert answer.reason_phrase == "Service Unavailable"
    rows = await stat(fleet.gateway.endpoint)
    assert rows[("pool-a", "BACKEND")]["hrsp_5xx"] == "1"
    assert rows[("pool-a", "BACKEND")]["status"] == "DOWN"
    assert rows[("pool-a", "node-002")]["status"] == "UP"  # weight 0 is still UP


@pytest.mark.parametrize(
    ("status", "reason"),
    [(502, "Bad Gateway"), (503, "Service Unavailable"), (504, "Gateway Timeout")],
)
async def test_a_gateways_error_answers_carry_their_reason_phrase(
    status: int, reason: str, client: httpx.AsyncClient
) -> None:
    server = HttpServer(lambda request: Response(status, b""), "127.0.0.1")
    await server.start()
    try:
        answer = await client.get(server.url)
    finally:
        await server.close()
    assert (answer.status_code, answer.reason_phrase) == (status, reason)


async def test_least_connections_by_weight_and_drain_lets_in_flight_finish(
    fleet: SimFleet, client: httpx.AsyncClient
) -> None:
    assert fleet.gateway is not None
    endpoint, front = fleet.gateway.endpoint, fleet.gateway.frontends["pool-a"]
    await ask(endpoint, "set server pool-a/node-001 weight 3")
    slow = [asyncio.create_task(complete(client, front, SLOW_TOKENS)) for _ in range(4)]

    async def in_flight() -> dict[str, int]:
        rows = await stat(endpoint)
        return {name: int(rows[("pool-a", name)]["scur"]) for name in ("node-001", "node-002")}

    async def all_in_flight() -> dict[str, int] | None:
        sessions = await in_flight()
        return sessions if sum(sessions.values()) == len(slow) else None

    assert await until(all_in_flight, "the slow requests") == {"node-001": 3, "node-002": 1}

    assert await ask(endpoint, "set server pool-a/node-001 state drain") == "\n"
    quick = [await complete(client, front) for _ in range(3)]
    assert {served_by(answer) for answer in quick} == {"node-002"}
    assert (await in_flight())["node-001"] == 3  # drained, its requests still running
    finished = await asyncio.wait_for(asyncio.gather(*slow), BOUND)
    assert [answer.status_code for answer in finished] == [200] * 4
    assert sorted(served_by(answer) for answer in finished).count("node-001") == 3
    assert await in_flight() == {"node-001": 0, "node-002": 0}


async def test_a_bad_deploy_fails_requests_until_rolled_back_through_the_agent(
    fleet: SimFleet, client: httpx.AsyncClient
) -> None:
    assert fleet.gateway is not None
    await ask(fleet.gateway.endpoint, "set server pool-a/node-002 state maint")
    fleet.agents["node-001"].rollback_s = 0.05
    await fleet.apply("node-001", {"fault": "bad_deploy"})
    front = fleet.gateway.frontends["pool-a"]
    broken = [(await complete(client, front)).status_code for _ in range(12)]
    assert 500 in broken and 200 in broken
    rows = await stat(fleet.gateway.endpoint)
    assert int(rows[("pool-a", "node-001")]["hrsp_5xx"]) == broken.count(500)

    agent = fleet.nodes[0].agent
    started = await client.post(agent + "/v1/rollback", json={"reason": "INC-1"})
    assert started.status_code == 202
    action = agent + "/v1/actions/" + started.json()["action_id"]

    async def done() -> bool:
        return bool((await client.get(action)).json()["state"] == "done")

    await until(done, "the rollback")
    truth = fleet.node_json("node-001")
    assert truth["fault"] is None and truth["revision"] == "rev-2"
    assert [(await complete(client, front)).status_code for _ in range(12)] == [200] * 12


# -- the load split ------------------------------------------------------------------------------


def server(backend: str, name: str, state: str = "UP", weight: int | None = 1) -> ServerState:
    return ServerState(backend, name, state, state, weight)


def test_the_split_follows_map_state_and_weight() -> None:
    servers = [
        server("a", "a1", weight=3),
        server("a", "a2"),
        server("a", "a3", "DRAIN"),
        server("a", "a4", "MAINT"),
        server("a", "a5", "DOWN"),
        server("a", "a6", weight=0),
        server("b", "b1", weight=None),  # a gateway that reports no weight: all alike
        server("b", "b2", weight=None),
    ]
    view = ReplicaState("tcp://gw:1", {(each.backend, each.server): each for each in servers})
    offer = Offer(Route("route.map", "a"), "a", 8.0)
    assert split_load(view, [offer]).servers == {("a", "a1"): 6.0, ("a", "a2"): 2.0}

    failed_over = ReplicaState(view.endpoint, view.servers, maps={"route.map": {"a": "b"}})
    split = split_load(failed_over, [offer, Offer(Route("route.map", "b"), "b", 2.0)])
    assert split.servers == {("b", "b1"): 5.0, ("b", "b2"): 5.0} and split.refused == {}

    nowhere = ReplicaState(view.endpoint, view.servers, maps={"route.map": {"a": "gone"}})
    assert split_load(nowhere, [offer]).refused == {"gone": 8.0}


# -- modelled load through the gateway, on an injected clock ------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def modelled_gateway(primary: int, standby: int, replicas: int = 1) -> tuple[SimGateway, Clock]:
    """pool-a (routed) of `primary` nodes, its standby pool-b of `standby`, never served."""
    clock = Clock()
    names = [f"node-{index + 1}" for index in range(primary + standby)]
    models = {
        name: NodeModel(name, ENGINES["vllm"], seed=4, index=index, gpus=1, clock=clock)
        for index, name in enumerate(names)
    }
    engines = {name: EngineServer(model, "127.0.0.1") for name, model in models.items()}
    backends = {"pool-a": names[:primary], "pool-b": names[primary:]}
    gateway = SimGateway(
        "edge", backends, {"pool-a": "pool-a"}, models, engines, replicas=replicas, clock=clock
    )
    return gateway, clock


def figures(gateway: SimGateway, name: str) -> dict[str, Any]:
    return gateway.models[name].truth()


def test_a_drained_node_gets_no_load_and_its_in_flight_work_drains_away() -> None:
    gateway, clock = modelled_gateway(primary=3, standby=1)
    pool = [gateway.models[name] for name in ("node-1", "node-2", "node-3")]
    before = figures(gateway, "node-1")
    assert before["requests_per_s"] > 0 and before["running"] > 0
    assert figures(gateway, "node-4")["requests_per_s"] == 0  # an idle standby

    replica = gateway.replicas[0]
    assert answer_line(replica, "set server pool-a/node-1 state drain") == "\n"
    drained = figures(gateway, "node-1")
    assert drained["requests_per_s"] == 0 and drained["running"] == before["running"]
    offered = pool_demand(pool, pool[0].now - pool[0].epoch)
    others = sum(figures(gateway, name)["requests_per_s"] for name in ("node-2", "node-3"))
    assert others == pytest.approx(offered)  # the pool's load moved to the others

    clock.now += 60.0
    later = figures(gateway, "node-1")
    assert later["requests_total"] == drained["requests_total"]  # no new requests
    assert later["running"] == 0 and later["waiting"] == 0
    stats = parse_stat(answer_line(replica, "show stat"))
    assert stats[("pool-a", "node-1")]["scur"] == "0"
    assert int(stats[("pool-a", "node-2")]["stot"]) > 0


def test_failover_lands_the_load_on_the_standby_and_its_queue_grows() -> None:
    gateway, clock = modelled_gateway(primary=5, standby=1)
    pool = [gateway.models[f"node-{index}"] for index in range(1, 6)]
    standby = figures(gateway, "node-6")
    assert standby["requests_per_s"] == standby["running"] == standby["waiting"] == 0

    replica = gateway.replicas[0]
    assert answer_line(replica, f"set map {ROUTE_MAP} pool-a pool-b") == "\n"
    taken = figures(gateway, "node-6")
    assert taken["requests_per_s"] == pytest.approx(pool_demand(pool, pool[0].now - pool[0].epoch))
    assert taken["waiting"] == 0  # queues take time to build
    assert figures(gateway, "node-1")["requests_per_s"] == 0

    clock.now += 30.0
    loaded = figures(gateway, "node-6")
    assert loaded["running"] > 0 and loaded["waiting"] > 50
    assert loaded["requests_total"] > taken["requests_total"]
    stats = parse_stat(answer_line(replica, "show stat"))
    assert int(stats[("pool-b", "node-6")]["stot"]) > 0
    assert int(stats[("pool-b", "node-6")]["scur"]) == loaded["running"]
    assert int(stats[("pool-a", "BACKEND")]["rate"]) == 0


def test_each_replica_carries_its_share_of_the_load() -> None:
    gateway, _ = modelled_gateway(primary=2, standby=1, replicas=2)
    before = figures(gateway, "node-1")["requests_per_s"]
    answer_line(gateway.replicas[0], "set server pool-a/node-1 state drain")
    assert figures(gateway, "node-1")["requests_per_s"] == pytest.approx(before / 2)
    answer_line(gateway.replicas[1], "set server pool-a/node-1 state drain")
    assert figures(gateway, "node-1")["requests_per_s"] == 0


# -- configuration -------------------------------------------------------------------------------


async def test_config_names_the_gateway_routes_standbys_and_servers(
    fleet: SimFleet, tmp_path: Path
) -> None:
    assert fleet.gateway is not None
    path = tmp_path / "fleet.yaml"
    path.write_text(fleet.config_yaml())
    config, issues = check_config(path)
    assert issues == [] and config is not None
    (gateway,) = config.gateways
    assert (gateway.name, gateway.plugin) == ("edge", "haproxy")
    assert list(gateway.endpoints) == fleet.gateway.endpoints and len(gateway.endpoints) == 2
    primary, standby = config.pools
    assert (primary.backend, primary.route, primary.standby) == (
        "pool-a",
        Route(ROUTE_MAP, "pool-a"),
        "pool-b",
    )
    assert (standby.gateway, standby.route, standby.standby) == ("edge", None, None)
    assert primary.min_healthy == standby.min_healthy == 1
    assert [node.server for node in config.nodes] == [node.name for node in fleet.nodes]


def test_haproxy_serves_the_gateway_so_it_needs_one() -> None:
    with pytest.raises(ValueError, match="needs gateway=True"):
        SimFleet(nodes=2, gpus=1, haproxy=True)


def test_the_sim_command_serves_a_gateway_and_names_its_endpoints() -> None:
    command = [sys.executable, "-m", "console", "sim", "--nodes", "2", "--gpus", "1"]
    refused = subprocess.run(
        [*command, "--gateway", "0"], cwd=ROOT, capture_output=True, text=True, timeout=BOUND
    )
    assert refused.returncode == 64 and "--gateway must be at least 1" in refused.stderr
    process = subprocess.Popen(
        [*command, "--static", "--gateway", "2"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(5)]
    finally:
        process.terminate()
        assert process.wait(BOUND) == 0
    assert lines[0].startswith("control http://127.0.0.1:")
    assert [line.split(" ")[:2] for line in lines[1:3]] == [["gateway", "edge"]] * 2
    assert lines[3].startswith("route pool-a http://127.0.0.1:") and lines[4] == "ready 2 nodes\n"
