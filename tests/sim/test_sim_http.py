"""The simulator's HTTP/1.1 server, spoken to over raw sockets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from console.httpserver import HANG, HttpServer, Request, Response, Result

WAIT = 5.0


def handler(request: Request) -> Result:
    if request.path == "/hang":
        return HANG
    if request.path == "/later":
        return later(request)
    if request.path == "/boom":
        return later(request, fail=True)
    body = f"{request.method} {request.path} {request.query} {len(request.body)}".encode()
    return Response(200, body + request.body)


async def later(request: Request, fail: bool = False) -> Response:
    await asyncio.sleep(0.05)
    if fail:
        raise RuntimeError("handler bug")
    return Response(200, b"later")


@pytest.fixture
async def server() -> AsyncIterator[HttpServer]:
    running = HttpServer(handler)
    await running.start()
    yield running
    await running.close()


async def connect(server: HttpServer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(server.host, server.port)


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.lower()] = value.strip()
    body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), WAIT)
    return status, headers, body


async def closed(reader: asyncio.StreamReader) -> bool:
    return await asyncio.wait_for(reader.read(1), WAIT) == b""


async def test_keep_alive_and_pipelined_requests_are_answered_in_order(
    server: HttpServer,
) -> None:
    reader, writer = await connect(server)
    writer.write(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await read_response(reader))[2] == b"GET /a  0"
    writer.write(b"GET /later HTTP/1.1\r\nHost: x\r\n\r\nGET /b?x=1 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await read_response(reader))[2] == b"later"
    assert (await read_response(reader))[2] == b"GET /b x=1 0"
    writer.close()


async def test_request_bodies_are_read_by_content_length(server: HttpServer) -> None:
    reader, writer = await connect(server)
    writer.write(b"POST /p HTTP/1.1\r\nContent-Length: 11\r\n\r\nhello")
    await asyncio.sleep(0.02)  # the body arrives in two pieces
    writer.write(b" world")
    status, _headers, body = await read_response(reader)
    assert (status, body) == (200, b"POST /p  11hello world")
    writer.close()


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /a HTTP/1.1\r\nConnection: close\r\n\r\n",
        b"GET /a HTTP/1.0\r\n\r\n",
    ],
)
async def test_connection_close_is_honoured(server: HttpServer, request_bytes: bytes) -> None:
    reader, writer = await connect(server)
    writer.write(request_bytes)
    status, headers, _body = await read_response(reader)
    assert status == 200 and headers["connection"] == "close"
    assert await closed(reader)


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"NONSENSE\r\n\r\n", 400),
        (b"GET /a HTTP/1.1\r\nno colon here\r\n\r\n", 400),
        (b"POST /a HTTP/1.1\r\nContent-Length: -3\r\n\r\n", 400),
        (b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
        (b"POST /a HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n", 413),
    ],
)
async def test_malformed_requests_get_an_error_and_a_close(
    server: HttpServer, request_bytes: bytes, status: int
) -> None:
    reader, writer = await connect(server)
    writer.write(request_bytes)
    answer, _headers, body = await read_response(reader)
    assert answer == status and body.startswith(b'{"error": ')
    assert await closed(reader)


async def test_a_failing_handler_answers_500_and_keeps_serving(server: HttpServer) -> None:
    reader, writer = await connect(server)
    writer.write(b"GET /boom HTTP/1.1\r\n\r\nGET /a HTTP/1.1\r\n\r\n")
    assert (await read_response(reader))[0] == 500
    assert (await read_response(reader))[0] == 200
    writer.close()


async def test_a_hanging_request_is_never_answered_until_dropped(server: HttpServer) -> None:
    reader, writer = await connect(server)
    writer.write(b"GET /hang HTTP/1.1\r\n\r\n")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.read(1), 0.2)
    server.close_connections(hanging_only=True)
    assert await closed(reader)


async def test_stop_and_resume_listening_on_the_same_port(server: HttpServer) -> None:
    port = server.port
    server.stop_listening()
    with pytest.raises(OSError):
        await connect(server)
    await server.start()
    assert server.port == port
    reader, writer = await connect(server)
    writer.write(b"GET /a HTTP/1.1\r\n\r\n")
    assert (await read_response(reader))[0] == 200
    writer.close()
