"""HAProxy's runtime API as a gateway driver: `show stat`, `show map`, `set server`, `set map`.

One connection per batch of commands: the commands go on one line joined by `;`, HAProxy
answers each in turn and closes the connection. Every answer ends with an empty line, so a
batch's reply splits into one answer per command; a command that succeeded without output
(`set server`, `set map`) answers with the empty line alone. Error replies are HAProxy's own
sentences (`No such server.`), recognised below and raised as `GatewayRefused`.

The parsers are pure functions of the reply text, so they are tested on captured replies.
"""

from __future__ import annotations

import asyncio
import csv
import os
import re
import socket
from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

from console.errors import GatewayError, GatewayRefused, GatewayUnreachable
from console.fleet import GatewayConfig
from console.gateway import ADMIN_STATES, BackendState, ReplicaState, ServerState
from console.plugin import Registry

MAX_REPLY_BYTES = 32 * 1024 * 1024  # far above `show stat` of thousands of servers
READ_CHUNK = 64 * 1024
STAT_HEADER = "# "  # the CSV header line is a comment: "# pxname,svname,..."
_COUNTERS = ("scur", "qcur", "stot", "hrsp_5xx")  # what servers and backends both report

# The first word of a server's `status` column, as HAProxy 2.6 writes it (src/stats.c):
# "UP", "UP 1/3" (going down), "no check"; "DOWN", "DOWN 1/2" (going up), "DOWN (agent)";
# "DRAIN", "DRAIN 1/3", "DRAIN (agent)"; "NOLB", "NOLB 1/3" (soft-stopping, takes no new
# traffic); "MAINT", "MAINT (via BACKEND/SERVER)", "MAINT (resolution)". A server drained
# while DOWN reads "DOWN": the status shows the worse of the health and the admin state.
_CANONICAL = {
    "UP": "UP",
    "DOWN": "DOWN",
    "DRAIN": "DRAIN",
    "NOLB": "DRAIN",
    "MAINT": "MAINT",
}

# HAProxy 2.6's error replies, by how they start, and the `GatewayRefused.kind` of each
_ERRORS = (
    ("No such server.", "no_such_server"),
    ("No such backend.", "no_such_backend"),
    ("Unknown map identifier.", "no_such_map"),
    ("Key not found.", "no_such_key"),  # del map
    ("entry not found.", "no_such_key"),  # set map
    ("Permission denied", "permission_denied"),
    ("Unknown command", "unknown_command"),
)

# what may stand as one argument of a runtime API command: no spaces, `;` or escapes
_ARGUMENT = re.compile(r"[^\s;\\]+")


# --- parsing: pure functions of the reply text -------------------------------------------


def split_answers(reply: str) -> tuple[list[str], str]:
    """The complete answers of a batch's reply (without their closing empty line), and what
    follows the last one: text of an answer cut off, or "" when the reply ended cleanly."""
    answers: list[str] = []
    current: list[str] = []
    lines = reply.split("\n")
    for line in lines[:-1]:
        if line:
            current.append(line)
        else:
            answers.append("\n".join(current))
            current = []
    rest = [*current, lines[-1]] if lines[-1] else current
    return answers, "\n".join(rest)


def canonical_state(status: str) -> str:
    """UP, DOWN, DRAIN or MAINT for a server's `status` column; ValueError when unknown."""
    if status == "no check":  # up, and not health-checked
        return "UP"
    try:
        return _CANONICAL[status.split(" ", 1)[0]]
    except KeyError:
        raise ValueError(f"unknown server status {status!r}") from None


def _count(row: Mapping[str, str], column: str) -> int | None:
    value = row.get(column, "")
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"column {column}: not an integer: {value!r}") from None


