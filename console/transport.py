"""A lean httpx transport for the scrape path: one keep-alive HTTP/1.1 connection, spoken
with h11 over asyncio streams.

httpx's default transport keeps a connection pool that is scanned on every request, so one
shared client costs more per scrape the more targets it serves (DESIGN.md, performance). The
collector gives each target its own `ScrapeTransport`: a single connection to a single origin,
reused while the server keeps it alive, opened again when it does not. Errors are raised as
httpx's own exception types, so callers handle them as they would any httpx call.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import Any

import h11
import httpx

MAX_BODY_BYTES = 32 * 1024 * 1024  # a metrics page larger than this is an error, not a page
_READ_CHUNK = 256 * 1024


class ScrapeTransport(httpx.AsyncBaseTransport):
    def __init__(self, *, verify: bool | ssl.SSLContext = True) -> None:
        self._verify = verify
        self._origin: tuple[bytes, str, int] | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._h11: h11.Connection | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts: dict[str, Any] = request.extensions.get("timeout", {})
        url = request.url
        origin = (url.raw_scheme, url.host, url.port or (443 if url.scheme == "https" else 80))
        if self._h11 is None or self._origin != origin or self._h11.our_state is not h11.IDLE:
            await self._connect(origin, timeouts.get("connect"))
        try:
            return await asyncio.wait_for(self._exchange(request), timeouts.get("read"))
        except TimeoutError:
            await self.aclose()
            raise httpx.ReadTimeout(f"no answer within {timeouts.get('read')} s") from None
        except h11.ProtocolError as exc:
            await self.aclose()
            raise httpx.RemoteProtocolError(f"bad HTTP from server: {exc}") from None
        except (OSError, asyncio.IncompleteReadError) as exc:
            await self.aclose()
            raise httpx.ReadError(str(exc) or type(exc).__name__) from None
        except BaseException:
            await self.aclose()
            raise

    async def _connect(self, origin: tuple[bytes, str, int], limit: float | None) -> None:
        await self.aclose()
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
        try:
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, ssl=context, limit=_READ_CHUNK), limit
            )
        except TimeoutError:
            raise httpx.ConnectTimeout(f"connect took longer than {limit} s") from None
        except OSError as exc:
            raise httpx.ConnectError(exc.strerror or str(exc)) from None
        self._origin = origin
        self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=_READ_CHUNK)

    async def _exchange(self, request: httpx.Request) -> httpx.Response:
        assert self._h11 is not None and self._reader is not None and self._writer is not None
        connection, reader, writer = self._h11, self._reader, self._writer
        body = request.content
        headers = list(request.headers.raw)  # httpx.Request has set Host already
        if body:
            headers.append((b"content-length", str(len(body)).encode()))
        data = connection.send(
            h11.Request(method=request.method, target=request.url.raw_path, headers=headers)
        )
        if body:
            data += connection.send(h11.Data(data=body))
        data += connection.send(h11.EndOfMessage())
        writer.write(data)
        response: h11.Response | None = None
        chunks: list[bytes] = []
        size = 0
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                connection.receive_data(await reader.read(_READ_CHUNK))
            elif isinstance(event, h11.Response):
                response = event
            elif isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
                size += len(event.data)
                if size > MAX_BODY_BYTES:
                    raise h11.RemoteProtocolError(f"body larger than {MAX_BODY_BYTES} bytes")
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise asyncio.IncompleteReadError(b"", None)
        assert response is not None
        if connection.our_state is h11.DONE and connection.their_state is h11.DONE:
            connection.start_next_cycle()
        else:  # the server closes after this answer: so do we, and reconnect next time
            await self.aclose()
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            content=b"".join(chunks),
            request=request,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": response.reason},
        )

    async def aclose(self) -> None:
        writer, self._writer, self._reader, self._h11 = self._writer, None, None, None
        if writer is not None:
            writer.close()
            # the socket is closed on our side either way; waiting is only politeness
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), 1.0)
