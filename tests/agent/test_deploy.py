"""Revisions, rollbacks and hooks run real deploy scripts written into the test's directory."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

import console
from console.agent import _history, deploy
from console.agent._history import HistoryError, HistoryFile, Record
from console.agent.config import DeployConfig, HookConfig
from console.agent.deploy import Busy, Deployer, HealthCheck, http_health_check

NOON = 43201.0  # 12:00:01 UTC on the first day of the epoch
WAIT_S = 5.0  # the bound on every wait for an action or a process


def script(tmp_path: Path, name: str, body: str) -> str:
    """A `#!/bin/sh` deploy command that records its argv (NUL-separated) and runs `body`."""
    path = tmp_path / name
    path.write_text(f"#!/bin/sh\nprintf '%s\\0' \"$@\" > '{tmp_path}/{name}.argv'\n{body}\n")
    path.chmod(0o755)
    return str(path)


def recorded_argv(tmp_path: Path, name: str) -> list[str]:
    return (tmp_path / f"{name}.argv").read_text().split("\0")[:-1]


def deploy_config(
    tmp_path: Path,
    command: str,
    *,
    current: str | None = "rev-2",
    timeout: float = WAIT_S,
    health_url: str | None = None,
    health_timeout: float = 1.0,
) -> DeployConfig:
    (tmp_path / "state").mkdir(exist_ok=True)
    return DeployConfig(
        history_file=str(tmp_path / "state" / "history.json"),
        command=(command, "restart", "vllm@{rev}", "--literal={{x}}"),
        current=current,
        timeout=timeout,
        health_url=health_url,
        health_timeout=health_timeout,
    )


def seeded(
    config: DeployConfig,
    hooks: Mapping[str, HookConfig] = MappingProxyType({}),
    health_check: HealthCheck | None = None,
) -> Deployer:
    """A deployer whose history holds rev-1, then rev-2 (current), both declared by the config."""
    Deployer(_with_current(config, "rev-1"), {}, clock=lambda: NOON - 60)
    config = _with_current(config, "rev-2")
    return Deployer(config, hooks, clock=lambda: NOON, health_check=health_check)


def _with_current(config: DeployConfig, current: str) -> DeployConfig:
    return DeployConfig(
        config.history_file,
        config.command,
        current,
        config.timeout,
        config.health_url,
        config.health_timeout,
    )


async def until(check: Callable[[], bool], what: str) -> None:
    """Poll `check()` until it holds; fail after WAIT_S seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def settled(deployer: Deployer, action_id: str) -> dict[str, Any]:
    def finished() -> bool:
        action = deployer.action(action_id)
        return action is None or action["state"] != "running"

    await until(finished, f"action {action_id} to finish")
    action = deployer.action(action_id)
    assert action is not None
    return action


def stored(config: DeployConfig) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(Path(config.history_file).read_text())
    return data


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has finished


def health_after(failures: int, config: DeployConfig, seen: list[str]) -> HealthCheck:
    """A health check that fails `failures` times, noting the stored revision at each call."""

    async def check(url: str) -> bool:
        seen.append(stored(config)["current"])
        return len(seen) > failures

    return check


# -- rollbacks ------------------------------------------------------------------------------


async def test_rollback_runs_the_argv_then_records_the_revision_once_healthy(
    tmp_path: Path,
) -> None:
    history = tmp_path / "state" / "history.json"
    command = script(tmp_path, "deploy", f"cp '{history}' '{tmp_path}/seen-by-command.json'")
    config = deploy_config(tmp_path, command, health_url="http://127.0.0.1:1/health")
    seen: list[str] = []
    deployer = seeded(config, health_check=health_after(3, config, seen))

    action_id = await deployer.start_rollback(None, "INC-42")
    action = await settled(deployer, action_id)

    assert recorded_argv(tmp_path, "deploy") == ["restart", "vllm@rev-1", "--literal={x}"]
    intent = json.loads((tmp_path / "seen-by-command.json").read_text())
    assert intent["current"] == "rev-2"
    assert intent["running"]["id"] == action_id
    assert (intent["running"]["from"], intent["running"]["to"]) == ("rev-2", "rev-1")
    assert seen == ["rev-2"] * 4  # unhealthy three times: still rev-2 until the fourth answer
    assert action["state"] == "done", action
    assert (action["exit_code"], action["error"], action["kind"]) == (0, None, "rollback")
    revisions = deployer.revisions()
    assert revisions["current"] == deployer.current_revision() == "rev-1"
    assert revisions["previous"] == "rev-2"
    assert revisions["history"][0] == {
        "revision": "rev-1",
        "at": NOON,
        "reason": "INC-42",
        "action_id": action_id,
    }
    assert revisions["last_rollback"]["id"] == action_id
    assert stored(config)["current"] == "rev-1"
    assert stored(config)["running"] is None
    assert Deployer(config, {}).current_revision() == "rev-1"  # the change survives a restart


