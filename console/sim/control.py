"""The simulator's control API: read every node's ground truth, pin figures, inject faults.

    GET    /sim/nodes                 {"nodes": [ground truth of every node]}
    GET    /sim/nodes/NAME            one node
    PUT    /sim/nodes/NAME            {"running": 3, "error_rate": 0.2, "fault": "hang", ...}
    DELETE /sim/nodes/NAME            clear every pin and fault
    POST   /sim/nodes/NAME/restart    the engine restarts: its counters start from zero

A pin or fault set to null is cleared. Unknown node: 404; bad JSON, unknown pin or fault,
out-of-range value: 400 with a one-line message. Nothing is applied unless all of it is valid.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from console.httpserver import HttpServer, Request, Response, Result, error_response, json_response
from console.sim.faults import Fault, FaultError, parse_fault
from console.sim.model import PIN_LIMITS, PINS


@dataclass(frozen=True, slots=True)
class Change:
    """A validated PUT: pins to set (None clears one) and, when `sets_fault`, the new fault
    (None clears it)."""

    pins: dict[str, float | None]
    sets_fault: bool = False
    fault: Fault | None = None


def parse_change(body: Any, gpus: int) -> Change:
    """A PUT body as a Change; ValueError with a one-line message when any of it is bad."""
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object of pins and/or 'fault'")
    unknown = [name for name in body if name not in PINS and name != "fault"]
    if unknown:
        raise ValueError(f"unknown pin {unknown[0]!r} (known: {', '.join(PINS)}, fault)")
    pins = {name: _pin_value(name, value) for name, value in body.items() if name in PINS}
    if "fault" not in body:
        return Change(pins)
    try:
        return Change(pins, sets_fault=True, fault=parse_fault(body["fault"], gpus))
    except FaultError as exc:
        raise ValueError(str(exc)) from None


def _pin_value(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool) or value != value:
        raise ValueError(f"pin {name!r} must be a number or null")
    limit = PIN_LIMITS.get(name)
    if value < 0 or (limit is not None and value > limit):
        bound = f"0..{limit:g}" if limit is not None else ">= 0"
        raise ValueError(f"pin {name!r} must be {bound}, not {value}")
    return float(value)


class ControlServer:
    """Serves the control API over a fleet (anything with `nodes_json`, `node_json`,
    `names`, `gpus` and the async `change`, `clear`, `restart`)."""

    def __init__(self, fleet: Any, host: str, port: int = 0) -> None:
        self.fleet = fleet
        self.server = HttpServer(self.handle, host, port)

    def handle(self, request: Request) -> Result:
        path, method = request.path, request.method
        if path == "/sim/nodes":
            if method != "GET":
                return _not_allowed("GET")
            return json_response(200, {"nodes": self.fleet.nodes_json()})
        if not path.startswith("/sim/nodes/"):
            return error_response(404, f"no such path {path}")
        name, _, action = path.removeprefix("/sim/nodes/").partition("/")
        if name not in self.fleet.names:
            return error_response(404, f"no node {name!r}")
        if action == "restart":
            if method != "POST":
                return _not_allowed("POST")
            return self._then_show(name, self.fleet.restart(name))
        if action:
            return error_response(404, f"no such path {path}")
        if method == "GET":
            return json_response(200, self.fleet.node_json(name))
        if method == "DELETE":
            return self._then_show(name, self.fleet.clear(name))
        if method == "PUT":
            try:
                change = parse_change(request.json(), self.fleet.gpus)
            except ValueError as exc:
                return error_response(400, str(exc))
            return self._then_show(name, self.fleet.change(name, change))
        return _not_allowed("GET, PUT, DELETE")

    async def _then_show(self, name: str, done: Awaitable[None]) -> Response:
        await done
        return json_response(200, self.fleet.node_json(name))


def _not_allowed(allowed: str) -> Response:
    return Response(405, b"method not allowed\n", headers=(("Allow", allowed),))
