"""A served fleet over real loopback sockets: pins, faults, queueing, agents, control API."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from console.sim import SimFleet
from console.sim.pagetext import CONTENT_TYPE

BOUND = 5.0  # no wait in these tests lasts longer


def node_of(fleet: SimFleet, engine: str) -> Any:
    return next(node for node in fleet.nodes if node.engine == engine)


async def until(check: Any, what: str) -> Any:
    """Poll `check()` (async) until it returns something truthy; fail after BOUND seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BOUND
    while loop.time() < deadline:
        result = await check()
        if result:
            return result
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


async def test_every_node_serves_its_engine_page_and_agent(
    fleet: SimFleet, client: httpx.AsyncClient
) -> None:
    assert [node.engine for node in fleet.nodes] == ["vllm", "sglang", "tgi", "triton"]
    assert [node.name for node in fleet.nodes] == ["node-001", "node-002", "node-003", "node-004"]
    for node in fleet.nodes:
        page = await client.get(node.url + "/metrics")
        assert page.status_code == 200 and page.headers["content-type"] == CONTENT_TYPE
        assert list(text_string_to_metric_families(page.text))
        health = await client.get(node.agent + "/healthz")
        assert health.status_code == 200


async def test_ground_truth_lists_every_node(fleet: SimFleet, control: Any) -> None:
    nodes = (await control("GET")).json()["nodes"]
    assert [node["name"] for node in nodes] == [node.name for node in fleet.nodes]
    first = nodes[0]
    assert first["url"] == fleet.nodes[0].url and first["agent"] == fleet.nodes[0].agent
    figures = (
        "running",
        "waiting",
        "kv_cache_usage",
        "error_rate",
        "requests_per_s",
        "tokens_per_s",
        "prompt_tokens_per_s",
        "gpu_util",
        "fault",
        "revision",
        "pool",
    )
    assert set(figures) <= set(first)
    assert first["fault"] is None and first["revision"] == "rev-2"


async def test_pinned_gauges_come_back_exactly_on_every_engine_page(
    fleet: SimFleet, client: httpx.AsyncClient, control: Any, read_page: Any
) -> None:
    for node in fleet.nodes:
        answer = await control(
            "PUT", node.name, json={"running": 5, "waiting": 13, "kv_cache_usage": 0.625}
        )
        assert answer.status_code == 200 and answer.json()["waiting"] == 13
        engine = read_page(node.engine, (await client.get(node.url + "/metrics")).text)
        assert (engine.running, engine.waiting) == (5, 13)
        if node.engine != "tgi":
            assert engine.kv_cache_usage == 0.625


async def test_pinned_rates_come_back_as_counter_rates(
    fleet: SimFleet, client: httpx.AsyncClient, control: Any, read_page: Any
) -> None:
    pins = {
        "requests_per_s": 80.0,
        "error_rate": 0.125,
        "tokens_per_s": 3000.0,
        "prompt_tokens_per_s": 9000.0,
    }
    for node in fleet.nodes:
        await control("PUT", node.name, json=pins)
    loop = asyncio.get_running_loop()

    async def read_all() -> tuple[float, list[Any]]:
        pages = await asyncio.gather(*(client.get(node.url + "/metrics") for node in fleet.nodes))
        return loop.time(), [
            read_page(node.engine, page.text) for node, page in zip(fleet.nodes, pages, strict=True)
        ]

    start, before = await read_all()
    await asyncio.sleep(1.5)
    end, after = await read_all()
    elapsed = end - start
    for node, first, last in zip(fleet.nodes, before, after, strict=True):
        requests = last.requests_total - first.requests_total
        assert requests / elapsed == pytest.approx(80.0, rel=0.05), node.engine
        assert (last.errors_total - first.errors_total) / requests == pytest.approx(0.125)
        if node.engine != "triton":
            tokens = last.generation_tokens_total - first.generation_tokens_total
            prompt = last.prompt_tokens_total - first.prompt_tokens_total
            assert tokens / elapsed == pytest.approx(3000.0, rel=0.05)
            assert prompt / elapsed == pytest.approx(9000.0, rel=0.05)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"running": -1}, "must be >= 0"),
        ({"error_rate": 1.5}, "must be 0..1"),
        ({"speed": 3}, "unknown pin 'speed'"),
        ({"running": "many"}, "must be a number"),
        ({"fault": "meteor"}, "unknown fault kind 'meteor'"),
        ({"fault": {"kind": "xid", "gpu": 9}}, "out of range"),
        ({"fault": {"kind": "slow", "seconds": 0}}, "positive number"),
        (["running", 1], "must be a JSON object"),
    ],
)
async def test_bad_changes_are_refused_whole(
    fleet: SimFleet, control: Any, body: Any, message: str
) -> None:
    answer = await control("PUT", "node-001", json=body)
    assert answer.status_code == 400
    assert message in answer.json()["error"]
    assert (await control("GET", "node-001")).json()["pins"] == {}