async def test_rollback_without_a_health_url_trusts_the_exit_code(tmp_path: Path) -> None:
    config = deploy_config(tmp_path, script(tmp_path, "deploy", "exit 0"))
    deployer = seeded(config)

    action = await settled(deployer, await deployer.start_rollback("rev-1", "INC-1"))

    assert action["state"] == "done"
    assert deployer.current_revision() == "rev-1"


async def test_a_failing_command_leaves_the_history_as_it_was(tmp_path: Path) -> None:
    config = deploy_config(
        tmp_path, script(tmp_path, "deploy", "echo 'unit not found' >&2; exit 3")
    )
    deployer = seeded(config)
    before = deployer.revisions()

    action = await settled(deployer, await deployer.start_rollback("rev-1", "INC-7"))

    assert action["state"] == "failed"
    assert action["exit_code"] == 3
    assert "unit not found" in str(action["output_tail"])
    assert "exited with code 3" in str(action["error"])
    after = deployer.revisions()
    assert (after["current"], after["history"]) == (before["current"], before["history"])
    assert after["last_rollback"]["state"] == "failed"
    assert (stored(config)["current"], stored(config)["running"]) == ("rev-2", None)


async def test_a_command_past_its_timeout_is_stopped_with_its_children(tmp_path: Path) -> None:
    body = f"sleep 30 & echo $! > '{tmp_path}/child.pid'; echo $$ > '{tmp_path}/leader.pid'; wait"
    config = deploy_config(tmp_path, script(tmp_path, "deploy", body), timeout=0.3)
    deployer = seeded(config)

    action = await settled(deployer, await deployer.start_rollback("rev-1", "INC-8"))

    assert action["state"] == "failed"
    assert "timed out after 0.3s" in str(action["error"])
    pids = [int((tmp_path / name).read_text()) for name in ("leader.pid", "child.pid")]
    await until(lambda: not any(alive(pid) for pid in pids), f"the command {pids} to stop")
    assert deployer.current_revision() == stored(config)["current"] == "rev-2"


async def test_an_engine_never_healthy_fails_the_rollback(tmp_path: Path) -> None:
    async def never_healthy(url: str) -> bool:
        return False

    config = deploy_config(
        tmp_path, script(tmp_path, "deploy", "exit 0"), health_url="http://e/h", health_timeout=0.2
    )
    deployer = seeded(config, health_check=never_healthy)

    action = await settled(deployer, await deployer.start_rollback("rev-1", "INC-9"))

    assert (action["state"], action["exit_code"]) == ("failed", 0)
    assert action["error"] == "engine not healthy on rev-1 at http://e/h within 0.2s"
    assert deployer.current_revision() == stored(config)["current"] == "rev-2"


async def test_a_second_action_is_busy_and_names_the_one_running(tmp_path: Path) -> None:
    config = deploy_config(tmp_path, script(tmp_path, "deploy", "exec sleep 30"))
    hooks = {"resume": HookConfig("resume", ("true",), 1.0)}
    deployer = seeded(config, hooks)

    first, second = await asyncio.gather(
        deployer.start_rollback("rev-1", "INC-42"),
        deployer.start_rollback("rev-1", "INC-43"),
        return_exceptions=True,
    )

    assert isinstance(first, str)
    assert isinstance(second, Busy)
    holder = f"rollback {first} to rev-1 running since 12:00:01 UTC (reason: INC-42)"
    assert str(second) == holder
    with pytest.raises(Busy, match=r"^rollback .* to rev-1 running since"):
        await deployer.run_hook("resume", "INC-44")
    await deployer.close()
    action = deployer.action(first)
    assert action is not None
    assert action["state"] == "interrupted"
    assert stored(config)["running"] is None
    assert deployer.current_revision() == "rev-2"


