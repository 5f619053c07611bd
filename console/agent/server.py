"""The node agent's HTTP API (DESIGN.md, 'The node agent API').

    GET  /healthz            200 {"status": "ok"}                       always open
    GET  /v1/snapshot        telemetry + engine figures + revision     open unless protect_reads
    GET  /metrics            the same as Prometheus text (fleetdeck_*)  open unless protect_reads
    GET  /v1/revisions       current, known and past revisions          open unless protect_reads
    GET  /v1/actions/ID      a rollback's or hook's state               open unless protect_reads
    POST /v1/rollback        {"to": REV|null, "reason": TEXT} -> 202 {"action_id"}; 409 busy
    POST /v1/hooks/NAME      {"reason": TEXT} -> 202 {"action_id"}; 404 unknown hook; 409 busy

Every POST needs `Authorization: Bearer TOKEN` (401 without, 403 wrong; constant-time compare),
and an agent without a token refuses them all. Bodies are capped (413) and validated (400 naming
the field). Answers are JSON, except /metrics. The composed snapshot is cached per telemetry
interval and built once however many requests wait for it; telemetry is read in a worker
thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import signal
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from console.agent.config import AgentConfig
from console.agent.deploy import Busy, Deployer
from console.agent.engine import EngineProbe
from console.agent.exposition import CONTENT_TYPE, snapshot_metrics
from console.agent.nvml import NvmlApi
from console.agent.telemetry import Telemetry
from console.errors import ConfigError
from console.httpserver import HttpServer, Request, Response, Result, error_response, json_response

__all__ = [
    "MAX_BODY",
    "AgentServer",
    "TelemetrySource",
    "check_exposure",
    "serve",
    "tls_context",
]

MAX_BODY = 64 * 1024
MAX_REASON = 500
ENGINE_TIMEOUT_S = 1.0
_REVISION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+/-]{0,127}")  # never an option: no leading -
_ROLLBACK_FIELDS = ("to", "reason")
_HOOK_FIELDS = ("reason",)
log = logging.getLogger("fleetdeck.agent")


class TelemetrySource(Protocol):
    """What the server reads GPUs and host from (`console.agent.telemetry.Telemetry`)."""

    def snapshot(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


class _BadRequest(Exception):
    """A request body the agent refuses (400); the message names the field."""


def check_exposure(config: AgentConfig, token: str | None) -> None:
    """Refuse what would expose the agent: no token off loopback, protected reads without one."""
    if token is None and not config.listen.is_loopback:
        raise ConfigError(
            f"refusing to listen on {config.listen} without a token: "
            "set token_file or token_env (or --token-file), or listen on 127.0.0.1"
        )
    if token is None and config.protect_reads:
        raise ConfigError("protect_reads needs a token: set token_file or token_env")


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    """A server context for the certificate chain and key; ConfigError when they do not load."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"tls: cannot load certificate {cert} with key {key}: {reason}") from None
    return context


async def serve(
    config: AgentConfig,
    token: str | None,
    tls: ssl.SSLContext | None,
    *,
    nvml: NvmlApi | None = None,
) -> int:
    """Run the agent until SIGINT or SIGTERM; print `listening on URL` once it listens."""
    check_exposure(config, token)
    deployer = Deployer(config.deploy, {hook.name: hook for hook in config.hooks})
    telemetry = Telemetry(
        node=config.node,
        nvml=nvml,
        interval=config.interval,
        process_name=config.engine.process_name,
        engine_port=config.engine.port,
        model_dir=config.model_dir,
    )
    server = AgentServer(config, telemetry, deployer, token=token, tls=tls)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        try:
            await server.start()
        except OSError as exc:
            raise ConfigError(f"cannot listen on {config.listen}: {exc.strerror or exc}") from None
        print(f"listening on {server.url}", flush=True)
        log.info("agent %s listening on %s", config.node, server.url)
        await stop.wait()
    finally:
        await server.close()
    return 0


