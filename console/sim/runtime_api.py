"""The sim gateway's runtime API: the part of HAProxy 2.6's CLI the console uses, over TCP.

    show stat [<proxy> <type> <sid>]      the stats CSV, with HAProxy's header and columns
    show map [<map>]                      the maps, or one map's entries
    set server <backend>/<server> state ready|drain|maint
    set server <backend>/<server> weight <weight>[%]
    set map <map> <key> <value>
    help [<command>]

As HAProxy's non-interactive CLI does, one connection takes a line of `;`-separated commands,
answers each (its output, then an empty line) and closes. Replies, errors included, are worded
as HAProxy 2.6.12 words them; an unknown command lists what the sim knows, ranked the way
HAProxy ranks its suggestions. Options of `show stat` other than the filter (`typed`, `json`)
and the other `set server` settings (`addr`, `health`, ...) are not simulated.
"""

from __future__ import annotations

import asyncio
import re
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

IDLE_TIMEOUT_S = 10.0  # HAProxy's default `stats timeout`
MAX_LINE = 64 * 1024

# `show stat`: the header HAProxy 2.6 prints, its columns in order (each line ends with a comma)
STAT_HEADER = (
    "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,"
    "wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,"
    "throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,"
    "check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,"
    "req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,"
    "lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,agent_code,"
    "agent_duration,check_desc,agent_desc,check_rise,check_fall,check_health,agent_rise,"
    "agent_fall,agent_health,addr,cookie,mode,algo,conn_rate,conn_rate_max,conn_tot,"
    "intercepted,dcon,dses,wrew,connect,reuse,cache_lookups,cache_hits,srv_icur,src_ilim,"
    "qtime_max,ctime_max,rtime_max,ttime_max,eint,idle_conn_cur,safe_conn_cur,used_conn_cur,"
    "need_conn_est,uweight,agg_server_status,agg_server_check_status,agg_check_status,-,"
    "ssl_sess,ssl_reused_sess,ssl_failed_handshake,h2_headers_rcvd,h2_data_rcvd,"
    "h2_settings_rcvd,h2_rst_stream_rcvd,h2_goaway_rcvd,h2_detected_conn_protocol_errors,"
    "h2_detected_strm_protocol_errors,h2_rst_stream_resp,h2_goaway_resp,h2_open_connections,"
    "h2_backend_open_streams,h2_total_connections,h2_backend_total_streams,"
    "h1_open_connections,h1_open_streams,h1_total_connections,h1_total_streams,h1_bytes_in,"
    "h1_bytes_out,h1_spliced_bytes_in,h1_spliced_bytes_out,\n"
)
STAT_COLUMNS = STAT_HEADER[2:-2].split(",")
FRONTEND, BACKEND, SERVER = 0, 1, 2  # the `type` column; `show stat`'s filter takes 1 << type
# What an idle HAProxy 2.6 prints in each kind of row after pxname and svname (captured from
# the real one); a row fills in its own figures.
_TEMPLATES = {
    FRONTEND: (
        ",,0,0,9985,0,0,0,0,0,0,,,,,OPEN,,,,,,,,,1,2,0,,,,0,0,0,0,,,,0,0,0,0,0,0,,0,0,0,,,0,"
        "0,0,0,,,,,,,,,,,,,,,,,,,,,http,,0,0,0,0,0,0,0,,,0,0,,,,,,,0,,,,,,,,,-,0,0,0,0,0,0,0,"
        "0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0"
    ),
    SERVER: (
        "0,0,0,0,,0,0,0,,0,,0,0,0,0,UP,1,1,0,0,0,1,0,,1,3,1,,0,,2,0,,0,L7OK,200,1,0,0,0,0,0,"
        "0,,,,0,0,0,,,,,-1,,,0,0,0,0,,,,Layer7 check passed,,2,3,4,,,,,,http,,,,,,,,0,0,0,,,"
        "0,,0,0,0,0,0,0,0,0,1,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,"
    ),
    BACKEND: (
        "0,0,0,0,1,0,0,0,0,0,,0,0,0,0,UP,1,1,0,,0,1,0,,1,3,0,,0,,1,0,,0,,,,0,0,0,0,0,0,,,,0,"
        "0,0,0,0,0,0,-1,,,0,0,0,0,,,,,,,,,,,,,,http,leastconn,,,,,,,0,0,0,0,0,,,0,0,0,0,0,,,,"
        ",1,0,0,0,-,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0"
    ),
}
_COLUMN = {name: index for index, name in enumerate(STAT_COLUMNS)}

