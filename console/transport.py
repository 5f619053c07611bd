"""A lean httpx transport for the scrape path: one keep-alive HTTP/1.1 connection, read with
`console.http1` from an asyncio protocol.

httpx's default transport keeps a connection pool that is scanned on every request, so one
shared client costs more per scrape the more targets it serves (DESIGN.md, performance). The
collector gives each target its own `ScrapeTransport`: a single connection to a single origin,
reused while the server keeps it alive, opened again when it does not. Bytes are taken as
they arrive and the waiting request wakes once, when the whole answer is in, so a large page
costs one task switch rather than one per socket read. Errors are raised as httpx's own
exception types, so callers handle them as they would any httpx call.

Timeouts (the request's `timeout` extension): `connect` bounds opening a connection and `read`
bounds the whole exchange, from the start of the request to the last byte of the answer
(connecting included), with one timer per request.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import threading
from typing import Any, NamedTuple

import httpx

from console.http1 import Head, ProtocolError, ResponseReader

MAX_BODY_BYTES = 32 * 1024 * 1024  # a metrics page larger than this is an error, not a page
READ_BUFFER_BYTES = 256 * 1024

_read_buffers = threading.local()


def _read_buffer() -> memoryview:
    """The calling thread's socket read buffer, shared by its connections: asyncio fills it
    and calls `buffer_updated` in one step, and the reader copies the bytes out at once.
    Reading into a buffer kept for good spares a fresh large allocation per read."""
    buffer: memoryview | None = getattr(_read_buffers, "buffer", None)
    if buffer is None:
        buffer = _read_buffers.buffer = memoryview(bytearray(READ_BUFFER_BYTES))
    return buffer


class _Answer(asyncio.BufferedProtocol):
    """Collects one HTTP answer at a time from the connection and resolves a future with it."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = _read_buffer()
        self.waiter: asyncio.Future[tuple[Head, bytes]] | None = None
        self.reader: ResponseReader | None = None
        self.lost = False
        self.reusable = False  # the last answer left the connection ready for another request

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def expect(self, loop: asyncio.AbstractEventLoop) -> asyncio.Future[tuple[Head, bytes]]:
        self.waiter = loop.create_future()
        self.reader = ResponseReader(MAX_BODY_BYTES)
        self.reusable = False
        return self.waiter

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.buffer

    def buffer_updated(self, nbytes: int) -> None:
        reader, waiter = self.reader, self.waiter
        if reader is None or waiter is None or waiter.done():
            if self.transport is not None:  # talking out of turn: not to be trusted
                self.transport.close()
            return
        try:
            done = reader.feed(self.buffer[:nbytes])  # copied out before the buffer is reused
        except ProtocolError as exc:
            waiter.set_exception(httpx.RemoteProtocolError(f"bad HTTP from server: {exc}"))
            return
        if done:
            self._answered(reader, waiter)

    def eof_received(self) -> bool | None:
        reader, waiter = self.reader, self.waiter
        if reader is not None and waiter is not None and not waiter.done():
            try:
                reader.end()  # a body that runs to the close ends here; a cut one is an error
            except ProtocolError as exc:
                waiter.set_exception(httpx.ReadError(str(exc)))
            else:
                self._answered(reader, waiter)
        return None

    def _answered(self, reader: ResponseReader, waiter: asyncio.Future[tuple[Head, bytes]]) -> None:
        assert reader.head is not None
        # the request holds the answer now: keep nothing of it here until the next
        self.reader, self.waiter = None, None
        self.reusable = reader.head.keep_alive and not self.lost
        waiter.set_result((reader.head, reader.body))

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost, self.reusable = True, False
        if self.waiter is not None and not self.waiter.done():
            reason = str(exc) if exc else "server closed the connection"
            self.waiter.set_exception(httpx.ReadError(reason))

    def time_out(self, limit: float) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(httpx.ReadTimeout(f"no answer within {limit:g} s"))


class _Prepared(NamedTuple):
    """A request as the bytes sent, built once and reused while the httpx request stays the
    same (a scraper sends one request again and again)."""

    url: httpx.URL  # immutable: compared by identity
    method: str
    headers: list[tuple[bytes, bytes]]
    body: bytes
    origin: tuple[bytes, str, int]
    wire: bytes

    def serves(self, request: httpx.Request) -> bool:
        return (
            request.url is self.url
            and request.method == self.method
            and request.headers.raw == self.headers
            and request.content == self.body
        )