def parse_stat(
    answer: str,
) -> tuple[dict[tuple[str, str], ServerState], dict[str, BackendState]]:
    """Servers and backends of a `show stat` answer, read by column name. ValueError when the
    answer is not the CSV HAProxy writes (no header, rows of another width, unknown status)."""
    if not answer.startswith(STAT_HEADER):
        raise ValueError(f"show stat: the answer has no CSV header: {answer[:60]!r}")
    lines = answer[len(STAT_HEADER) :].split("\n")
    header, *rows = csv.reader(lines)
    for needed in ("pxname", "svname", "status"):
        if needed not in header:
            raise ValueError(f"show stat: no {needed!r} column")
    servers: dict[tuple[str, str], ServerState] = {}
    backends: dict[str, BackendState] = {}
    for number, values in enumerate(rows, start=2):
        if not values:
            continue
        if len(values) != len(header):
            raise ValueError(
                f"show stat line {number}: {len(values)} fields, the header has {len(header)}"
            )
        row = dict(zip(header, values, strict=True))
        proxy, name, status = row["pxname"], row["svname"], row["status"]
        if name == "FRONTEND":
            continue
        try:
            counters = {column: _count(row, column) for column in _COUNTERS}
            if name == "BACKEND":
                backends[proxy] = BackendState(name=proxy, status=status, **counters)
                continue
            # "* L7OK": a check is running now; its last result is what counts
            check_status = row.get("check_status", "").removeprefix("* ")
            servers[(proxy, name)] = ServerState(
                backend=proxy,
                server=name,
                state=canonical_state(status),
                status=status,
                weight=_count(row, "weight"),
                check_status=check_status or None,
                **counters,
            )
        except ValueError as exc:
            raise ValueError(f"show stat line {number} ({proxy}/{name}): {exc}") from None
    return servers, backends


def parse_map(answer: str) -> dict[str, str]:
    """The entries of a `show map FILE` answer: lines `0xADDRESS KEY VALUE`. A key listed
    twice keeps its first value, the one HAProxy's lookup finds."""
    entries: dict[str, str] = {}
    for number, line in enumerate(answer.split("\n") if answer else (), start=1):
        parts = line.split(" ", 2)
        if len(parts) != 3 or not parts[0].startswith("0x"):
            raise ValueError(f"line {number} is not '0xADDRESS KEY VALUE': {line[:80]!r}")
        entries.setdefault(parts[1], parts[2])
    return entries


# --- the client ---------------------------------------------------------------------------


def _argument(endpoint: str, what: str, value: str) -> str:
    if not _ARGUMENT.fullmatch(value):
        raise GatewayError(endpoint, f"{what} {value!r} cannot be sent to the runtime API")
    return value