async def test_unknown_nodes_paths_and_bad_json(fleet: SimFleet, control: Any) -> None:
    assert (await control("GET", "node-999")).status_code == 404
    assert (await control("POST", "node-999", "/restart")).status_code == 404
    assert (await control("POST", "node-001")).status_code == 405
    assert (await control("PUT", "node-001", content=b"{nope")).status_code == 400


async def test_changes_apply_in_process_too(fleet: SimFleet) -> None:
    truth = await fleet.apply("node-003", {"waiting": 40, "fault": "bad_deploy"})
    assert truth["waiting"] == 40 and truth["fault"] == "bad_deploy"
    with pytest.raises(ValueError, match="unknown pin"):
        await fleet.apply("node-003", {"queue": 1})
    with pytest.raises(KeyError):
        await fleet.apply("node-404", {})


async def test_delete_clears_pins_and_faults(fleet: SimFleet, control: Any) -> None:
    await control("PUT", "node-002", json={"running": 1, "fault": "http500"})
    cleared = (await control("DELETE", "node-002")).json()
    assert cleared["pins"] == {} and cleared["fault"] is None


async def test_hang_accepts_and_never_answers(
    fleet: SimFleet, client: httpx.AsyncClient, control: Any
) -> None:
    url = fleet.nodes[0].url + "/metrics"
    await control("PUT", "node-001", json={"fault": "hang"})
    with pytest.raises(httpx.ReadTimeout):
        await client.get(url, timeout=httpx.Timeout(5.0, read=0.3))
    await control("PUT", "node-001", json={"fault": None})
    assert (await client.get(url)).status_code == 200


async def test_slow_answers_late(fleet: SimFleet, client: httpx.AsyncClient, control: Any) -> None:
    await control("PUT", "node-002", json={"fault": {"kind": "slow", "seconds": 0.4}})
    loop = asyncio.get_running_loop()
    start = loop.time()
    page = await client.get(fleet.nodes[1].url + "/metrics")
    assert page.status_code == 200 and "sglang:num_running_reqs" in page.text
    assert loop.time() - start >= 0.4


async def test_http500_and_garbage(
    fleet: SimFleet, client: httpx.AsyncClient, control: Any
) -> None:
    url = fleet.nodes[2].url + "/metrics"
    await control("PUT", "node-003", json={"fault": "http500"})
    assert (await client.get(url)).status_code == 500
    await control("PUT", "node-003", json={"fault": "garbage"})
    garbage = await client.get(url)
    assert garbage.status_code == 200 and "tgi_request_count" not in garbage.text
    assert len(garbage.content) > 1000


async def test_refuse_closes_the_port_and_clearing_reopens_it(
    fleet: SimFleet, client: httpx.AsyncClient, control: Any
) -> None:
    url = fleet.nodes[3].url + "/metrics"
    assert (await client.get(url)).status_code == 200  # a kept-alive connection too
    await control("PUT", "node-004", json={"fault": "refuse"})
    with pytest.raises(httpx.ConnectError):
        await client.get(url)
    assert (await client.get(fleet.nodes[3].agent + "/healthz")).status_code == 200
    await control("PUT", "node-004", json={"fault": None})
    assert (await client.get(url)).status_code == 200


