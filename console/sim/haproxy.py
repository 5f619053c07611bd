"""A real HAProxy in front of simulated nodes: the fleet's gateway topology as a haproxy.cfg,
and `HaproxyProcess`, one replica of such a gateway, run on free loopback ports.

    backends = backends_for(fleet.nodes)                   # one backend per pool
    frontends = (FrontendSpec("pool-a", "pool-a"),)        # one routed key per primary pool
    async with HaproxyProcess(backends, frontends) as replica:
        replica.runtime_endpoint                           # tcp://127.0.0.1:PORT (level admin)
        replica.frontend_url("pool-a")                     # http://127.0.0.1:PORT

The topology (shared with the sim's own gateway): each backend balances `leastconn` over its
servers and health-checks them with `GET /health`; each routed key has a frontend of its own
that picks its backend through the route map, `use_backend %[str(KEY),map(MAP,DEFAULT)]`, so
`set map MAP KEY OTHER` moves that route. Several processes over the same backends are the
replicas of one gateway: each has its own ports, its own folder and its own copy of the map.
The map is named by a bare file name, read from the replica's own folder (its working
directory), so `set map route.map ...` names the same map on every replica.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import signal
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO, NamedTuple
from urllib.parse import urlsplit

from console.errors import FleetdeckError
from console.sim.ports import free_ports

if TYPE_CHECKING:
    from console.sim.fleet import SimNode

MAP_NAME = "route.map"
CONFIG_NAME = "haproxy.cfg"
LOG_NAME = "haproxy.log"
HOST = "127.0.0.1"
# Debian installs haproxy in /usr/sbin, which is not on every user's PATH
SBIN_FOLDERS = ("/usr/sbin", "/usr/local/sbin")
BIND_ATTEMPTS = 3  # a free port picked here can be taken by someone else before haproxy binds
POLL_S = 0.02
PROBE_TIMEOUT_S = 0.5
LOG_TAIL_LINES = 12
_NAME = re.compile(r"[A-Za-z0-9_.:-]+")  # what HAProxy takes as a proxy, server or map key


def _check_name(what: str, name: str) -> None:
    if not _NAME.fullmatch(name):
        raise ValueError(f"{what} {name!r}: only letters, digits and _ . : - fit in haproxy.cfg")


class ServerSpec(NamedTuple):
    name: str
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class BackendSpec:
    name: str
    servers: tuple[ServerSpec, ...]

    def __post_init__(self) -> None:
        _check_name("backend", self.name)
        for server in self.servers:
            _check_name("server", server.name)


@dataclass(frozen=True, slots=True)
class FrontendSpec:
    key: str  # the route's key in the map
    default_backend: str  # where the route goes while the map does not say otherwise

    def __post_init__(self) -> None:
        _check_name("route key", self.key)
        _check_name("backend", self.default_backend)


@dataclass(frozen=True, slots=True)
class Timing:
    connect_s: float = 0.5
    server_s: float = 30.0  # also the client timeout; a long completion must fit in it
    check_interval_s: float = 0.2  # two failed checks in a row mark a server DOWN


@dataclass(frozen=True, slots=True)
class Ports:
    runtime: int  # the runtime API, level admin
    frontends: Mapping[str, int]  # route key -> its frontend's port
    user: int | None = None  # a runtime API at level user (reads only), when asked for


def backends_for(nodes: Sequence[SimNode]) -> tuple[BackendSpec, ...]:
    """One backend per pool of simulated nodes, named like the pool, its servers like the
    nodes, addressed at their engine ports."""
    pools: dict[str, list[ServerSpec]] = {}
    for node in nodes:
        address = urlsplit(node.url)
        if address.hostname is None or address.port is None:
            raise ValueError(f"node {node.name}: no host:port in {node.url!r}")
        server = ServerSpec(node.name, address.hostname, address.port)
        pools.setdefault(node.pool, []).append(server)
    return tuple(BackendSpec(pool, tuple(servers)) for pool, servers in pools.items())


def route_map(frontends: Sequence[FrontendSpec]) -> str:
    """The map file as HAProxy loads it: every key with its default backend (`set map` only
    changes keys that are there)."""
    return "".join(f"{frontend.key} {frontend.default_backend}\n" for frontend in frontends)


def _ms(seconds: float) -> str:
    return f"{max(1, round(seconds * 1000))}ms"


def haproxy_config(
    backends: Sequence[BackendSpec],
    frontends: Sequence[FrontendSpec],
    ports: Ports,
    *,
    map_name: str = MAP_NAME,
    unix_socket: Path | None = None,
    timing: Timing = Timing(),
) -> str:
    """The haproxy.cfg of one replica."""
    names = {backend.name for backend in backends}
    for frontend in frontends:
        if frontend.default_backend not in names:
            raise ValueError(f"route {frontend.key}: no backend {frontend.default_backend!r}")
    lines = [
        "# generated by fleetdeck for a simulated fleet",
        "global",
        "    noreuseport  # a port someone else holds fails the start instead of being shared",
        "    nbthread 1",
        "    maxconn 1024",
        f"    stats socket ipv4@{HOST}:{ports.runtime} level admin",
    ]
    if ports.user is not None:
        lines.append(f"    stats socket ipv4@{HOST}:{ports.user} level user")
    if unix_socket is not None:
        lines.append(f"    stats socket {unix_socket} mode 600 level admin")
    lines += [
        "",
        "defaults",
        "    mode http",
        f"    timeout connect {_ms(timing.connect_s)}",
        f"    timeout client {_ms(timing.server_s)}",
        f"    timeout server {_ms(timing.server_s)}",
        f"    default-server inter {_ms(timing.check_interval_s)} fall 2 rise 1",
    ]
    for frontend in frontends:
        lines += [
            "",
            f"frontend route_{frontend.key}",
            f"    bind {HOST}:{ports.frontends[frontend.key]}",
            f"    use_backend %[str({frontend.key}),map({map_name},{frontend.default_backend})]",
        ]
    for backend in backends:
        lines += ["", f"backend {backend.name}", "    balance leastconn"]
        lines.append("    option httpchk GET /health")
        lines += [f"    server {s.name} {s.host}:{s.port} check" for s in backend.servers]
    return "\n".join(lines) + "\n"


def find_haproxy() -> str:
    """The haproxy binary: on PATH, else where Debian puts it; FleetdeckError when absent."""
    found = shutil.which("haproxy") or shutil.which("haproxy", path=":".join(SBIN_FOLDERS))
    if found is None:
        raise FleetdeckError(
            "haproxy not found on PATH nor in /usr/sbin: install it "
            "(apt-get install haproxy) to run a simulated gateway on a real HAProxy",
            "sim",
        )
    return found


async def _runtime_answers(port: int) -> bool:
    """Whether a runtime API answers `show info` on the port."""
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S):
            reader, writer = await asyncio.open_connection(HOST, port)
            try:
                writer.write(b"show info\n")
                reply = await reader.read()
            finally:
                writer.close()
    except (OSError, TimeoutError):
        return False
    return reply.startswith(b"Name: HAProxy")


class HaproxyProcess:
    """One HAProxy replica over the given backends, in a folder of its own; an async context
    manager. `kill()` leaves it dead (a replica that stopped answering), `restart()` starts
    it again on the same ports, forgetting every runtime change, as a reload does."""

    def __init__(
        self,
        backends: Sequence[BackendSpec],
        frontends: Sequence[FrontendSpec],
        *,
        map_name: str = MAP_NAME,
        unix_socket: bool = False,
        user_socket: bool = False,
        timing: Timing = Timing(),
        start_timeout: float = 5.0,
    ) -> None:
        if "/" in map_name:
            raise ValueError(f"map name {map_name!r}: a bare file name, read from the folder")
        self.backends = tuple(backends)
        self.frontends = tuple(frontends)
        self.map_name = map_name
        self.timing = timing
        self.start_timeout = start_timeout
        self._wants_unix = unix_socket
        self._wants_user = user_socket
        self.folder: Path | None = None
        self.ports: Ports | None = None
        self.process: asyncio.subprocess.Process | None = None

    # -- where it answers ---------------------------------------------------------------

    @property
    def runtime_endpoint(self) -> str:
        return f"tcp://{HOST}:{self._ports.runtime}"

    @property
    def unix_endpoint(self) -> str:
        if not self._wants_unix:
            raise ValueError("this replica was started without a unix socket")
        return f"unix://{self._folder / 'admin.sock'}"

    @property
    def user_endpoint(self) -> str:
        if self._ports.user is None:
            raise ValueError("this replica was started without a level-user socket")
        return f"tcp://{HOST}:{self._ports.user}"

    def frontend_url(self, key: str) -> str:
        return f"http://{HOST}:{self._ports.frontends[key]}"

    @property
    def log_path(self) -> Path:
        return self._folder / LOG_NAME

    @property
    def _ports(self) -> Ports:
        if self.ports is None:
            raise RuntimeError("the replica has not been started")
        return self.ports

    @property
    def _folder(self) -> Path:
        if self.folder is None:
            raise RuntimeError("the replica has not been started")
        return self.folder

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Start on free ports; returns once the runtime API answers."""
        binary = find_haproxy()
        self.folder = Path(tempfile.mkdtemp(prefix="fleetdeck-haproxy-"))
        (self.folder / self.map_name).write_text(route_map(self.frontends), encoding="utf-8")
        try:
            for attempt in range(1, BIND_ATTEMPTS + 1):
                self.ports = self._pick_ports()
                self._write_config()
                failure = await self._launch(binary)
                if failure is None:
                    return
                if "cannot bind socket" not in failure or attempt == BIND_ATTEMPTS:
                    raise FleetdeckError(f"haproxy did not start: {failure}", "sim")
        except BaseException:
            await self.stop()
            raise

    async def restart(self) -> None:
        """Stop and start again on the same ports, from the config and map files: every
        runtime change (`set server`, `set map`) is forgotten, as a reload forgets it."""
        await self._halt(signal.SIGTERM)
        failure = await self._launch(find_haproxy())
        if failure is not None:
            raise FleetdeckError(f"haproxy did not restart: {failure}", "sim")

    async def kill(self) -> None:
        """SIGKILL: the replica stops answering at once, its ports refuse connections."""
        await self._halt(signal.SIGKILL)

    async def stop(self) -> None:
        await self._halt(signal.SIGTERM)
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    async def __aenter__(self) -> HaproxyProcess:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- inside -------------------------------------------------------------------------

    def _pick_ports(self) -> Ports:
        wanted = 1 + len(self.frontends) + (1 if self._wants_user else 0)
        runtime, *rest = free_ports(wanted)
        count = len(self.frontends)
        frontends = {f.key: port for f, port in zip(self.frontends, rest[:count], strict=True)}
        return Ports(runtime, frontends, rest[count] if self._wants_user else None)

    def _write_config(self) -> None:
        folder = self._folder
        text = haproxy_config(
            self.backends,
            self.frontends,
            self._ports,
            map_name=self.map_name,
            unix_socket=folder / "admin.sock" if self._wants_unix else None,
            timing=self.timing,
        )
        (folder / CONFIG_NAME).write_text(text, encoding="utf-8")

    async def _launch(self, binary: str) -> str | None:
        """Run haproxy in the foreground (`-db`) from the folder; None once its runtime API
        answers, else why not, with the tail of its log."""
        folder = self._folder
        with self._open_log() as log:
            self.process = await asyncio.create_subprocess_exec(
                binary,
                "-f",
                CONFIG_NAME,
                "-db",
                cwd=folder,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
            )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.start_timeout
        while self.process.returncode is None:
            if await _runtime_answers(self._ports.runtime):
                return None
            if loop.time() > deadline:
                await self._halt(signal.SIGKILL)
                return f"no runtime API within {self.start_timeout:g} s; {self._log_tail()}"
            await asyncio.sleep(POLL_S)
        await self.process.wait()
        return f"exit status {self.process.returncode}; {self._log_tail()}"

    def _open_log(self) -> BinaryIO:
        """The log, appended to by every start (the child keeps its own descriptor)."""
        return open(self.log_path, "ab")

    async def _halt(self, how: signal.Signals) -> None:
        process, self.process = self.process, None
        if process is None or process.returncode is not None:
            return
        process.send_signal(how)
        try:
            await asyncio.wait_for(process.wait(), self.start_timeout)
        except TimeoutError:
            process.kill()
            await process.wait()

    def _log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError as exc:
            return f"no log ({exc.strerror})"
        tail = " | ".join(line.strip() for line in lines[-LOG_TAIL_LINES:] if line.strip())
        return f"haproxy said: {tail or '(nothing)'}"
