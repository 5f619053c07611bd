"""The systems an action changes: gateway replicas (through a plugin's driver), node agents
(rollback, hooks) and operator commands (a program run without a shell).

Every call is bounded by a timeout and returns a `Change` per replica or agent instead of
raising, so an action always knows exactly which parts were changed and which were not.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from console.errors import FleetdeckError, GatewayError
from console.fleet import NodeConfig
from console.gateway import GatewayDriver, ReplicaState

AGENT_TIMEOUT = 5.0  # one agent request
OUTPUT_TAIL = 2000  # characters of an operator command's output kept for the audit record


@dataclass(frozen=True, slots=True)
class Change:
    """What one replica, agent or program did with one step."""

    where: str  # a replica endpoint, an agent URL or a program
    ok: bool
    detail: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"where": self.where, "ok": self.ok, "detail": self.detail}


async def _bounded(where: str, call: Awaitable[object], limit_s: float, what: str) -> Change:
    try:
        await asyncio.wait_for(call, limit_s)
    except GatewayError as exc:
        return Change(where, False, exc.reason)
    except TimeoutError:
        return Change(where, False, f"no answer within {limit_s:g} s")
    except FleetdeckError as exc:
        return Change(where, False, str(exc))
    return Change(where, True, what)


async def fan_out(
    endpoints: Sequence[str],
    step: Callable[[str], Awaitable[object]],
    limit_s: float,
    what: str,
) -> list[Change]:
    """`step` on every endpoint at once; one Change each (`what` it did, or why it failed),
    in the endpoints' order."""
    return list(await asyncio.gather(*(_bounded(e, step(e), limit_s, what) for e in endpoints)))


async def read_replicas(
    driver: GatewayDriver, endpoints: Sequence[str], maps: tuple[str, ...], limit_s: float
) -> dict[str, ReplicaState | str]:
    """Each replica's state now, or why it could not be read."""

    async def one(endpoint: str) -> ReplicaState | str:
        try:
            return await asyncio.wait_for(driver.read(endpoint, maps), limit_s)
        except GatewayError as exc:
            return exc.reason
        except TimeoutError:
            return f"no answer within {limit_s:g} s"

    found = await asyncio.gather(*(one(e) for e in endpoints))
    return dict(zip(endpoints, found, strict=True))


# --- node agents ------------------------------------------------------------------------


class AgentClient:
    """A node agent's action endpoints, as `console.agent.server` serves them."""

    def __init__(self, node: NodeConfig, timeout: float = AGENT_TIMEOUT) -> None:
        if node.agent is None:
            raise FleetdeckError(f"node {node.name}: no agent configured", "action")
        self.url = node.agent
        headers = {"user-agent": "fleetdeck"}
        if node.token is not None:
            headers["authorization"] = f"Bearer {node.token.resolve()}"
        self._client = httpx.AsyncClient(base_url=node.agent, headers=headers, timeout=timeout)

    async def __aenter__(self) -> AgentClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.aclose()

    async def start(self, path: str, body: Mapping[str, Any]) -> str:
        """POST an action (rollback or hook); its id. Raises FleetdeckError with the reason."""
        try:
            response = await self._client.post(path, json=dict(body))
        except httpx.HTTPError as exc:
            raise FleetdeckError(
                f"{self.url}{path}: {type(exc).__name__}: {exc}", "agent"
            ) from None
        data = _json(response)
        if response.status_code != 202 or not isinstance(data.get("action_id"), str):
            why = data.get("error") or response.reason_phrase
            raise FleetdeckError(f"{self.url}{path}: HTTP {response.status_code}: {why}", "agent")
        return str(data["action_id"])

    async def wait(
        self, action_id: str, deadline: float, clock: Callable[[], float] = time.monotonic
    ) -> Mapping[str, Any]:
        """Poll the action until it is no longer running, or the deadline (monotonic)."""
        delay = 0.05
        while True:
            try:
                response = await self._client.get(f"/v1/actions/{action_id}")
            except httpx.HTTPError as exc:
                raise FleetdeckError(f"{self.url}: {type(exc).__name__}: {exc}", "agent") from None
            action = _json(response)
            if response.status_code == 200 and action.get("state") != "running":
                return action
            if clock() + delay > deadline:
                raise TimeoutError(f"{self.url}: action {action_id} still running")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)

    async def snapshot(self) -> Mapping[str, Any]:
        try:
            response = await self._client.get("/v1/snapshot")
        except httpx.HTTPError as exc:
            raise FleetdeckError(f"{self.url}: {type(exc).__name__}: {exc}", "agent") from None
        if response.status_code != 200:
            raise FleetdeckError(f"{self.url}/v1/snapshot: HTTP {response.status_code}", "agent")
        return _json(response)


def _json(response: httpx.Response) -> Mapping[str, Any]:
    try:
        data = json.loads(response.content or b"{}")
    except ValueError:
        return {"error": f"not JSON: {response.content[:80]!r}"}
    return data if isinstance(data, dict) else {"error": "not a JSON object"}


async def engine_healthy(url: str, limit_s: float) -> str | None:
    """None when the engine answers its metrics page; else why not."""
    try:
        async with httpx.AsyncClient(timeout=limit_s) as client:
            response = await client.get(url)
    except httpx.HTTPError as exc:
        return f"{url}: {type(exc).__name__}: {exc}"
    return None if response.status_code == 200 else f"{url}: HTTP {response.status_code}"


# --- operator commands ------------------------------------------------------------------


async def run_program(argv: Sequence[str], limit_s: float) -> Change:
    """Run `argv` without a shell; killed after `limit_s`. The output's tail is kept."""
    where = " ".join(argv)
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
    except OSError as exc:
        return Change(where, False, f"cannot start {argv[0]}: {exc.strerror}")
    try:
        output, _ = await asyncio.wait_for(process.communicate(), limit_s)
    except TimeoutError:
        process.kill()
        await process.wait()
        return Change(where, False, f"killed after {limit_s:g} s")
    text = output.decode("utf-8", "replace")[-OUTPUT_TAIL:].strip()
    if process.returncode != 0:
        return Change(where, False, f"exit {process.returncode}: {text}".rstrip(": "))
    return Change(where, True, text or None)