async def test_xid_marks_the_gpu_lost(
    fleet: SimFleet, client: httpx.AsyncClient, control: Any
) -> None:
    truth = (await control("PUT", "node-001", json={"fault": {"kind": "xid", "gpu": 1}})).json()
    assert truth["fault"] == "xid" and truth["fault_args"]["gpu"] == 1
    snapshot = (await client.get(fleet.nodes[0].agent + "/v1/snapshot")).json()
    lost, alive = snapshot["gpus"][1], snapshot["gpus"][0]
    assert lost["lost"] is True and lost["last_xid"] == 79 and lost["last_xid_time"] > 0
    assert lost["util"] is None and lost["temp"] is None and lost["processes"] == []
    assert alive["lost"] is False and alive["util"] is not None
    assert truth["gpu_util"] == alive["util"]
    metrics = (await client.get(fleet.nodes[0].agent + "/metrics")).text
    assert 'fleetdeck_gpu_lost{gpu="1"} 1.0' in metrics
    assert 'fleetdeck_gpu_util{gpu="1"}' not in metrics  # unknown is left out, never 0


async def test_bad_deploy_raises_errors_until_rolled_back_through_the_agent(
    fleet: SimFleet, client: httpx.AsyncClient, control: Any, read_page: Any
) -> None:
    node = fleet.nodes[0]
    truth = (await control("PUT", node.name, json={"fault": "bad_deploy"})).json()
    assert truth["error_rate"] == 0.5 and truth["revision"] == "rev-3"
    revisions = (await client.get(node.agent + "/v1/revisions")).json()
    assert revisions == {"revision": "rev-3", "revisions": ["rev-1", "rev-2", "rev-3"]}

    rollback = await client.post(node.agent + "/v1/rollback", json={"reason": "INC-7"})
    assert rollback.status_code == 202
    action_id = rollback.json()["action_id"]
    again = await client.post(node.agent + "/v1/rollback", json={"to": "rev-1"})
    assert again.status_code == 409
    action = (await client.get(node.agent + f"/v1/actions/{action_id}")).json()
    assert action["state"] == "running" and action["to"] == "rev-2"

    async def done() -> Any:
        state = (await client.get(node.agent + f"/v1/actions/{action_id}")).json()
        return state if state["state"] == "done" else None

    finished = await until(done, "the rollback")
    assert finished["reason"] == "INC-7" and finished["from"] == "rev-3"
    truth = (await control("GET", node.name)).json()
    assert truth["fault"] is None and truth["revision"] == "rev-2" and truth["error_rate"] < 0.05
    snapshot = (await client.get(node.agent + "/v1/snapshot")).json()
    assert snapshot["revision"] == "rev-2"


async def test_agent_refuses_what_it_cannot_do(fleet: SimFleet, client: httpx.AsyncClient) -> None:
    agent = fleet.nodes[1].agent
    unknown = await client.post(agent + "/v1/rollback", json={"to": "rev-9"})
    assert unknown.status_code == 400 and "unknown revision" in unknown.json()["error"]
    assert (await client.get(agent + "/v1/actions/nope")).status_code == 404
    assert (await client.get(agent + "/v1/rollback")).status_code == 405
    assert (await client.get(agent + "/nothing")).status_code == 404


async def test_drain_hooks_stop_and_resume_new_completions(
    fleet: SimFleet, client: httpx.AsyncClient, control: Any
) -> None:
    node = fleet.nodes[2]
    body = {"prompt": "hello", "max_tokens": 2}
    stop = await client.post(node.agent + "/v1/hooks/stop_accepting")
    assert stop.status_code == 202
    action = (await client.get(node.agent + "/v1/actions/" + stop.json()["action_id"])).json()
    assert (action["kind"], action["state"]) == ("hook", "done")
    refused = await client.post(node.url + "/v1/completions", json=body)
    assert refused.status_code == 503 and "draining" in refused.text
    truth = (await control("GET", "")).json()
    assert {n["name"]: n["accepting"] for n in truth["nodes"]}[node.name] is False
    assert (await client.post(node.agent + "/v1/hooks/resume")).status_code == 202
    assert (await client.post(node.url + "/v1/completions", json=body)).status_code == 200
    unknown = await client.post(node.agent + "/v1/hooks/reboot")
    assert unknown.status_code == 404 and "stop_accepting" in unknown.json()["error"]
    assert (await client.get(node.agent + "/v1/hooks/resume")).status_code == 405