class ScrapeTransport(httpx.AsyncBaseTransport):
    def __init__(self, *, verify: bool | ssl.SSLContext = True) -> None:
        self._verify = verify
        self._origin: tuple[bytes, str, int] | None = None
        self._answer: _Answer | None = None
        self._prepared: _Prepared | None = None

    async def fetch(self, request: httpx.Request) -> tuple[Head, bytes]:
        """The answer's head and body, with no httpx.Response built around them: the
        collector's hot path reads only the status and the body."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        timeouts: dict[str, Any] = request.extensions.get("timeout", {})
        read_limit: float | None = timeouts.get("read")
        prepared = self._prepared
        if prepared is None or not prepared.serves(request):
            prepared = self._prepared = _prepare(request)
        answer = self._answer
        if answer is None or not answer.reusable or self._origin != prepared.origin:
            connect_limit: float | None = timeouts.get("connect")
            if read_limit is not None and (connect_limit is None or read_limit < connect_limit):
                connect_limit = read_limit
            answer = await self._connect(prepared.origin, connect_limit)
        waiter = answer.expect(loop)
        timer = None
        if read_limit is not None:
            timer = loop.call_at(started + read_limit, answer.time_out, read_limit)
        try:
            assert answer.transport is not None
            answer.transport.write(prepared.wire)
            head, body = await waiter
        except BaseException:
            self._close()
            raise
        finally:
            if timer is not None:
                timer.cancel()
        if not answer.reusable:  # the server closes after this answer: so do we
            self._close()
        return head, body

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response, body = await self.fetch(request)
        # the body as a stream, as any transport hands it over (no headers added), read at once
        answered = httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=httpx.ByteStream(body),
            request=request,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": response.reason.encode()},
        )
        answered.read()
        return answered

    async def _connect(self, origin: tuple[bytes, str, int], limit: float | None) -> _Answer:
        self._close()
        scheme, host, port = origin
        context: ssl.SSLContext | None = None
        if scheme == b"https":
            if isinstance(self._verify, ssl.SSLContext):
                context = self._verify
            else:
                context = ssl.create_default_context()
                if not self._verify:
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
        loop = asyncio.get_running_loop()
        try:
            _, answer = await asyncio.wait_for(
                loop.create_connection(_Answer, host, port, ssl=context), limit
            )
        except TimeoutError:
            raise httpx.ConnectTimeout(f"connect took longer than {limit:g} s") from None
        except OSError as exc:
            raise httpx.ConnectError(exc.strerror or str(exc)) from None
        self._origin, self._answer = origin, answer
        return answer

    def _close(self) -> None:
        answer, self._answer = self._answer, None
        if answer is not None and answer.transport is not None:
            answer.transport.close()

    async def aclose(self) -> None:
        self._close()


def _prepare(request: httpx.Request) -> _Prepared:
    url = request.url
    origin = (url.raw_scheme, url.host, url.port or (443 if url.scheme == "https" else 80))
    body = request.content
    raw_headers = request.headers.raw  # httpx.Request has set Host already
    headers = list(raw_headers)
    if body and b"content-length" not in (name.lower() for name, _ in headers):
        headers.append((b"content-length", str(len(body)).encode()))
    for name, value in headers:
        if b"\r" in name + value or b"\n" in name + value or b":" in name:
            raise httpx.LocalProtocolError(f"header {name[:40]!r} cannot be sent")
    head = b"%s %s HTTP/1.1\r\n" % (request.method.encode("ascii"), url.raw_path)
    head += b"".join(b"%s: %s\r\n" % pair for pair in headers)
    return _Prepared(url, request.method, raw_headers, body, origin, head + b"\r\n" + body)


def describe(exc: httpx.HTTPError) -> str:
    """A one-line reason a person understands ('cannot connect: connection refused'), not a
    class name, nor a connection pool's 'all connection attempts failed'."""
    text = str(exc).strip()
    if isinstance(exc, httpx.ConnectError):
        cause: BaseException | None = exc
        while cause is not None:  # the system's own reason, where the error chain keeps it
            number = getattr(cause, "errno", None)
            if isinstance(number, int) and number > 0:
                return f"cannot connect: {os.strerror(number).lower()}"
            cause = cause.__cause__ or cause.__context__
        return f"cannot connect: {text.lower() or 'connection failed'}"
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"bad HTTP answer: {text}"
    if isinstance(exc, httpx.ReadError):
        return f"connection lost: {text}"
    if isinstance(exc, httpx.TimeoutException):
        return f"timeout: {text}" if text else "timeout"
    return f"{type(exc).__name__}: {text}"
