"""The scrape transport against real servers on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from console.transport import ScrapeTransport

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
Serve = Callable[[Handler], Awaitable[str]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    servers: list[asyncio.Server] = []
    writers: list[asyncio.StreamWriter] = []

    async def start(handler: Handler) -> str:
        async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writers.append(writer)
            await handler(reader, writer)

        server = await asyncio.start_server(tracked, "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    yield start
    for writer in writers:
        writer.close()
    for server in servers:
        server.close()
        await server.wait_closed()


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


def _request(url: str, timeout: float = 2.0) -> httpx.Request:
    request = httpx.Request("GET", url + "/metrics")
    request.extensions["timeout"] = {"connect": timeout, "read": timeout}
    return request


async def test_keep_alive_reuses_one_connection(serve: Serve) -> None:
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while True:
            try:
                head = await _read_request(reader)
            except asyncio.IncompleteReadError:
                break
            assert head.startswith(b"GET /metrics HTTP/1.1\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
            await writer.drain()
        writer.close()

    url = await serve(handler)
    transport = ScrapeTransport()
    for _ in range(3):
        response = await transport.handle_async_request(_request(url))
        assert response.status_code == 200 and response.content == b"hello"
    await transport.aclose()
    assert connections == 1


async def test_connection_close_and_chunked_bodies(serve: Serve) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
        )
        await writer.drain()
        writer.close()

    url = await serve(handler)
    transport = ScrapeTransport()
    for _ in range(2):  # the second request needs a fresh connection
        response = await transport.handle_async_request(_request(url))
        assert response.content == b"abcde"
    await transport.aclose()


async def test_hanging_server_times_out(serve: Serve) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)

    url = await serve(handler)
    transport = ScrapeTransport()
    with pytest.raises(httpx.ReadTimeout):
        await transport.handle_async_request(_request(url, timeout=0.2))
    await transport.aclose()


async def test_refused_port_is_a_connect_error() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    with pytest.raises(httpx.ConnectError):
        await ScrapeTransport().handle_async_request(_request(f"http://127.0.0.1:{port}"))


async def test_garbage_instead_of_http(serve: Serve) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"\x00\xff garbage \r\n\r\n")
        await writer.drain()
        writer.close()

    url = await serve(handler)
    with pytest.raises(httpx.RemoteProtocolError):
        await ScrapeTransport().handle_async_request(_request(url))


async def test_server_closing_mid_body_is_a_read_error(serve: Serve) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort")
        await writer.drain()
        writer.close()

    url = await serve(handler)
    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        await ScrapeTransport().handle_async_request(_request(url))