async def test_agent_snapshot_has_the_design_shape_and_units(
    fleet: SimFleet, client: httpx.AsyncClient
) -> None:
    snapshot = (await client.get(fleet.nodes[2].agent + "/v1/snapshot")).json()
    assert snapshot["schema_version"] == 1 and snapshot["node"] == "node-003"
    assert snapshot["gpu_error"] is None and snapshot["engine"] is None
    host = snapshot["host"]
    assert 0 <= host["cpu"] <= 100 and 0 < host["mem_used"] < host["mem_total"]
    assert host["uptime_s"] > 0 and host["load1"] >= 0
    assert len(snapshot["gpus"]) == 2
    gpu = snapshot["gpus"][0]
    assert gpu["index"] == 0 and gpu["uuid"].startswith("GPU-") and gpu["name"]
    assert 0 <= gpu["util"] <= 100 and 0 <= gpu["mem_util"] <= 100
    assert 0 < gpu["mem_used"] < gpu["mem_total"] and 20 < gpu["temp"] < 100
    assert 0 < gpu["power"] <= gpu["power_limit"]
    assert set(gpu["clocks"]) == {"sm", "mem"} and isinstance(gpu["throttle"], list)
    assert gpu["lost"] is False and gpu["processes"][0]["mem_used"] == gpu["mem_used"]
    metrics = (await client.get(fleet.nodes[2].agent + "/metrics")).text
    names = {family.name for family in text_string_to_metric_families(metrics)}
    assert {"fleetdeck_gpu_util", "fleetdeck_host_cpu", "fleetdeck_gpu_temp"} <= names