async def test_rollback_targets_are_checked(tmp_path: Path) -> None:
    config = deploy_config(tmp_path, script(tmp_path, "deploy", "exit 0"), current="rev-1")
    deployer = Deployer(config, {})

    with pytest.raises(ValueError, match=r"^no previous revision to roll back to$"):
        await deployer.start_rollback(None, "INC-1")
    with pytest.raises(ValueError, match=r"^unknown revision 'rev-9'$"):
        await deployer.start_rollback("rev-9", "INC-1")
    with pytest.raises(ValueError, match="no deployment configured"):
        await Deployer(None, {}).start_rollback("rev-1", "INC-1")
    assert not (tmp_path / "deploy.argv").exists()
    assert deployer.revisions()["history"][0]["reason"] == "declared in the agent config"


async def test_writes_leave_no_temporary_file_behind(tmp_path: Path) -> None:
    config = deploy_config(tmp_path, script(tmp_path, "deploy", 'test "$2" = vllm@rev-1'))
    deployer = seeded(config)
    for target in ("rev-1", "rev-2"):  # one done, one failed
        await settled(deployer, await deployer.start_rollback(target, "INC-5"))

    assert os.listdir(tmp_path / "state") == ["history.json"]
    assert [a["state"] for a in stored(config)["actions"]] == ["failed", "done"]


def test_a_write_that_fails_removes_its_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "history.json"
    (target / "in-the-way").mkdir(parents=True)  # a non-empty directory cannot be renamed over

    with pytest.raises(HistoryError, match=f"^cannot write history file {target}: "):
        HistoryFile(target).save(Record(current="rev-1"))

    assert os.listdir(tmp_path) == ["history.json"]


# -- restart after a crash ------------------------------------------------------------------

