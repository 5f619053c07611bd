"""A small HTTP/1.1 server on a bare `asyncio.Protocol`, fast enough for 1,000 simulated nodes.

The simulator and the node agent serve through it. It speaks what they need and no more:
keep-alive (HTTP/1.1 default, `Connection: close` honoured, HTTP/1.0 closes unless asked to
keep alive), request bodies with Content-Length, pipelined requests answered in order, 400 on
malformed requests, 413/431 on oversized ones, 501 for chunked bodies, TLS when given an
`ssl.SSLContext`. A handler returns a `Response`, an awaitable of one, or `HANG` to keep the
connection open and never answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

MAX_HEAD = 64 * 1024
MAX_BODY = 1024 * 1024
LINGER_S = 2.0  # after refusing a request, how long its unread body may still arrive
log = logging.getLogger("fleetdeck.http")

REASONS = {
    200: "OK",
    202: "Accepted",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]  # names in lower case
    body: bytes
    keep_alive: bool

    def json(self) -> Any:
        """The body as JSON; raises ValueError with a one-line reason."""
        try:
            return json.loads(self.body or b"null")
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"body is not JSON: {exc}") from None


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()

    def head(self, keep_alive: bool) -> bytes:
        extra = "".join(f"{name}: {value}\r\n" for name, value in self.headers)
        connection = "" if keep_alive else "Connection: close\r\n"
        return (
            f"HTTP/1.1 {self.status} {REASONS.get(self.status, 'Unknown')}\r\n"
            f"Content-Type: {self.content_type}\r\nContent-Length: {len(self.body)}\r\n"
            f"{connection}{extra}\r\n"
        ).encode("latin-1")


def json_response(status: int, payload: Any) -> Response:
    return Response(status, json.dumps(payload).encode(), "application/json")


def error_response(status: int, message: str) -> Response:
    """A JSON error with a one-line message."""
    return json_response(status, {"error": message})


class _Hang:
    """Returned by a handler: keep the connection, never answer."""


HANG = _Hang()
Result = Response | Awaitable[Response] | _Hang
Handler = Callable[[Request], Result]


class _Malformed(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class HttpProtocol(asyncio.Protocol):
    """One connection: parse requests from the buffer, answer them one at a time, in order."""

    def __init__(
        self, handler: Handler, connections: set[HttpProtocol], max_body: int = MAX_BODY
    ) -> None:
        self.handler = handler
        self.connections = connections
        self.max_body = max_body
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.busy = False  # a request is being answered (or hangs); later ones wait
        self.hanging = False
        self.refused = False  # answered a malformed request: read and drop the rest, then close
        self.task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.connections.discard(self)
        self.transport = None
        if self.task is not None:
            self.task.cancel()

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return
        self.buffer += data
        if not self.busy:
            self._process()
        elif len(self.buffer) > MAX_HEAD + self.max_body:  # a client piling up requests
            self.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _process(self) -> None:
        while not self.busy and self.transport is not None and self.buffer:
            try:
                request = self._parse()
            except _Malformed as exc:
                self._refuse(error_response(exc.status, str(exc)))
                return
            if request is None:
                return
            result = self.handler(request)
            if isinstance(result, Response):
                self._send(result, request.keep_alive)
            elif isinstance(result, _Hang):
                self.busy = self.hanging = True
            else:
                self.busy = True
                self.task = asyncio.ensure_future(self._finish(result, request.keep_alive))

    async def _finish(self, pending: Awaitable[Response], keep_alive: bool) -> None:
        try:
            response = await pending
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a handler bug must not kill the server: answer 500, log it
            log.exception("handler failed")
            response = error_response(500, f"internal error: {exc!r}")
        self.task = None
        self.busy = False
        self._send(response, keep_alive)
        if self.transport is not None and keep_alive:
            self._process()

    def _refuse(self, response: Response) -> None:
        """Answer and close gracefully: closing with the client's body still unread would
        reset the connection and could destroy the answer before the client reads it."""
        transport = self.transport
        if transport is None or not transport.can_write_eof():  # TLS cannot half-close
            self._send(response, keep_alive=False)
            return
        transport.write(response.head(keep_alive=False) + response.body)
        transport.write_eof()
        self.refused = True
        self.buffer.clear()
        asyncio.get_running_loop().call_later(LINGER_S, self.close)

    def _send(self, response: Response, keep_alive: bool) -> None:
        transport = self.transport
        if transport is None:
            return
        transport.write(response.head(keep_alive) + response.body)
        if not keep_alive:
            transport.close()
            self.transport = None

    def _parse(self) -> Request | None:
        """The next complete request in the buffer (removed from it), None when incomplete."""
        buffer = self.buffer
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > MAX_HEAD:
                raise _Malformed(431, "request head too large")
            return None
        lines = buffer[:end].decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or not parts[1]:
            raise _Malformed(400, f"malformed request line {lines[0][:80]!r}")
        method, target, version = parts
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon or not name or name != name.strip():
                raise _Malformed(400, f"malformed header line {line[:80]!r}")
            headers[name.lower()] = value.strip()
        if "transfer-encoding" in headers:
            raise _Malformed(501, "chunked request bodies are not supported; send Content-Length")
        length_text = headers.get("content-length", "0")
        if not length_text.isdigit():
            raise _Malformed(400, f"bad Content-Length {length_text[:40]!r}")
        length = int(length_text)
        if length > self.max_body:
            raise _Malformed(413, f"request body of {length} bytes is over {self.max_body}")
        body_start = end + 4
        if len(buffer) < body_start + length:
            return None
        body = bytes(buffer[body_start : body_start + length])
        del buffer[: body_start + length]
        connection = headers.get("connection", "").lower()
        # HTTP/1.1 keeps the connection unless told to close; HTTP/1.0 only when asked
        keep_alive = connection == "keep-alive" if version == "HTTP/1.0" else connection != "close"
        path, _, query = target.partition("?")
        return Request(method, path, query, headers, body, keep_alive)


class HttpServer:
    """One listening port serving `handler`; it can stop and resume listening on that port.

    With `tls`, connections are TLS (`url` says https); `max_body` bounds request bodies (413).
    """

    def __init__(
        self,
        handler: Handler,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        tls: ssl.SSLContext | None = None,
        max_body: int = MAX_BODY,
    ) -> None:
        self.handler = handler
        self.host = host
        self.port = port
        self.tls = tls
        self.max_body = max_body
        self.connections: set[HttpProtocol] = set()
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host  # an IPv6 address
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    @property
    def listening(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: HttpProtocol(self.handler, self.connections, self.max_body),
            self.host,
            self.port,
            ssl=self.tls,
            reuse_address=True,
            backlog=1024,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    def stop_listening(self) -> None:
        """Close the listening socket and drop open connections (the port refuses)."""
        if self._server is not None:
            self._server.close()
            self._server = None
        self.close_connections()

    def close_connections(self, hanging_only: bool = False) -> None:
        for connection in list(self.connections):
            if connection.hanging or not hanging_only:
                connection.close()

    async def close(self) -> None:
        self.stop_listening()
        # let the event loop run the aborted transports' callbacks
        await asyncio.sleep(0)
