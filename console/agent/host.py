"""The host's figures through psutil, and the engine process, for the snapshot's `host`.

cpu in percent (0-100, averaged since the previous sweep), memory and disk in bytes, load1 the
one-minute load average, uptime_s in seconds, net_errors the errors and drops of every network
interface since boot. An unknown figure is None.
"""

from __future__ import annotations

import functools
import logging
import math
import os
from collections.abc import Callable
from typing import Any

import psutil

log = logging.getLogger("fleetdeck.agent")

ENGINE_SEARCH_S = 5.0  # a missing engine is looked for this often: a search reads all of /proc


class EngineProcessFinder:
    """The engine's process, found by the port it listens on or by its name.

    A found process is kept until it exits, so a sweep costs a few /proc reads, not a scan.
    """

    def __init__(
        self, process_name: str | None, engine_port: int | None, clock: Callable[[], float]
    ) -> None:
        self._searches: list[Callable[[], tuple[psutil.Process | None, str]]] = []
        if engine_port is not None:  # the precise one first
            self._searches.append(functools.partial(_by_port, engine_port))
        if process_name is not None:
            self._searches.append(functools.partial(_by_name, process_name))
        self._clock = clock
        self._process: psutil.Process | None = None
        self._search_at = -math.inf
        self._error: str | None = None

    def read(self) -> tuple[dict[str, Any] | None, str | None]:
        """{pid, name, rss, state} and None, or None and why the engine process is unknown."""
        if not self._searches:
            return None, None
        process = self._process
        if process is None or not process.is_running():
            process = self._search()
            if process is None:
                return None, self._error
        try:
            with process.oneshot():
                found = {
                    "pid": process.pid,
                    "name": process.name(),
                    "rss": process.memory_info().rss,
                    "state": process.status(),
                }
        except psutil.Error as error:  # it exited (or hid) between the search and the read
            self._process = None
            return None, f"engine process {process.pid}: {error}"
        return found, None

    def _search(self) -> psutil.Process | None:
        """Look again at once after the engine exited, then every ENGINE_SEARCH_S."""
        self._process = None
        now = self._clock()
        if now < self._search_at:
            return None
        errors: list[str] = []
        for search in self._searches:
            process, error = search()
            if process is not None:
                self._process, self._error = process, None
                return process
            errors.append(error)
        error_text = "; ".join(errors)
        if error_text != self._error:
            log.warning("engine process: %s", error_text)
        self._error, self._search_at = error_text, now + ENGINE_SEARCH_S
        return None


def _by_port(port: int) -> tuple[psutil.Process | None, str]:
    try:
        connections = psutil.net_connections(kind="tcp")
    except psutil.AccessDenied:
        return None, f"listing sockets to find port {port} needs privileges"
    for connection in connections:
        if connection.status == psutil.CONN_LISTEN and connection.laddr.port == port:
            if connection.pid is None:
                return None, f"the listener on port {port} is another user's (needs privileges)"
            try:
                return psutil.Process(connection.pid), ""
            except psutil.Error as error:
                return None, f"the listener on port {port}: {error}"
    return None, f"nothing listens on port {port}"


def _by_name(name: str) -> tuple[psutil.Process | None, str]:
    """A process called `name`, else one with `name` in its command line; the oldest wins,
    which is the engine's main process rather than the workers it started."""
    own_pid = os.getpid()
    best: tuple[tuple[bool, float], psutil.Process] | None = None
    for process in psutil.process_iter(["name", "cmdline", "create_time"]):
        info = process.info
        if process.pid == own_pid:
            continue
        exact = info["name"] == name
        if exact or name in " ".join(info["cmdline"] or ()):
            rank = (not exact, info["create_time"] or 0.0)
            if best is None or rank < best[0]:
                best = (rank, process)
    if best is None:
        return None, f"no process named {name!r} or with {name!r} in its command line"
    return best[1], ""


class HostReader:
    """One sweep of the host's figures."""

    def __init__(
        self,
        *,
        process_name: str | None,
        engine_port: int | None,
        model_dir: str | None,
        clock: Callable[[], float],
        wall: Callable[[], float],
    ) -> None:
        self.model_dir = model_dir
        self._wall = wall
        self._boot_time = psutil.boot_time()
        self._engine = EngineProcessFinder(process_name, engine_port, clock)
        psutil.cpu_percent(interval=None)  # primes the counter: each sweep reads the time since

    def read(self) -> dict[str, Any]:
        memory = psutil.virtual_memory()
        engine_process, engine_process_error = self._engine.read()
        return {
            "cpu": psutil.cpu_percent(interval=None),
            # what no process can have without the kernel giving up caches: total - available
            "mem_used": memory.total - memory.available,
            "mem_total": memory.total,
            "load1": _load1(),
            "uptime_s": round(self._wall() - self._boot_time, 1),
            "disk": self._disk(),
            "net_errors": _net_errors(),
            "engine_process": engine_process,
            "engine_process_error": engine_process_error,
        }

    def _disk(self) -> dict[str, Any] | None:
        if self.model_dir is None:
            return None
        try:
            usage = psutil.disk_usage(self.model_dir)
        except OSError:  # the model dir is missing or unreadable: no figure, not a crash
            return None
        return {"path": self.model_dir, "used": usage.used, "total": usage.total}


def _load1() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:  # no load average on this system
        return None


def _net_errors() -> int | None:
    counters = psutil.net_io_counters()
    if counters is None:  # no network interfaces at all
        return None
    return int(counters.errin + counters.errout + counters.dropin + counters.dropout)