NO_SUCH_BACKEND = "No such backend.\n"
NO_SUCH_SERVER = "No such server.\n"
NO_SUCH_PROXY = "No such proxy.\n"
REQUIRE_BACKEND_SERVER = "Require 'backend/server'.\n"
SET_SERVER_USAGE = (
    "usage: set server <backend>/<server> addr | agent | agent-addr | agent-port | agent-send | "
    "check-addr | check-port | fqdn | health | ssl | state | weight\n"
)
BAD_STATE = "'set server <srv> state' expects 'ready', 'drain' and 'maint'.\n"
WEIGHT_MISSING = "Require <weight> or <weight%>.\n"
WEIGHT_GARBAGE_BEFORE = "Empty weight string empty or preceded by garbage"  # sic, no newline
WEIGHT_GARBAGE_AFTER = "Trailing garbage in weight string"  # no newline either
WEIGHT_RANGE = "Absolute weight can only be between 0 and 256 inclusive.\n"
WEIGHT_NEGATIVE = "Relative weight must be positive.\n"
UNKNOWN_MAP = "Unknown map identifier. Please use #<id> or <file>.\n"
SET_MAP_ARGUMENTS = "'set map' expects three parameters: map identifier, key and value.\n"
ENTRY_NOT_FOUND = "entry not found.\n"
REF_NOT_FOUND = "key or pattern not found.\n"
MAX_WEIGHT = 256

# Unknown commands: the sim's commands (HAProxy's usage text) and the lines HAProxy always adds
Keyword = tuple[tuple[str, ...], str, str]  # words, usage, description
_KEYWORDS: tuple[Keyword, ...] = (
    (("set", "map"), "set map <map> [<key>|#<ref>] <value>", "modify a map entry"),
    (
        ("set", "server"),
        "set server <bk>/<srv> [opts]",
        "change a server's state, weight, address or ssl",
    ),
    (("show", "map"), "show map [@ver] [map]", "report available maps or dump a map's contents"),
    (
        ("show", "stat"),
        "show stat [desc|json|no-maint|typed|up]*",
        "report counters for each proxy and server",
    ),
)
_ALWAYS = (
    ("help [<command>]", "list matching or all commands"),
    ("prompt", "toggle interactive mode with prompt"),
    ("quit", "disconnect"),
)
_USAGE_WIDTH = 40
_MAX_MATCHES = 5
_PREFIX_WORDS = 5


@dataclass(frozen=True, slots=True)
class StatRow:
    """One row of `show stat`: the columns it fills (by name) over its kind's template."""

    proxy: str
    name: str  # FRONTEND, BACKEND or the server's name
    kind: int  # FRONTEND, BACKEND or SERVER
    iid: int  # the proxy's id
    sid: int  # the server's id in its backend; 0 for frontends and backends
    values: Mapping[str, object]

    def csv(self) -> str:
        fields = [self.proxy, self.name, *_TEMPLATES[self.kind].split(",")]
        fields[_COLUMN["iid"]], fields[_COLUMN["sid"]] = str(self.iid), str(self.sid)
        fields[_COLUMN["type"]] = str(self.kind)
        for column, value in self.values.items():
            fields[_COLUMN[column]] = "" if value is None else str(value)
        return ",".join(fields) + ",\n"


class Runtime(Protocol):
    """What the runtime API reads and changes: one gateway replica."""

    @property
    def maps(self) -> Mapping[str, Mapping[str, str]]:
        """Map file -> key -> value, in the order they were declared."""
        ...

    def has_backend(self, backend: str) -> bool: ...

    def has_server(self, backend: str, server: str) -> bool: ...

    def initial_weight(self, backend: str, server: str) -> int: ...

    def set_state(self, backend: str, server: str, admin: str) -> None: ...

    def set_weight(self, backend: str, server: str, weight: int) -> None: ...

    def set_map(self, map_file: str, key: str, value: str) -> None: ...

    def stat_rows(self) -> Sequence[StatRow]: ...


def answer_line(runtime: Runtime, line: str) -> str:
    """The answer to one line: each `;`-separated command's output, then an empty line."""
    return "".join(answer_command(runtime, command.split()) + "\n" for command in line.split(";"))


def answer_command(runtime: Runtime, words: Sequence[str]) -> str:
    verb = tuple(words[:2])
    if verb == ("show", "stat"):
        return _show_stat(runtime, words)
    if verb == ("show", "map"):
        return _show_map(runtime, words)
    if verb == ("set", "server"):
        return _set_server(runtime, words)
    if verb == ("set", "map"):
        return _set_map(runtime, words)
    if words and words[0] == "help":
        return command_list(words[1:], "The following commands are valid at this level:\n")
    return unknown_command(words)