CHILD = """
import asyncio, sys
from console.agent.config import DeployConfig
from console.agent.deploy import Deployer

async def main() -> None:
    config = DeployConfig({history!r}, ({command!r}, "{{rev}}"), "rev-2", 30.0, None, 1.0)
    deployer = Deployer(config, {{}})
    print(await deployer.start_rollback("rev-1", "INC-77"), flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


async def test_an_agent_killed_mid_action_restarts_with_it_interrupted(tmp_path: Path) -> None:
    config = deploy_config(tmp_path, script(tmp_path, "deploy", "exit 0"))
    seeded(config)
    hanging = script(tmp_path, "hang", f"echo $$ > '{tmp_path}/hang.pid'; exec sleep 30")
    child_source = tmp_path / "child.py"
    child_source.write_text(CHILD.format(history=config.history_file, command=hanging))
    environment = {**os.environ, "PYTHONPATH": str(Path(console.__file__).parents[1])}
    child = await asyncio.create_subprocess_exec(
        sys.executable, str(child_source), stdout=asyncio.subprocess.PIPE, env=environment
    )
    assert child.stdout is not None
    pid_file = tmp_path / "hang.pid"
    try:
        async with asyncio.timeout(WAIT_S):
            action_id = (await child.stdout.readline()).decode().strip()
        await until(lambda: pid_file.exists() and pid_file.read_text().endswith("\n"), "hang.pid")
        child.send_signal(signal.SIGKILL)
        await child.wait()
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
        if pid_file.exists():  # the command outlives a killed agent: it has its own session
            os.killpg(int(pid_file.read_text()), signal.SIGKILL)
    assert stored(config)["running"]["id"] == action_id  # what the killed agent left

    restarted = Deployer(config, {})

    action = restarted.action(action_id)
    assert action is not None
    assert action["state"] == "interrupted"
    assert (action["from"], action["to"], action["reason"]) == ("rev-2", "rev-1", "INC-77")
    assert "outcome is unknown" in str(action["error"])
    assert restarted.revisions()["last_rollback"]["id"] == action_id
    assert restarted.current_revision() == "rev-2"
    assert stored(config)["running"] is None
    again = await settled(restarted, await restarted.start_rollback("rev-1", "INC-77 retry"))
    assert again["state"] == "done"
    assert restarted.current_revision() == "rev-1"


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        ("{not json", "Expecting property name"),
        ('{"format": 1, "current": 5}', "'current' is int, expected str or NoneType"),
        ('{"format": 9}', "unsupported format 9"),
        ("[]", "document is list, expected an object"),
    ],
)
def test_a_corrupt_history_file_is_reported_and_left_alone(
    tmp_path: Path, content: str, detail: str
) -> None:
    config = deploy_config(tmp_path, "true")
    Path(config.history_file).write_text(content)

    with pytest.raises(HistoryError) as caught:
        Deployer(config, {})

    message = str(caught.value)
    assert message.startswith(f"history file {config.history_file} is corrupt (")
    assert detail in message
    assert "\n" not in message
    assert Path(config.history_file).read_text() == content


def test_a_new_current_revision_in_the_config_is_recorded_once(tmp_path: Path) -> None:
    config = deploy_config(tmp_path, "true")
    seeded(config)
    Deployer(_with_current(config, "rev-2"), {})  # the same config again: nothing new

    assert [d["revision"] for d in stored(config)["history"]] == ["rev-2", "rev-1"]


# -- hooks ----------------------------------------------------------------------------------


async def test_a_hook_gets_the_reason_as_one_word_never_through_a_shell(tmp_path: Path) -> None:
    pwned = tmp_path / "pwned"
    reason = f"INC-1 {{rev}}; touch {pwned} $(touch {pwned}) `touch {pwned}`"
    command = (script(tmp_path, "stop", "echo draining"), "--why", "{reason}")
    deployer = Deployer(None, {"stop_accepting": HookConfig("stop_accepting", command, 1.0)})

    action = await settled(deployer, await deployer.run_hook("stop_accepting", reason))

    assert recorded_argv(tmp_path, "stop") == ["--why", reason]
    assert not pwned.exists()
    assert action["kind"] == "hook"
    assert action["name"] == "stop_accepting"
    assert (action["state"], action["output_tail"]) == ("done", "draining\n")
    assert deployer.revisions() == {
        "current": None,
        "history": [],
        "previous": None,
        "last_rollback": None,
    }
    with pytest.raises(KeyError):
        await deployer.run_hook("reboot", "INC-1")


async def test_a_hook_that_cannot_start_fails_with_the_reason(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing")
    deployer = Deployer(None, {"resume": HookConfig("resume", (missing,), 1.0)})

    action = await settled(deployer, await deployer.run_hook("resume", "INC-3"))

    assert action["state"] == "failed"
    assert action["exit_code"] is None
    assert action["error"] == f"cannot run {missing!r}: No such file or directory"


async def test_finished_actions_are_kept_within_bounds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(deploy, "FINISHED_KEPT", 3)
    monkeypatch.setattr(_history, "ACTIONS_KEPT", 2)
    config = deploy_config(tmp_path, "true")
    deployer = Deployer(config, {"resume": HookConfig("resume", ("true",), 1.0)})

    ids = [await settled(deployer, await deployer.run_hook("resume", "n")) for _ in range(4)]

    assert deployer.action(str(ids[0]["id"])) is None
    assert all(deployer.action(str(a["id"])) is not None for a in ids[1:])
    assert [a["id"] for a in stored(config)["actions"]] == [ids[3]["id"], ids[2]["id"]]


# -- the default health check ---------------------------------------------------------------


async def test_the_http_health_check_asks_the_engine(tmp_path: Path) -> None:
    answers = iter([b"200 OK", b"503 Service Unavailable"])

    async def engine(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        status = next(answers)
        writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(engine, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        assert await http_health_check(f"http://127.0.0.1:{port}/health") is True
        assert await http_health_check(f"http://127.0.0.1:{port}/health") is False
    assert await http_health_check(f"http://127.0.0.1:{port}/health") is False  # refused
