"""A simulated node's engine port: `/metrics` in its engine's format, an OpenAI-style
`POST /v1/completions` that really queues, health endpoints, and the network faults."""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Awaitable
from typing import Any

from console.httpserver import (
    HANG,
    HttpServer,
    Request,
    Response,
    Result,
    error_response,
    json_response,
)
from console.sim.engines import compiled_page
from console.sim.model import NodeModel
from console.sim.pagetext import CONTENT_TYPE

PAGE_TICK_S = 0.02  # a rendered page is reused this long, unless the node changed
CONCURRENCY = 8  # real completions generated at once; the rest wait in a FIFO
MAX_COMPLETION_TOKENS = 4096
GARBAGE_BYTES = 2048
ENGINE_PATHS = {
    "/metrics": "GET",
    "/v1/completions": "POST",
    "/v1/models": "GET",
    "/health": "GET",
    "/v2/health/ready": "GET",
}


class CompletionQueue:
    """At most `limit` completions run; the rest wait first come, first served."""

    def __init__(self, node: NodeModel, limit: int = CONCURRENCY) -> None:
        self.node = node
        self.limit = limit
        self.running = 0
        self.waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self) -> None:
        if self.running < self.limit and not self.waiters:
            self.running += 1
            self._publish()
            return
        waiter = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        self._publish()
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # the slot was handed over just as the client left
            else:
                self.waiters.remove(waiter)
                self._publish()
            raise

    def release(self) -> None:
        """Hand the slot to the first waiter still there, or free it."""
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                self._publish()
                return
        self.running -= 1
        self._publish()

    def _publish(self) -> None:
        self.node.queue_running = self.running
        self.node.queue_waiting = len(self.waiters)
        self.node.queue_changed()


class EngineServer:
    """The engine port of one node."""

    def __init__(self, node: NodeModel, host: str) -> None:
        self.node = node
        self.page = compiled_page(node.spec, node.model, tuple(node.board.uuids))
        self.server = HttpServer(self.handle, host)
        self.queue = CompletionQueue(node)
        self.garbage = random.Random(node.completion_rng.getrandbits(63))
        self._cached: Response | None = None
        self._cached_version = -1
        self._cached_at = 0.0
        self._served = 0

    def handle(self, request: Request) -> Result:
        fault = self.node.fault
        if fault is not None:
            if fault.kind == "hang":
                return HANG
            if fault.kind == "http500":
                return error_response(500, "internal server error")
            if fault.kind == "garbage":
                return Response(200, self.garbage.randbytes(GARBAGE_BYTES), CONTENT_TYPE)
            if fault.kind == "slow":
                return self._slow(request, fault.seconds or 0.0)
            if fault.kind == "refuse":  # a request on a connection opened before the refusal
                return HANG
        return self.route(request)

    async def _slow(self, request: Request, seconds: float) -> Response:
        await asyncio.sleep(seconds)
        result = self.route(request)
        return result if isinstance(result, Response) else await result

    def route(self, request: Request) -> Response | Awaitable[Response]:
        method = ENGINE_PATHS.get(request.path)
        if method is None:
            return error_response(404, f"no such path {request.path}")
        if request.method != method:
            return Response(405, b"method not allowed\n", headers=(("Allow", method),))
        if request.path == "/metrics":
            return self.metrics()
        if request.path == "/v1/completions":
            return self.complete(request)
        if request.path == "/v1/models":
            return json_response(
                200, {"object": "list", "data": [{"id": self.node.model, "object": "model"}]}
            )
        return Response(200, b"")

    def metrics(self) -> Response:
        """The engine's page, rendered at most once per tick while nothing else changes."""
        node = self.node
        now = node.clock()
        cached = self._cached
        if (
            cached is not None
            and node.version == self._cached_version
            and (node.static or now - self._cached_at < PAGE_TICK_S)
        ):
            return cached
        node.advance()
        node.settle_histograms()
        body = self.page.render(node).encode()
        self._cached = Response(200, body, CONTENT_TYPE)
        self._cached_version = node.version
        self._cached_at = now
        return self._cached

    async def complete(self, request: Request) -> Response:
        try:
            prompt_tokens, max_tokens = _completion_request(request)
        except ValueError as exc:
            return json_response(400, _openai_error(str(exc), "invalid_request_error", 400))
        node = self.node
        if not node.accepting:  # drained through the agent's stop_accepting hook
            message = "not accepting new requests (draining)"
            return json_response(503, _openai_error(message, "service_unavailable", 503))
        loop = asyncio.get_running_loop()
        arrived = loop.time()
        await self.queue.acquire()
        try:
            started = loop.time()
            failed = node.completion_fails()
            first_token_s, total_s = node.completion_times(prompt_tokens, max_tokens)
            await asyncio.sleep(first_token_s if failed else total_s)
        finally:
            self.queue.release()
        finished = loop.time()
        queued_s = started - arrived
        times = {"ttft": queued_s + first_token_s, "queue": queued_s, "e2e": finished - arrived}
        node.record_completion(prompt_tokens, 0 if failed else max_tokens, times, failed)
        if failed:
            return json_response(500, _openai_error("generation failed", "server_error", 500))
        self._served += 1
        return json_response(
            200,
            {
                "id": f"cmpl-{node.name}-{self._served}",
                "object": "text_completion",
                "created": int(node.wall_now),
                "model": node.model,
                "choices": [
                    {
                        "index": 0,
                        "text": " lorem" * max_tokens,
                        "logprobs": None,
                        "finish_reason": "length",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": max_tokens,
                    "total_tokens": prompt_tokens + max_tokens,
                },
            },
        )


def _completion_request(request: Request) -> tuple[int, int]:
    """(prompt tokens, tokens to generate) from a completions body; ValueError when bad."""
    body = request.json()
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    prompt = body.get("prompt")
    if isinstance(prompt, list) and all(isinstance(part, str) for part in prompt):
        prompt = "".join(prompt)
    if not isinstance(prompt, str):
        raise ValueError("'prompt' must be a string or a list of strings")
    max_tokens = body.get("max_tokens", 16)
    if (
        not isinstance(max_tokens, int)
        or isinstance(max_tokens, bool)
        or not 1 <= max_tokens <= MAX_COMPLETION_TOKENS
    ):
        raise ValueError(f"'max_tokens' must be an integer from 1 to {MAX_COMPLETION_TOKENS}")
    return max(1, len(prompt) // 4), max_tokens


def _openai_error(message: str, kind: str, code: int) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "code": code}}
