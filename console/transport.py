"""A lean httpx transport for the scrape path: one keep-alive HTTP/1.1 connection, spoken
with h11 (httpx's own HTTP/1.1 parser) from an asyncio protocol.

httpx's default transport keeps a connection pool that is scanned on every request, so one
shared client costs more per scrape the more targets it serves (DESIGN.md, performance). The
collector gives each target its own `ScrapeTransport`: a single connection to a single origin,
reused while the server keeps it alive, opened again when it does not. Bytes are fed to h11 as
they arrive and the waiting request wakes once, when the whole answer is in, so a large page
costs one task switch rather than one per socket read. Errors are raised as httpx's own
exception types, so callers handle them as they would any httpx call.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import h11
import httpx

MAX_BODY_BYTES = 32 * 1024 * 1024  # a metrics page larger than this is an error, not a page


class _Answer(asyncio.Protocol):
    """Collects one HTTP answer at a time from the connection and resolves a future with it."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.h11 = h11.Connection(h11.CLIENT)
        self.waiter: asyncio.Future[tuple[h11.Response, bytes]] | None = None
        self.response: h11.Response | None = None
        self.chunks: list[bytes] = []
        self.size = 0
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def expect(self) -> asyncio.Future[tuple[h11.Response, bytes]]:
        self.waiter = asyncio.get_running_loop().create_future()
        self.response, self.chunks, self.size = None, [], 0
        return self.waiter

    def data_received(self, data: bytes) -> None:
        self._feed(data)

    def eof_received(self) -> bool | None:
        self._feed(b"")  # a body that runs to the close ends here; a cut one is an error
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.waiter is not None and not self.waiter.done():
            reason = str(exc) if exc else "server closed the connection"
            self.waiter.set_exception(httpx.ReadError(reason))

    def _feed(self, data: bytes) -> None:
        waiter = self.waiter
        if waiter is None or waiter.done():
            if data and self.transport is not None:  # talking out of turn: not to be trusted
                self.transport.close()
            return
        try:
            self.h11.receive_data(data)
            while True:
                event = self.h11.next_event()
                if event is h11.NEED_DATA:
                    return
                if isinstance(event, h11.Response):
                    self.response = event
                elif isinstance(event, h11.Data):
                    self.chunks.append(bytes(event.data))
                    self.size += len(event.data)
                    if self.size > MAX_BODY_BYTES:
                        raise h11.RemoteProtocolError(f"body larger than {MAX_BODY_BYTES} bytes")
                elif isinstance(event, h11.EndOfMessage):
                    assert self.response is not None
                    waiter.set_result((self.response, b"".join(self.chunks)))
                    return
                elif isinstance(event, h11.ConnectionClosed):
                    raise httpx.ReadError("server closed the connection mid-answer")
        except h11.ProtocolError as exc:
            waiter.set_exception(httpx.RemoteProtocolError(f"bad HTTP from server: {exc}"))
        except httpx.ReadError as exc:
            waiter.set_exception(exc)


class ScrapeTransport(httpx.AsyncBaseTransport):
    def __init__(self, *, verify: bool | ssl.SSLContext = True) -> None:
        self._verify = verify
        self._origin: tuple[bytes, str, int] | None = None
        self._answer: _Answer | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts: dict[str, Any] = request.extensions.get("timeout", {})
        url = request.url
        origin = (url.raw_scheme, url.host, url.port or (443 if url.scheme == "https" else 80))
        answer = self._answer
        if answer is None or answer.lost or self._origin != origin or not _idle(answer.h11):
            answer = await self._connect(origin, timeouts.get("connect"))
        try:
            waiter = answer.expect()
            self._send(answer, request)
            response, body = await asyncio.wait_for(waiter, timeouts.get("read"))
        except TimeoutError:
            self._close()
            raise httpx.ReadTimeout(f"no answer within {timeouts.get('read')} s") from None
        except h11.ProtocolError as exc:  # ours: a request h11 will not send
            self._close()
            raise httpx.LocalProtocolError(str(exc)) from None
        except BaseException:
            self._close()
            raise
        connection = answer.h11
        if connection.our_state is h11.DONE and connection.their_state is h11.DONE:
            connection.start_next_cycle()
        else:  # the server closes after this answer: so do we, and reconnect next time
            self._close()
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            content=body,
            request=request,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": response.reason},
        )

    @staticmethod
    def _send(answer: _Answer, request: httpx.Request) -> None:
        connection = answer.h11
        body = request.content
        headers = list(request.headers.raw)  # httpx.Request has set Host already
        if body and b"content-length" not in (name.lower() for name, _ in headers):
            headers.append((b"content-length", str(len(body)).encode()))
        target = request.url.raw_path
        events: list[h11.Event] = [
            h11.Request(method=request.method, target=target, headers=headers)
        ]
        if body:
            events.append(h11.Data(data=body))
        events.append(h11.EndOfMessage())
        assert answer.transport is not None
        answer.transport.write(b"".join(connection.send(event) or b"" for event in events))

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
            raise httpx.ConnectTimeout(f"connect took longer than {limit} s") from None
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


def _idle(connection: h11.Connection) -> bool:
    return connection.our_state is h11.IDLE and connection.their_state is h11.IDLE