@dataclass(slots=True)
class _Composed:
    """One composed snapshot and its two renderings, made on first use."""

    snapshot: dict[str, Any]
    taken: float  # monotonic seconds
    _json: Response | None = field(default=None)
    _metrics: Response | None = field(default=None)

    def json(self) -> Response:
        if self._json is None:
            self._json = json_response(200, self.snapshot)
        return self._json

    def metrics(self) -> Response:
        if self._metrics is None:
            self._metrics = Response(200, snapshot_metrics(self.snapshot).encode(), CONTENT_TYPE)
        return self._metrics


class AgentServer:
    """The agent API over `HttpServer`, on `config.listen`."""

    def __init__(
        self,
        config: AgentConfig,
        telemetry: TelemetrySource,
        deployer: Deployer,
        *,
        token: str | None,
        tls: ssl.SSLContext | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        check_exposure(config, token)
        self.config = config
        self.telemetry = telemetry
        self.deployer = deployer
        self._token = None if token is None else token.encode()
        self._clock = clock
        self.engine = (
            None
            if config.engine.port is None
            else EngineProbe(config.node, config.engine, min(ENGINE_TIMEOUT_S, config.interval))
        )
        self.server = HttpServer(
            self.handle, config.listen.host, config.listen.port, tls=tls, max_body=MAX_BODY
        )
        self._composed: _Composed | None = None
        self._composing: asyncio.Future[_Composed] | None = None

    @property
    def url(self) -> str:
        return self.server.url

    async def start(self) -> None:
        await self.server.start()

    async def close(self) -> None:
        await self.server.close()
        await self.deployer.close()
        if self.engine is not None:
            await self.engine.aclose()
        await asyncio.to_thread(self.telemetry.close)

    # --- routing ------------------------------------------------------------------------------

    def handle(self, request: Request) -> Result:
        path, method = request.path, request.method
        if path == "/healthz":
            return _only(method, "GET") or json_response(200, {"status": "ok"})
        route = self._route(path)
        if route is None:
            return error_response(404, f"no such path {path}")
        allowed, answer = route
        refused = _only(method, allowed) or self._authorize(request, write=method == "POST")
        return refused or answer(request)

    def _route(self, path: str) -> tuple[str, Callable[[Request], Result]] | None:
        if path == "/v1/snapshot":
            return "GET", self._snapshot
        if path == "/metrics":
            return "GET", self._metrics
        if path == "/v1/revisions":
            return "GET", self._revisions
        if path == "/v1/rollback":
            return "POST", self._rollback
        if path.startswith("/v1/actions/"):
            return "GET", self._action
        if path.startswith("/v1/hooks/"):
            return "POST", self._hook
        return None

    def _authorize(self, request: Request, write: bool) -> Response | None:
        """None when the request may go on; the 401/403 answer otherwise. The token and the
        header are never echoed or logged."""
        if not write and not self.config.protect_reads:
            return None
        what = f"{request.method} {request.path}"
        if self._token is None:
            return error_response(403, f"{what}: this agent has no token, so it accepts no POST")
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            log.warning("%s refused: no bearer token", what)
            return Response(
                401,
                json.dumps({"error": f"{what}: needs Authorization: Bearer TOKEN"}).encode(),
                "application/json",
                headers=(("WWW-Authenticate", 'Bearer realm="fleetdeck-agent"'),),
            )
        if not hmac.compare_digest(credentials.strip().encode(), self._token):
            log.warning("%s refused: wrong bearer token", what)
            return error_response(403, f"{what}: wrong token")
        return None

    # --- reads --------------------------------------------------------------------------------

    def _snapshot(self, request: Request) -> Result:
        return self._answer(_Composed.json)

    def _metrics(self, request: Request) -> Result:
        return self._answer(_Composed.metrics)

    def _answer(self, render: Callable[[_Composed], Response]) -> Result:
        """At once from a fresh cache, else once the snapshot is composed."""
        composed = self._composed
        if composed is not None and self._fresh(composed):
            return render(composed)
        return self._compose_then(render)

    async def _compose_then(self, render: Callable[[_Composed], Response]) -> Response:
        if self._composing is None:  # one composition, however many requests wait for it
            self._composing = asyncio.ensure_future(self._compose())
        return render(await asyncio.shield(self._composing))

    def _fresh(self, composed: _Composed) -> bool:
        return (
            self._clock() - composed.taken < self.config.interval
            and composed.snapshot["revision"] == self.deployer.current_revision()
        )

    async def _compose(self) -> _Composed:
        try:
            telemetry, (engine, engine_error) = await asyncio.gather(
                asyncio.to_thread(self.telemetry.snapshot), self._read_engine()
            )
            snapshot = dict(telemetry)
            snapshot["engine"] = engine
            snapshot["engine_error"] = engine_error
            snapshot.update(self._revision_fields())
            composed = self._composed = _Composed(snapshot, self._clock())
            return composed
        finally:
            self._composing = None

    async def _read_engine(self) -> tuple[dict[str, Any] | None, str | None]:
        if self.engine is None:
            return None, None
        return await self.engine.read()

    def _revision_fields(self) -> dict[str, Any]:
        """`revision` and `revisions` (known revisions, oldest deploy first), as the sim has."""
        revisions = self.deployer.revisions()
        names = dict.fromkeys(each["revision"] for each in reversed(revisions["history"]))
        return {"revision": self.deployer.current_revision(), "revisions": list(names)}

    def _revisions(self, request: Request) -> Response:
        return json_response(200, {**self._revision_fields(), **self.deployer.revisions()})

    def _action(self, request: Request) -> Response:
        action_id = request.path.removeprefix("/v1/actions/")
        action = self.deployer.action(action_id)
        if action is None:
            return error_response(404, f"no action {action_id!r}")
        return json_response(200, action)

    # --- actions ------------------------------------------------------------------------------

    def _rollback(self, request: Request) -> Awaitable[Response] | Response:
        try:
            body = _body(request, _ROLLBACK_FIELDS)
            to = _revision(body.get("to"))
            reason = _reason(body.get("reason"))
        except _BadRequest as exc:
            return error_response(400, str(exc))
        log.info("rollback requested: to %s (reason: %s)", to or "the previous revision", reason)
        return self._start(lambda: self.deployer.start_rollback(to, reason))

    def _hook(self, request: Request) -> Awaitable[Response] | Response:
        name = request.path.removeprefix("/v1/hooks/")
        try:
            reason = _reason(_body(request, _HOOK_FIELDS).get("reason"))
        except _BadRequest as exc:
            return error_response(400, str(exc))
        log.info("hook %r requested (reason: %s)", name, reason)
        return self._start(lambda: self.deployer.run_hook(name, reason), hook=name)

    async def _start(
        self, start: Callable[[], Awaitable[str]], hook: str | None = None
    ) -> Response:
        try:
            action_id = await start()
        except Busy as exc:
            return error_response(409, f"busy: {exc}")
        except KeyError:
            return error_response(404, f"no hook named {hook!r} in the agent config")
        except ValueError as exc:
            return error_response(400, str(exc))
        return json_response(202, {"action_id": action_id})


def _only(method: str, allowed: str) -> Response | None:
    if method == allowed:
        return None
    return Response(
        405,
        json.dumps({"error": f"method {method} not allowed: use {allowed}"}).encode(),
        "application/json",
        headers=(("Allow", allowed),),
    )


def _body(request: Request, fields: tuple[str, ...]) -> dict[str, Any]:
    """The body as a JSON object with only `fields` (an empty body is `{}`)."""
    if not request.body.strip():
        return {}
    try:
        body = request.json()
    except ValueError as exc:
        raise _BadRequest(str(exc)) from None
    if not isinstance(body, dict):
        raise _BadRequest(f"body must be a JSON object with {', '.join(map(repr, fields))}")
    unknown = [key for key in body if key not in fields]
    if unknown:
        raise _BadRequest(f"unknown field {unknown[0]!r} (known: {', '.join(fields)})")
    return body


def _revision(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _REVISION.fullmatch(value):
        raise _BadRequest(
            "field 'to' must be a revision name (letters, digits, ._:@+/-, not starting with "
            "'-') or null for the previous revision"
        )
    return value


def _reason(value: object) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > MAX_REASON or not value.isprintable():
        raise _BadRequest(f"field 'reason' must be one line of text, at most {MAX_REASON} chars")
    return value
