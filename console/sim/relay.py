"""How the sim gateway's proxy hands a request to a server, and what it answers in HAProxy
2.6's words when none can take it or the server is too slow."""

from __future__ import annotations

import logging

import httpx

from console.httpserver import Request, Response

log = logging.getLogger("fleetdeck.sim.gateway")

UPSTREAM_TIMEOUT = httpx.Timeout(30.0, connect=1.0)  # HAProxy's `timeout server`, `connect`
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding"}
    | {"upgrade", "host", "content-length", "content-type"}
)
NO_SERVER = Response(  # what HAProxy 2.6 answers when no server can take a request
    503,
    b"<html><body><h1>503 Service Unavailable</h1>\n"
    b"No server is available to handle this request.\n</body></html>\n",
    "text/html",
    (("Cache-Control", "no-cache"),),
)
SERVER_TIMEOUT = Response(
    504,
    b"<html><body><h1>504 Gateway Time-out</h1>\n"
    b"The server didn't respond in time.\n</body></html>\n",
    "text/html",
    (("Cache-Control", "no-cache"),),
)


def upstream_client() -> httpx.AsyncClient:
    """The client a replica relays with, bounded as HAProxy's timeouts bound it."""
    return httpx.AsyncClient(timeout=UPSTREAM_TIMEOUT, trust_env=False)


async def relay(
    client: httpx.AsyncClient, base_url: str, request: Request, server: str
) -> Response:
    """`request` sent to the server at `base_url` (`server` names it in the log), and its
    answer, without the hop-by-hop headers either way."""
    target = base_url + request.path
    if request.query:
        target += "?" + request.query
    headers = [(name, value) for name, value in request.headers.items() if name not in HOP_BY_HOP]
    try:
        answer = await client.request(request.method, target, content=request.body, headers=headers)
    except httpx.TimeoutException:
        return SERVER_TIMEOUT
    except httpx.TransportError as exc:  # HAProxy answers 503 when it cannot reach one
        log.info("%s: %s", server, exc)
        return NO_SERVER
    return Response(
        answer.status_code,
        answer.content,
        answer.headers.get("content-type", "application/octet-stream"),
        tuple((name, value) for name, value in answer.headers.items() if name not in HOP_BY_HOP),
    )
