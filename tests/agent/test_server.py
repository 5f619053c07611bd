"""The node agent's HTTP API: the real server on loopback, telemetry over the NVML fake, real
deploys through a script, the local engine played by a simulated node, and the real command."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from console.agent.config import AgentConfig, DeployConfig, EngineConfig, HookConfig, Listen
from console.agent.deploy import Deployer
from console.agent.exposition import snapshot_metrics
from console.agent.server import MAX_BODY, AgentServer, tls_context
from console.agent.telemetry import Telemetry
from console.errors import ConfigError
from console.promtext import parse
from console.sim import SimFleet
from tests.agent.fake_nvml import FakeNvml, h200

TOKEN = "tok-8d1f5c2b9a7e"
WRONG_TOKEN = "wrong-3e4d5f6a"
TIMEOUT = httpx.Timeout(5.0)
DEADLINE_S = 10.0  # the longest any wait here may take
# A deploy command: logs its argv, then waits while a `hold` file exists (bounded).
DEPLOY_SCRIPT = """\
import pathlib, sys, time
here = pathlib.Path(__file__).parent
with open(here / "deploys.log", "a") as log:
    log.write(" ".join(sys.argv[1:]) + "\\n")
deadline = time.monotonic() + 10
while (here / "hold").exists() and time.monotonic() < deadline:
    time.sleep(0.01)