def _show_stat(runtime: Runtime, words: Sequence[str]) -> str:
    rows = runtime.stat_rows()
    if len(words) >= 5:  # show stat <proxy> <type> <sid>: only those rows
        iid = next((row.iid for row in rows if row.proxy == words[2]), None)
        iid = _atoi(words[2]) if iid is None else iid
        if iid == 0:
            return NO_SUCH_PROXY
        kinds, sid = _atoi(words[3]), _atoi(words[4])
        rows = [
            row
            for row in rows
            if iid in (-1, row.iid)
            and kinds & (1 << row.kind)
            and (row.kind != SERVER or sid in (-1, row.sid))
        ]
    return STAT_HEADER + "".join(row.csv() for row in rows)


def _find_map(runtime: Runtime, name: str) -> str | None:
    """A map by file name or `#<id>` (ids count from 1 in declaration order)."""
    if name in runtime.maps:
        return name
    files = list(runtime.maps)
    if name.startswith("#") and name[1:].isdigit() and 1 <= int(name[1:]) <= len(files):
        return files[int(name[1:]) - 1]
    return None


def entry_ref(map_file: str, key: str) -> str:
    """The address HAProxy shows for a map entry; the sim's is stable per map and key."""
    return f"0x{0x55D000000000 + (zlib.crc32(f'{map_file} {key}'.encode()) & 0xFFFFFFF0):x}"


def _show_map(runtime: Runtime, words: Sequence[str]) -> str:
    if len(words) < 3:
        lines = ["# id (file) description\n"]
        for number, (map_file, entries) in enumerate(runtime.maps.items(), start=1):
            lines.append(
                f"{number} ({map_file}) pattern loaded from file '{map_file}' used by map at "
                f"file 'sim' line {number}. curr_ver=0 next_ver=0 entry_cnt={len(entries)}\n"
            )
        return "".join(lines)
    found = _find_map(runtime, words[2])
    if found is None:
        return UNKNOWN_MAP
    entries = runtime.maps[found]
    return "".join(f"{entry_ref(found, key)} {key} {value}\n" for key, value in entries.items())


def _set_map(runtime: Runtime, words: Sequence[str]) -> str:
    if len(words) < 5:
        return SET_MAP_ARGUMENTS
    map_file = _find_map(runtime, words[2])
    if map_file is None:
        return UNKNOWN_MAP
    key, value = words[3], words[4]
    entries = runtime.maps[map_file]
    if key.startswith("#"):  # an entry by the address `show map` gave
        key = next((each for each in entries if entry_ref(map_file, each) == key[1:]), "")
        if not key:
            return REF_NOT_FOUND
    elif key not in entries:
        return ENTRY_NOT_FOUND
    runtime.set_map(map_file, key, value)
    return ""


def _set_server(runtime: Runtime, words: Sequence[str]) -> str:
    backend, slash, server = (words[2] if len(words) > 2 else "").partition("/")
    if not (backend and slash and server):
        return REQUIRE_BACKEND_SERVER
    if not runtime.has_backend(backend):
        return NO_SUCH_BACKEND
    if not runtime.has_server(backend, server):
        return NO_SUCH_SERVER
    setting = words[3] if len(words) > 3 else ""
    value = words[4] if len(words) > 4 else ""
    if setting == "state":
        if value not in ("ready", "drain", "maint"):
            return BAD_STATE
        runtime.set_state(backend, server, value)
        return ""
    if setting == "weight":
        weight = parse_weight(value, runtime.initial_weight(backend, server))
        if isinstance(weight, str):
            return weight
        runtime.set_weight(backend, server, weight)
        return ""
    return SET_SERVER_USAGE


_NUMBER = re.compile(r"\s*[+-]?\d+")