async def test_completions_queue_past_the_concurrency_limit(
    fleet: SimFleet, client: httpx.AsyncClient, control: Any, read_page: Any
) -> None:
    node = fleet.nodes[0]
    await control("PUT", node.name, json={"requests_per_s": 0})  # nothing but real requests
    before = read_page("vllm", (await client.get(node.url + "/metrics")).text)
    assert (before.running, before.waiting) == (0, 0)
    body = {"prompt": "x" * 400, "max_tokens": 50}
    calls = [
        asyncio.create_task(client.post(node.url + "/v1/completions", json=body)) for _ in range(12)
    ]

    async def queued() -> Any:
        engine = read_page("vllm", (await client.get(node.url + "/metrics")).text)
        return engine if engine.waiting > 0 else None

    during = await until(queued, "waiting > 0")
    assert (during.running, during.waiting) == (8, 4)
    answers = await asyncio.gather(*calls)
    assert all(answer.status_code == 200 for answer in answers)
    usage = answers[0].json()["usage"]
    assert usage == {"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150}
    after = read_page("vllm", (await client.get(node.url + "/metrics")).text)
    assert (after.running, after.waiting) == (0, 0)
    assert after.requests_total == pytest.approx(before.requests_total + 12)
    assert after.generation_tokens_total == pytest.approx(before.generation_tokens_total + 600)
    assert after.prompt_tokens_total == pytest.approx(before.prompt_tokens_total + 1200)
    assert after.ttft_seconds.count == pytest.approx(before.ttft_seconds.count + 12, abs=1)


async def test_clients_that_give_up_leave_the_queue(
    fleet: SimFleet, client: httpx.AsyncClient, control: Any, read_page: Any
) -> None:
    node = fleet.nodes[1]
    await control("PUT", node.name, json={"requests_per_s": 0})
    url = node.url + "/v1/completions"

    async def engine() -> Any:
        return read_page("sglang", (await client.get(node.url + "/metrics")).text)

    async def full() -> Any:
        figures = await engine()
        return figures if figures.running == 8 else None

    patient = [
        asyncio.create_task(client.post(url, json={"prompt": "x", "max_tokens": 200}))
        for _ in range(8)
    ]  # 0.8 s each
    await until(full, "8 running")
    impatient = httpx.Timeout(5.0, read=0.1)
    gave_up = await asyncio.gather(
        *(client.post(url, json={"prompt": "y"}, timeout=impatient) for _ in range(4)),
        return_exceptions=True,
    )
    assert all(isinstance(answer, httpx.ReadTimeout) for answer in gave_up)
    await asyncio.sleep(0.05)  # the server notices the closed connections
    figures = await engine()
    assert (figures.running, figures.waiting) == (8, 0)
    assert all(answer.status_code == 200 for answer in await asyncio.gather(*patient))


async def test_engine_port_answers_404_405_and_400(
    fleet: SimFleet, client: httpx.AsyncClient
) -> None:
    url = fleet.nodes[1].url
    assert (await client.get(url + "/nope")).status_code == 404
    assert (await client.get(url + "/v1/completions")).status_code == 405
    bad = await client.post(url + "/v1/completions", json={"prompt": 3})
    assert bad.status_code == 400 and "prompt" in bad.json()["error"]["message"]
    assert (await client.get(url + "/health")).status_code == 200


async def test_restart_resets_the_counters(
    fleet: SimFleet, client: httpx.AsyncClient, control: Any, read_page: Any
) -> None:
    node = fleet.nodes[2]
    before = read_page("tgi", (await client.get(node.url + "/metrics")).text)
    assert (await control("POST", node.name, "/restart")).status_code == 200
    after = read_page("tgi", (await client.get(node.url + "/metrics")).text)
    assert before.requests_total > 1000 > after.requests_total


async def test_config_yaml_points_at_the_nodes(fleet: SimFleet, tmp_path: Any) -> None:
    config = yaml.safe_load(fleet.config_yaml())
    assert [pool["name"] for pool in config["pools"]] == ["pool-a", "pool-b", "pool-c", "pool-d"]
    listed = [node for pool in config["pools"] for node in pool["nodes"]]
    assert listed == [
        {"name": node.name, "engine": node.engine, "url": node.url, "agent": node.agent}
        for node in fleet.nodes
    ]
    from console.config import load_config

    path = tmp_path / "fleet.yaml"
    path.write_text(fleet.config_yaml(), encoding="utf-8")
    loaded = load_config(path)
    assert [node.name for node in loaded.nodes] == [node.name for node in fleet.nodes]


async def test_pools_option_groups_consecutive_nodes() -> None:
    fleet = SimFleet(nodes=5, pools=2, gpus=1)
    await fleet.start()
    try:
        assert [node.pool for node in fleet.nodes] == ["pool-a"] * 3 + ["pool-b"] * 2
    finally:
        await fleet.stop()


async def test_stop_closes_hanging_connections_promptly() -> None:
    fleet = SimFleet(nodes=1, gpus=1)
    await fleet.start()
    async with httpx.AsyncClient(timeout=httpx.Timeout(BOUND)) as client:
        await client.put(fleet.control_url + "/sim/nodes/node-001", json={"fault": "hang"})
        hanging = asyncio.create_task(client.get(fleet.nodes[0].url + "/metrics"))
        await asyncio.sleep(0.1)
        loop = asyncio.get_running_loop()
        start = loop.time()
        await fleet.stop()
        with pytest.raises(httpx.HTTPError):
            await hanging
        assert loop.time() - start < 1.0


async def test_a_static_fleet_serves_the_same_page_until_told_otherwise(
    client: httpx.AsyncClient,
) -> None:
    async with SimFleet(nodes=1, gpus=1, static=True) as fleet:
        url = fleet.nodes[0].url + "/metrics"
        first = (await client.get(url)).text
        await asyncio.sleep(0.1)
        assert (await client.get(url)).text == first
        await client.put(fleet.control_url + "/sim/nodes/node-001", json={"waiting": 9})
        waiting = 'vllm:num_requests_waiting{engine="0",model_name="meta-llama/Llama-3.1-8B"} '
        assert f"\n{waiting}9.0\n" in (await client.get(url)).text