async def _connect(endpoint: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    parts = urlsplit(endpoint)
    if parts.scheme == "unix" and parts.path:
        return await asyncio.open_unix_connection(parts.path)
    if parts.scheme == "tcp" and parts.hostname and parts.port:
        return await asyncio.open_connection(parts.hostname, parts.port)
    raise GatewayError(endpoint, "expected tcp://HOST:PORT or unix:///path")


async def _read_reply(endpoint: str, reader: asyncio.StreamReader) -> bytes:
    reply = bytearray()
    while chunk := await reader.read(READ_CHUNK):
        reply += chunk
        if len(reply) > MAX_REPLY_BYTES:
            raise GatewayError(endpoint, f"reply larger than {MAX_REPLY_BYTES} bytes")
    return bytes(reply)


class HaproxyDriver:
    """Reads and changes one HAProxy replica per call, each call one bounded connection."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout

    async def exchange(self, endpoint: str, commands: Sequence[str]) -> list[str]:
        """One answer per command, in order. Raises GatewayUnreachable when the replica
        cannot be reached, does not answer in time or closes before answering every command."""
        try:
            async with asyncio.timeout(self.timeout):
                reader, writer = await _connect(endpoint)
                try:
                    writer.write((";".join(commands) + "\n").encode())
                    await writer.drain()
                    reply = await _read_reply(endpoint, reader)
                finally:
                    writer.close()
        except TimeoutError:
            raise GatewayUnreachable(endpoint, f"no answer within {self.timeout:g} s") from None
        except OSError as exc:
            raise GatewayUnreachable(endpoint, f"runtime API: {_reason(exc)}") from None
        text = reply.decode("utf-8", errors="replace")
        answers, rest = split_answers(text)
        if len(answers) < len(commands):
            raise GatewayUnreachable(
                endpoint,
                f"connection closed after {len(answers)} of {len(commands)} answers"
                + (f" (cut off: {rest[:60]!r})" if rest else ""),
            )
        if len(answers) > len(commands) or rest:
            raise GatewayRefused(
                endpoint,
                f"{len(commands)} commands drew {len(answers)} answers: {text[:80]!r}",
                "bad_reply",
            )
        return answers

    async def read(self, endpoint: str, maps: tuple[str, ...]) -> ReplicaState:
        files = [_argument(endpoint, "map file", name) for name in maps]
        commands = ["show stat", *(f"show map {name}" for name in files)]
        stat, *map_answers = await self.exchange(endpoint, commands)
        _raise_on_error(endpoint, "show stat", stat)
        try:
            servers, backends = parse_stat(stat)
        except ValueError as exc:
            raise GatewayRefused(endpoint, str(exc), "bad_reply") from None
        entries = {}
        for name, answer in zip(files, map_answers, strict=True):
            _raise_on_error(endpoint, f"show map {name}", answer)
            try:
                entries[name] = parse_map(answer)
            except ValueError as exc:
                raise GatewayRefused(endpoint, f"show map {name}: {exc}", "bad_reply") from None
        return ReplicaState(endpoint=endpoint, servers=servers, backends=backends, maps=entries)

    async def set_server_state(self, endpoint: str, backend: str, server: str, state: str) -> None:
        try:
            admin = ADMIN_STATES[state]
        except KeyError:
            raise GatewayError(
                endpoint, f"cannot set {backend}/{server} to {state!r}: not one of UP, DRAIN, MAINT"
            ) from None
        await self._change(
            endpoint, f"set server {self._server(endpoint, backend, server)} state {admin}"
        )

    async def set_server_weight(
        self, endpoint: str, backend: str, server: str, weight: int
    ) -> None:
        await self._change(
            endpoint, f"set server {self._server(endpoint, backend, server)} weight {weight:d}"
        )

    async def set_map(self, endpoint: str, map_file: str, key: str, value: str) -> None:
        arguments = (
            _argument(endpoint, "map file", map_file),
            _argument(endpoint, "map key", key),
            _argument(endpoint, "map value", value),
        )
        await self._change(endpoint, "set map " + " ".join(arguments))

    @staticmethod
    def _server(endpoint: str, backend: str, server: str) -> str:
        return f"{_argument(endpoint, 'backend', backend)}/{_argument(endpoint, 'server', server)}"

    async def _change(self, endpoint: str, command: str) -> None:
        """A command that answers nothing when it succeeded."""
        (answer,) = await self.exchange(endpoint, [command])
        _raise_on_error(endpoint, command, answer)
        if answer:
            first_line = answer.split("\n", 1)[0]
            raise GatewayRefused(endpoint, f"{command}: {first_line}", "refused")


def _reason(exc: OSError) -> str:
    """`connection refused`, `no such file or directory`, ... (asyncio's own texts name the
    address again, which the endpoint already does)."""
    if isinstance(exc, socket.gaierror) or not exc.errno:
        return str(exc) or type(exc).__name__
    return os.strerror(exc.errno).lower()


def refusal(endpoint: str, command: str, answer: str) -> GatewayRefused | None:
    """The error `answer` is, as an exception naming the replica and the command; None when
    the answer is not one of HAProxy's known error replies."""
    for start, kind in _ERRORS:
        if answer.startswith(start):
            return GatewayRefused(endpoint, f"{command}: {start}", kind)
    return None


def _raise_on_error(endpoint: str, command: str, answer: str) -> None:
    error = refusal(endpoint, command, answer)
    if error is not None:
        raise error


def _haproxy_driver(config: GatewayConfig) -> HaproxyDriver:
    return HaproxyDriver(timeout=config.refresh.timeout)


def register(registry: Registry) -> None:
    registry.add_gateway("haproxy", _haproxy_driver)