def parse_weight(text: str, initial: int) -> int | str:
    """A `set server ... weight` argument as HAProxy reads it (absolute, or `N%` of the
    initial weight): the weight, or HAProxy's complaint."""
    if not text:
        return WEIGHT_MISSING
    number = _NUMBER.match(text)
    if number is None:
        return WEIGHT_GARBAGE_BEFORE
    weight, rest = int(number.group()), text[number.end() :]
    if rest == "%":
        if weight < 0:
            return WEIGHT_NEGATIVE
        return min(MAX_WEIGHT, initial * min(weight, 100 * MAX_WEIGHT) // 100)
    if not 0 <= weight <= MAX_WEIGHT:
        return WEIGHT_RANGE
    if rest:
        return WEIGHT_GARBAGE_AFTER
    return weight


def _atoi(text: str) -> int:
    """C's atoi: the leading integer of `text`, 0 when there is none."""
    number = _NUMBER.match(text)
    return 0 if number is None else int(number.group())


# -- unknown commands ------------------------------------------------------------------------


def unknown_command(words: Sequence[str]) -> str:
    """HAProxy's answer to a command it does not know, over the sim's commands."""
    if not words:
        return command_list(
            words, "Unknown command. Please enter one of the following commands only:\n"
        )
    return command_list(
        words, "Unknown command, but maybe one of the following ones is a better match:\n"
    )


def command_list(words: Sequence[str], title: str) -> str:
    """`title`, then the commands that match `words` (all that start with the words both
    know; past those, the closest by HAProxy's word fingerprints), then the ones always shown."""
    known = max((_common_prefix(keyword, words) for keyword, _, _ in _KEYWORDS), default=0)
    candidates = [entry for entry in _KEYWORDS if _common_prefix(entry[0], words) == known]
    if known < len(words) and words[known]:
        candidates = _closest(candidates, words[known:_PREFIX_WORDS], known)
    lines = [(usage, description) for _, usage, description in candidates] + list(_ALWAYS)
    return title + "".join(
        f"  {usage:<{_USAGE_WIDTH}}: {description}\n" for usage, description in lines
    )


def _common_prefix(keyword: Sequence[str], words: Sequence[str]) -> int:
    count = 0
    for mine, theirs in zip(keyword, words, strict=False):
        if mine != theirs:
            break
        count += 1
    return count


def _closest(candidates: Sequence[Keyword], rest: Sequence[str], known: int) -> list[Keyword]:
    """The candidates closest to `rest` by HAProxy's word fingerprints: the best few, none as
    far as the two texts' total length, none far behind the best; all when none is close."""
    wanted = _fingerprint(rest)
    ranked = []
    for entry in candidates:
        own = entry[0][known:_PREFIX_WORDS]
        fingerprint = _fingerprint(own)
        distance = sum(
            abs(wanted.get(pair, 0) - fingerprint.get(pair, 0))
            for pair in wanted.keys() | fingerprint.keys()
        )
        if distance < sum(map(len, rest)) + sum(map(len, own)):
            ranked.append((distance, entry))
    if not ranked:
        return list(candidates)
    ranked.sort(key=lambda each: each[0])  # stable: ties keep the listed order
    best = ranked[0][0]
    return [entry for distance, entry in ranked[:_MAX_MATCHES] if distance <= 5 * best // 2]


def _fingerprint(words: Sequence[str]) -> dict[tuple[int, int], int]:
    """HAProxy's word fingerprint: counts of letter-class transitions, from a start mark to an
    end mark through each word (letters a..z, 27 for digits, 28 for anything else)."""
    counts: dict[tuple[int, int], int] = {}
    for word in words:
        previous = 28
        for char in word.lower():
            current = (
                ord(char) - ord("a") + 1 if "a" <= char <= "z" else 27 if char.isdigit() else 28
            )
            counts[(previous, current)] = counts.get((previous, current), 0) + 1
            previous = current
        counts[(previous, 28)] = counts.get((previous, 28), 0) + 1
    return counts


# -- the TCP server --------------------------------------------------------------------------


class _Session(asyncio.Protocol):
    """One CLI connection: answer the lines that arrive together, then close."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.idle: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.idle = asyncio.get_running_loop().call_later(IDLE_TIMEOUT_S, transport.close)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.idle is not None:
            self.idle.cancel()
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if b"\n" in self.buffer:
            complete, _, rest = bytes(self.buffer).rpartition(b"\n")
            if not rest:  # everything sent so far is answered: done
                self._answer(complete.split(b"\n"))
        elif len(self.buffer) > MAX_LINE:
            self._close()

    def eof_received(self) -> bool | None:
        self._answer(bytes(self.buffer).split(b"\n"))
        return None

    def _answer(self, lines: Sequence[bytes]) -> None:
        self.buffer.clear()
        transport = self.transport
        if transport is None:
            return
        reply = "".join(
            answer_line(self.runtime, line.decode("utf-8", "replace").rstrip("\r"))
            for line in lines
        )
        transport.write(reply.encode())
        self._close()

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class RuntimeApiServer:
    """The runtime API of one replica on a TCP port (a free one unless `port` is given)."""

    def __init__(self, runtime: Runtime, host: str = "127.0.0.1", port: int = 0) -> None:
        self.runtime = runtime
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None

    @property
    def endpoint(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"tcp://{host}:{self.port}"

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Session(self.runtime), self.host, self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        await asyncio.sleep(0)
