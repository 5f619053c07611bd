"""A simulated node's agent port, speaking the node agent API of DESIGN.md.

`GET /v1/snapshot` (host, GPUs, revision), `GET /metrics` (the same as Prometheus text with
the `fleetdeck_` prefix), `GET /healthz`, `GET /v1/revisions`, `POST /v1/rollback` (202 with an
action id; 409 while one runs) and `GET /v1/actions/ID` (running, then done once the
simulated redeploy has taken its time). The simulator needs no token.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from console.agent.exposition import CONTENT_TYPE, snapshot_metrics
from console.httpserver import HttpServer, Request, Response, Result, error_response, json_response
from console.sim.gpus import host_json
from console.sim.model import NodeModel

SCHEMA_VERSION = 1
ROLLBACK_S = 1.0  # how long a simulated redeploy takes
SNAPSHOT_TICK_S = 0.02
BASE_PID = 4100


@dataclass(slots=True)
class Action:
    action_id: str
    kind: str
    state: str  # running, done, failed
    from_revision: str
    to_revision: str
    reason: str | None
    started: float
    finished: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "action_id": self.action_id,
            "kind": self.kind,
            "state": self.state,
            "from": self.from_revision,
            "to": self.to_revision,
            "reason": self.reason,
            "started": self.started,
            "finished": self.finished,
        }


class AgentServer:
    """The agent port of one node."""

    def __init__(self, node: NodeModel, host: str, rollback_s: float = ROLLBACK_S) -> None:
        self.node = node
        self.rollback_s = rollback_s
        self.server = HttpServer(self.handle, host)
        self.actions: dict[str, Action] = {}
        self.running: Action | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._cache: dict[str, tuple[int, float, Response]] = {}

    def handle(self, request: Request) -> Result:
        path, method = request.path, request.method
        if path.startswith("/v1/actions/"):
            return self._only(method, "GET") or self.action(path.removeprefix("/v1/actions/"))
        if path.startswith("/v1/hooks/"):
            return self._only(method, "POST") or self.hook(path.removeprefix("/v1/hooks/"))
        route = ROUTES.get(path)
        if route is None:
            return error_response(404, f"no such path {path}")
        allowed, name = route
        return self._only(method, allowed) or getattr(self, name)(request)

    @staticmethod
    def _only(method: str, allowed: str) -> Response | None:
        if method == allowed:
            return None
        return Response(405, b"method not allowed\n", headers=(("Allow", allowed),))

    # -- reads --------------------------------------------------------------------------

    def snapshot(self, request: Request) -> Response:
        return self._cached("snapshot", lambda: json_response(200, self.snapshot_json()))

    def metrics(self, request: Request) -> Response:
        return self._cached(
            "metrics",
            lambda: Response(200, snapshot_metrics(self.snapshot_json()).encode(), CONTENT_TYPE),
        )

    def healthz(self, request: Request) -> Response:
        return json_response(200, {"status": "ok"})

    def revisions(self, request: Request) -> Response:
        node = self.node
        return json_response(200, {"revision": node.revision, "revisions": list(node.revisions)})

    def action(self, action_id: str) -> Response:
        action = self.actions.get(action_id)
        if action is None:
            return error_response(404, f"no action {action_id}")
        return json_response(200, action.as_json())

    def _cached(self, key: str, build: Callable[[], Response]) -> Response:
        """Reuse an answer for a tick while the node is unchanged."""
        node = self.node
        now = node.clock()
        hit = self._cache.get(key)
        if (
            hit is not None
            and hit[0] == node.version
            and (node.static or now - hit[1] < SNAPSHOT_TICK_S)
        ):
            return hit[2]
        node.advance()
        response: Response = build()
        self._cache[key] = (node.version, now, response)
        return response

    def snapshot_json(self) -> dict[str, Any]:
        node = self.node
        t = node.now - node.epoch
        process = node.spec.process
        return {
            "schema_version": SCHEMA_VERSION,
            "node": node.name,
            "time": round(node.wall_now, 3),
            "host": host_json(node.shape, t, node.busy, node.host_age_s + t),
            "gpus": [
                reading.as_json(BASE_PID + reading.index, process)
                for reading in node.gpu_readings()
            ],
            "gpu_error": None,
            "engine": None,
            "revision": node.revision,
            "revisions": list(node.revisions),
        }

    # -- rollback -----------------------------------------------------------------------

    def rollback(self, request: Request) -> Response:
        node = self.node
        try:
            body = request.json()
        except ValueError as exc:
            return error_response(400, str(exc))
        if body is None:
            body = {}
        if not isinstance(body, dict):
            return error_response(400, "body must be a JSON object with 'to' and 'reason'")
        target, reason = body.get("to"), body.get("reason")
        if reason is not None and not isinstance(reason, str):
            return error_response(400, "'reason' must be a string")
        if self.running is not None:
            return error_response(409, f"action {self.running.action_id} is still running")
        if target is None:
            position = node.revisions.index(node.revision)
            if position == 0:
                return error_response(400, f"{node.revision} is the oldest revision")
            target = node.revisions[position - 1]
        if target not in node.revisions:
            return error_response(
                400, f"unknown revision {target!r} (known: {', '.join(node.revisions)})"
            )
        action = Action(
            action_id=f"rollback-{node.name}-{len(self.actions) + 1}",
            kind="rollback",
            state="running",
            from_revision=node.revision,
            to_revision=target,
            reason=reason,
            started=round(node.wall_now, 3),
        )
        self.actions[action.action_id] = action
        self.running = action
        self._timer = asyncio.get_running_loop().call_later(self.rollback_s, self._finish)
        return json_response(202, {"action_id": action.action_id})

    def hook(self, name: str) -> Response:
        """The engine-level drain hooks a real agent's config would declare; they act at once."""
        accepting = HOOKS.get(name)
        if accepting is None:
            return error_response(404, f"no hook {name!r} (known: {', '.join(HOOKS)})")
        node = self.node
        node.accepting = accepting
        node.version += 1
        now = round(node.wall_now, 3)
        action = Action(
            action_id=f"hook-{node.name}-{len(self.actions) + 1}",
            kind="hook",
            state="done",
            from_revision=node.revision,
            to_revision=node.revision,
            reason=name,
            started=now,
            finished=now,
        )
        self.actions[action.action_id] = action
        return json_response(202, {"action_id": action.action_id})

    def _finish(self) -> None:
        action = self.running
        if action is None:
            return
        self.node.roll_back(action.to_revision)
        action.state = "done"
        action.finished = round(self.node.wall_now, 3)
        self.running = None
        self._timer = None

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        await self.server.close()


HOOKS = {"stop_accepting": False, "resume": True}  # hook name -> accepting afterwards
ROUTES = {
    "/v1/snapshot": ("GET", "snapshot"),
    "/metrics": ("GET", "metrics"),
    "/healthz": ("GET", "healthz"),
    "/v1/revisions": ("GET", "revisions"),
    "/v1/rollback": ("POST", "rollback"),
}