"""


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Agent:
    server: AgentServer
    nvml: FakeNvml
    clock: FakeClock
    client: httpx.AsyncClient
    folder: Path

    @property
    def url(self) -> str:
        return self.server.url

    async def get(self, path: str, **options: Any) -> httpx.Response:
        return await self.client.get(self.url + path, **options)

    async def post(self, path: str, token: str | None = TOKEN, **options: Any) -> httpx.Response:
        headers = {} if token is None else {"authorization": f"Bearer {token}"}
        return await self.client.post(self.url + path, headers=headers, **options)

    async def finished(self, action_id: str) -> dict[str, Any]:
        """The action once it is no longer running."""
        async with asyncio.timeout(DEADLINE_S):
            while True:
                action = (await self.get(f"/v1/actions/{action_id}")).json()
                if action["state"] != "running":
                    return action
                await asyncio.sleep(0.02)


def agent_config(folder: Path, **changes: Any) -> AgentConfig:
    """Two known revisions (r1, then r2 now) and two hooks, all run by the deploy script."""
    script = folder / "deploy.py"
    script.write_text(DEPLOY_SCRIPT, encoding="utf-8")
    deploy = DeployConfig(
        history_file=str(folder / "history.json"),
        command=(sys.executable, str(script), "{rev}"),
        current="r2",
        timeout=10.0,
        health_url=None,
        health_timeout=5.0,
    )
    if not (folder / "history.json").exists():  # r1 was deployed before r2
        Deployer(replace(deploy, current="r1"), {})
    hooks = tuple(
        HookConfig(name, (sys.executable, str(script), f"{name}:{{reason}}"), 10.0)
        for name in ("stop_accepting", "resume")
    )
    config = AgentConfig(
        path=None, node="gpu-07", listen=Listen("127.0.0.1", 0), deploy=deploy, hooks=hooks
    )
    return replace(config, **changes)


@pytest.fixture
async def start_agent(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Agent]]]:
    """`await start_agent(token=..., gpus=..., **config changes)`: a running agent."""
    running: list[Agent] = []

    async def start(
        token: str | None = TOKEN, gpus: int = 2, tls: ssl.SSLContext | None = None, **changes: Any
    ) -> Agent:
        config = agent_config(tmp_path, **changes)
        nvml = FakeNvml([h200(index) for index in range(gpus)])
        clock = FakeClock()
        telemetry = Telemetry(node=config.node, nvml=nvml, interval=config.interval, clock=clock)
        assert config.deploy is not None
        deployer = Deployer(config.deploy, {hook.name: hook for hook in config.hooks})
        server = AgentServer(config, telemetry, deployer, token=token, tls=tls, clock=clock)
        await server.start()
        agent = Agent(server, nvml, clock, httpx.AsyncClient(timeout=TIMEOUT), tmp_path)
        running.append(agent)
        return agent

    yield start
    for agent in running:
        await agent.client.aclose()
        await agent.server.close()


@pytest.fixture
async def agent(start_agent: Callable[..., Awaitable[Agent]]) -> Agent:
    return await start_agent()


# --- reads ----------------------------------------------------------------------------------


async def test_the_snapshot_holds_gpus_host_and_revisions(agent: Agent) -> None:
    response = await agent.get("/v1/snapshot")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    snapshot = response.json()
    assert snapshot["schema_version"] == 1 and snapshot["node"] == "gpu-07"
    assert isinstance(snapshot["time"], float) and snapshot["gpu_error"] is None
    assert {"cpu", "mem_used", "mem_total", "load1", "uptime_s"} <= set(snapshot["host"])
    first, second = snapshot["gpus"]
    assert (first["index"], second["index"]) == (0, 1)
    assert first["name"] == "NVIDIA H200" and first["uuid"].startswith("GPU-")
    assert (first["util"], second["util"], second["temp"]) == (80, 81, 61)
    assert (first["power"], first["power_limit"]) == (612.345, 700.0)
    assert first["clocks"] == {"sm": 1980, "mem": 3201} and first["lost"] is False
    assert snapshot["engine"] is None and snapshot["engine_error"] is None
    assert snapshot["revision"] == "r2" and snapshot["revisions"] == ["r1", "r2"]


async def test_metrics_parse_and_agree_with_the_snapshot(agent: Agent) -> None:
    snapshot = (await agent.get("/v1/snapshot")).json()
    response = await agent.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith(
        "text/plain; version=0.0.4"
    )
    page = parse(response.text)
    assert page.issues == []
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in page.families.values()
        for sample in family.samples
    }
    assert all(name.startswith("fleetdeck_") for name, _ in samples)
    for key in ("cpu", "mem_used", "mem_total", "load1", "uptime_s"):
        assert samples[(f"fleetdeck_host_{key}", ())] == snapshot["host"][key]
    for gpu in snapshot["gpus"]:
        labels = (("gpu", str(gpu["index"])),)
        for key in ("util", "mem_util", "mem_used", "temp", "power", "power_limit"):
            assert samples[(f"fleetdeck_gpu_{key}", labels)] == gpu[key]
        assert samples[("fleetdeck_gpu_clock_sm", labels)] == gpu["clocks"]["sm"]
        identity = (("gpu", str(gpu["index"])), ("name", gpu["name"]), ("uuid", gpu["uuid"]))
        assert samples[("fleetdeck_gpu_info", identity)] == 1
    assert samples[("fleetdeck_revision_info", (("revision", "r2"),))] == 1
    assert not any(name.startswith("fleetdeck_engine_") for name, _ in samples)


def test_the_renderer_escapes_labels_and_leaves_unknown_figures_out() -> None:
    snapshot = {
        "host": {"cpu": None, "mem_used": 1.0},
        "gpus": [
            {"index": 0, "name": 'Odd "GPU" \\ model\nB', "uuid": None, "util": 5, "clocks": None},
            {"index": 1, "name": None, "uuid": "GPU-1", "util": None, "lost": True},
        ],
        "engine": None,
        "engine_error": None,
        "revision": None,
    }
    page = parse(snapshot_metrics(snapshot))
    assert page.issues == []
    samples = {family.name: family.samples for family in page.families.values()}
    assert [s.value for s in samples["fleetdeck_host_mem_used"]] == [1.0]
    assert samples["fleetdeck_host_cpu"] == [] and samples["fleetdeck_gpu_clock_sm"] == []
    assert [s.labels for s in samples["fleetdeck_gpu_info"]] == [
        {"gpu": "0", "name": 'Odd "GPU" \\ model\nB'},
        {"gpu": "1", "uuid": "GPU-1"},
    ]
    assert [(s.labels["gpu"], s.value) for s in samples["fleetdeck_gpu_util"]] == [("0", 5.0)]
    assert [s.value for s in samples["fleetdeck_gpu_lost"]] == [1.0]
    assert "fleetdeck_revision_info" not in samples and "fleetdeck_engine_up" not in samples


async def test_one_sweep_per_interval_in_a_worker_thread_however_many_ask(agent: Agent) -> None:
    sweeping_threads: set[int] = set()
    count = agent.nvml.device_count

    def device_count() -> int:
        sweeping_threads.add(threading.get_ident())
        return count()

    agent.nvml.device_count = device_count  # type: ignore[method-assign]
    answers = await asyncio.gather(*(agent.get(path) for path in ("/v1/snapshot", "/metrics") * 25))
    assert {answer.status_code for answer in answers} == {200}
    assert len({answer.json()["time"] for answer in answers[::2]}) == 1
    assert agent.nvml.calls["device_count"] == 1
    assert threading.get_ident() not in sweeping_threads  # never on the event loop
    agent.clock.now += 0.5  # within the interval: still the cached sweep
    await agent.get("/v1/snapshot")
    assert agent.nvml.calls["device_count"] == 1
    agent.clock.now += 0.5
    await agent.get("/metrics")
    assert agent.nvml.calls["device_count"] == 2


async def test_healthz_and_revisions(agent: Agent) -> None:
    health = await agent.get("/healthz")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    revisions = (await agent.get("/v1/revisions")).json()
    assert revisions["revision"] == revisions["current"] == "r2"
    assert revisions["revisions"] == ["r1", "r2"] and revisions["previous"] == "r1"
    assert [entry["revision"] for entry in revisions["history"]] == ["r2", "r1"]


async def test_unknown_paths_are_404_and_wrong_methods_405_in_json(agent: Agent) -> None:
    missing = await agent.get("/v2/snapshot")
    assert missing.status_code == 404 and "/v2/snapshot" in missing.json()["error"]
    assert (await agent.get("/v1/actions/nope")).status_code == 404
    wrong = await agent.client.delete(agent.url + "/v1/snapshot")
    assert wrong.status_code == 405 and wrong.headers["allow"] == "GET"
    assert "DELETE" in wrong.json()["error"]
    get_rollback = await agent.get("/v1/rollback")
    assert get_rollback.status_code == 405 and get_rollback.headers["allow"] == "POST"


# --- the local engine -----------------------------------------------------------------------


async def test_engine_figures_come_from_the_local_engine(
    start_agent: Callable[..., Awaitable[Agent]],
) -> None:
    async with SimFleet(nodes=1, engines=("vllm",), gpus=1, static=True) as fleet:
        node = fleet.nodes[0].name
        await fleet.apply(node, {"waiting": 17})
        port = httpx.URL(fleet.nodes[0].url).port
        agent = await start_agent(engine=EngineConfig(port=port, kind="auto"))
        snapshot = (await agent.get("/v1/snapshot")).json()
        truth = fleet.node_json(node)
        metrics = (await agent.get("/metrics")).text
    engine = snapshot["engine"]
    assert snapshot["engine_error"] is None
    assert set(engine) == {
        "running",
        "waiting",
        "kv_cache_usage",
        "prompt_tokens_total",
        "generation_tokens_total",
        "requests_total",
        "errors_total",
        "model",
    }
    assert engine["waiting"] == 17
    for key in engine:
        assert engine[key] == pytest.approx(truth[key]), key
    assert f"fleetdeck_engine_waiting {float(engine['waiting'])!r}" in metrics
    assert "fleetdeck_engine_up 1.0" in metrics


async def test_an_unreachable_engine_is_null_with_the_reason(
    start_agent: Callable[..., Awaitable[Agent]],
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    agent = await start_agent(engine=EngineConfig(port=port, kind="vllm"))
    snapshot = (await agent.get("/v1/snapshot")).json()
    assert snapshot["engine"] is None
    assert f"http://127.0.0.1:{port}/metrics" in snapshot["engine_error"]
    assert "fleetdeck_engine_up 0.0" in (await agent.get("/metrics")).text


# --- actions --------------------------------------------------------------------------------


async def test_a_rollback_runs_the_deploy_command_and_moves_the_revision(agent: Agent) -> None:
    response = await agent.post("/v1/rollback", json={"to": None, "reason": "INC-42"})
    assert response.status_code == 202
    action = await agent.finished(response.json()["action_id"])
    assert action["state"] == "done" and (action["from"], action["to"]) == ("r2", "r1")
    assert (agent.folder / "deploys.log").read_text() == "r1\n"
    snapshot = (await agent.get("/v1/snapshot")).json()  # the cache follows the revision
    assert snapshot["revision"] == "r1"
    assert 'fleetdeck_revision_info{revision="r1"} 1.0' in (await agent.get("/metrics")).text


async def test_a_second_action_while_one_runs_gets_409_naming_it(agent: Agent) -> None:
    (agent.folder / "hold").touch()
    first = await agent.post("/v1/rollback", json={"reason": "bad deploy"})
    assert first.status_code == 202
    action_id = first.json()["action_id"]
    second = await agent.post("/v1/rollback", json={"to": "r1", "reason": "again"})
    hook = await agent.post("/v1/hooks/stop_accepting", json={"reason": "drain"})
    for refused in (second, hook):
        assert refused.status_code == 409
        assert action_id in refused.json()["error"] and "bad deploy" in refused.json()["error"]
    (agent.folder / "hold").unlink()
    assert (await agent.finished(action_id))["state"] == "done"


async def test_hooks_run_with_the_reason_and_unknown_ones_are_404(agent: Agent) -> None:
    response = await agent.post("/v1/hooks/stop_accepting", json={"reason": "INC-7"})
    assert response.status_code == 202
    action = await agent.finished(response.json()["action_id"])
    assert action["state"] == "done" and action["kind"] == "hook"
    assert (agent.folder / "deploys.log").read_text() == "stop_accepting:INC-7\n"
    missing = await agent.post("/v1/hooks/reboot", json={})
    assert missing.status_code == 404 and "reboot" in missing.json()["error"]


# --- security -------------------------------------------------------------------------------


async def test_posts_need_the_bearer_token(agent: Agent) -> None:
    anonymous = await agent.post("/v1/rollback", token=None, json={})
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"].startswith(
        "Bearer"
    )
    basic = await agent.client.post(
        agent.url + "/v1/hooks/resume", headers={"authorization": f"Basic {TOKEN}"}
    )
    assert basic.status_code == 401
    wrong = await agent.post("/v1/rollback", token=WRONG_TOKEN, json={})
    assert wrong.status_code == 403 and "wrong token" in wrong.json()["error"]
    assert not (agent.folder / "deploys.log").exists()  # nothing ran


async def test_an_agent_without_a_token_accepts_no_post(
    start_agent: Callable[..., Awaitable[Agent]],
) -> None:
    agent = await start_agent(token=None)
    for token in (None, TOKEN):
        refused = await agent.post("/v1/rollback", token=token, json={})
        assert refused.status_code == 403 and "no token" in refused.json()["error"]
    assert (await agent.get("/v1/snapshot")).status_code == 200


async def test_protected_reads_need_the_token_but_healthz_stays_open(
    start_agent: Callable[..., Awaitable[Agent]],
) -> None:
    agent = await start_agent(protect_reads=True)
    for path in ("/v1/snapshot", "/metrics", "/v1/revisions"):
        assert (await agent.get(path)).status_code == 401
        wrong = {"authorization": f"Bearer {WRONG_TOKEN}"}
        assert (await agent.get(path, headers=wrong)).status_code == 403
        right = {"authorization": f"Bearer {TOKEN}"}
        assert (await agent.get(path, headers=right)).status_code == 200
    assert (await agent.get("/healthz")).status_code == 200


def test_a_non_loopback_address_without_a_token_is_refused(tmp_path: Path) -> None:
    config = agent_config(tmp_path, listen=Listen("0.0.0.0", 9401))
    telemetry = Telemetry(node="n", nvml=FakeNvml([h200(0)]))  # never read: nothing to close
    deployer = Deployer(None, {})
    with pytest.raises(ConfigError, match=r"refusing to listen on 0\.0\.0\.0:9401 without a token"):
        AgentServer(config, telemetry, deployer, token=None)
    AgentServer(config, telemetry, deployer, token=TOKEN)  # with a token it may
    with pytest.raises(ConfigError, match="protect_reads needs a token"):
        AgentServer(
            replace(config, listen=Listen("::1", 0), protect_reads=True),
            telemetry,
            deployer,
            token=None,
        )


async def test_an_oversized_body_is_refused_with_413(agent: Agent) -> None:
    body = b'{"reason": "' + b"x" * (64 * MAX_BODY) + b'"}'  # megabytes: still answered
    response = await agent.post("/v1/rollback", content=body)
    assert response.status_code == 413 and str(MAX_BODY) in response.json()["error"]
    assert (await agent.get("/healthz")).status_code == 200


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (b"{not json", "body is not JSON"),
        (b"[1, 2]", "body must be a JSON object"),
        (b'{"to": 5}', "field 'to'"),
        (b'{"to": "--force"}', "field 'to'"),
        (b'{"reason": 7}', "field 'reason'"),
        (b'{"reason": "two\\nlines"}', "field 'reason'"),
        (b'{"to": "r1", "force": true}', "unknown field 'force'"),
        (b'{"to": "r9"}', "unknown revision 'r9'"),
    ],
)
async def test_bad_bodies_get_400_naming_the_field(agent: Agent, body: bytes, named: str) -> None:
    response = await agent.post("/v1/rollback", content=body)
    assert response.status_code == 400
    message = response.json()["error"]
    assert named in message and "\n" not in message
    assert not (agent.folder / "deploys.log").exists()


async def test_no_token_appears_in_any_answer_or_log_line(
    agent: Agent, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    (agent.folder / "hold").touch()  # the rollback runs until the hook has been refused
    answers = [
        await agent.post("/v1/rollback", token=token, json=body)
        for token, body in (
            (None, {}),
            (WRONG_TOKEN, {}),
            (TOKEN, {"to": 5}),
            (TOKEN, {"reason": "INC-9"}),
        )
    ]
    answers.append(await agent.post("/v1/hooks/resume", token=TOKEN, json={}))
    answers += [await agent.get(path) for path in ("/v1/snapshot", "/metrics", "/v1/revisions")]
    (agent.folder / "hold").unlink()
    await agent.finished(answers[3].json()["action_id"])
    assert [answer.status_code for answer in answers[:5]] == [401, 403, 400, 202, 409]
    logged = [record.getMessage() for record in caplog.records]
    assert any("refused: wrong bearer token" in line for line in logged)
    assert any("INC-9" in line for line in logged)  # the action and its reason are logged
    for secret in (TOKEN, WRONG_TOKEN):
        assert secret not in caplog.text
        for answer in answers:
            assert secret not in answer.text and secret not in str(answer.headers)


# --- TLS ------------------------------------------------------------------------------------


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made by the openssl command."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=DEADLINE_S,
    )
    return cert, key


async def test_tls_serves_https(
    start_agent: Callable[..., Awaitable[Agent]], certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    agent = await start_agent(tls=tls_context(str(cert), str(key)))
    assert agent.url.startswith("https://127.0.0.1:")
    trusting = ssl.create_default_context(cafile=str(cert))
    async with httpx.AsyncClient(timeout=TIMEOUT, verify=trusting) as client:
        response = await client.get(agent.url + "/v1/snapshot")
        assert response.status_code == 200 and len(response.json()["gpus"]) == 2
        plain = agent.url.replace("https://", "http://")
        with pytest.raises(httpx.RemoteProtocolError):  # no plain HTTP on the TLS port
            await client.get(plain + "/healthz")
    with pytest.raises(httpx.ConnectError):  # a client that does not trust the certificate
        await agent.get("/v1/snapshot")


def test_unloadable_tls_files_are_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "cert.pem").write_text("not a certificate")
    with pytest.raises(ConfigError, match="tls: cannot load certificate"):
        tls_context(str(tmp_path / "cert.pem"), str(tmp_path / "key.pem"))


# --- the command ----------------------------------------------------------------------------


async def fleetdeck_agent(*args: str, cwd: Path) -> asyncio.subprocess.Process:
    env = dict(os.environ, XDG_STATE_HOME=str(cwd), PYTHONPATH=str(Path.cwd()))
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "console",
        "agent",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
        env=env,
    )


async def test_the_command_prints_where_it_listens_and_stops_on_sigterm(tmp_path: Path) -> None:
    (tmp_path / "agent.yaml").write_text("node: cli-node\ninterval: 2s\n", encoding="utf-8")
    (tmp_path / "token").write_text(TOKEN + "\n", encoding="utf-8")
    process = await fleetdeck_agent(
        "--listen", "127.0.0.1:0", "-c", "agent.yaml", "--token-file", "token", cwd=tmp_path
    )
    assert process.stdout is not None and process.stderr is not None
    try:
        line = (await asyncio.wait_for(process.stdout.readline(), DEADLINE_S)).decode()
        assert line.startswith("listening on http://127.0.0.1:"), line
        url = line.removeprefix("listening on ").strip()
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            snapshot = (await client.get(url + "/v1/snapshot")).json()
            refused = await client.post(url + "/v1/rollback", json={})
        assert snapshot["node"] == "cli-node" and refused.status_code == 401
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), DEADLINE_S) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert TOKEN not in (await process.stderr.read()).decode()


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("--listen", "0.0.0.0:0"), 78, "refusing to listen on 0.0.0.0:0 without a token"),
        (("--tls-cert", "c.pem"), 64, "--tls-cert and --tls-key go together"),
        (("--listen", "nowhere"), 64, "--listen: expected HOST:PORT"),
        (("--token-file", "missing"), 78, "token_file: cannot read"),
    ],
)
async def test_the_command_refuses_with_one_line(
    tmp_path: Path, args: tuple[str, ...], code: int, message: str
) -> None:
    process = await fleetdeck_agent(*args, cwd=tmp_path)
    out, err = await asyncio.wait_for(process.communicate(), DEADLINE_S)
    assert process.returncode == code and out == b""
    lines = err.decode().splitlines()
    assert len(lines) == 1 and message in lines[0], lines


async def test_the_console_reads_what_the_agent_serves(agent: Agent) -> None:
    from console import builtin

    reading = builtin.agent.decode_snapshot((await agent.get("/v1/snapshot")).content)
    assert reading.revision == "r2" and reading.gpu_error is None
    assert [(gpu.index, gpu.util, gpu.power) for gpu in reading.gpus] == [
        (0, 80, 612.345),
        (1, 81, 612.345),
    ]
    assert reading.host is not None and reading.host.mem_total is not None
