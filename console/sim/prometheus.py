"""A real Prometheus scraping simulated targets, run on a free loopback port.

    jobs = scrape_jobs(fleet.nodes)                     # engines and agents, node/pool labels
    async with PrometheusProcess(jobs, interval=1.0) as prometheus:
        prometheus.url                                  # http://127.0.0.1:PORT
        await prometheus.wait_for("count(up == 1)", len(fleet.nodes) * 2)

Every target carries the labels the Prometheus source discovers the fleet from (`node`,
`pool`), as a relabelled service discovery gives them. The server keeps its data in a folder
of its own, removed on stop. `pause()` stops the process without killing it (SIGSTOP): its
port still accepts connections but nothing answers, which is what a Prometheus stuck in a
long garbage collection or a full disk looks like from outside.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO
from urllib.parse import quote, urlsplit

from console.errors import FleetdeckError
from console.sim.ports import HOST, free_ports

if TYPE_CHECKING:
    from console.sim.fleet import SimNode

CONFIG_NAME = "prometheus.yml"
LOG_NAME = "prometheus.log"
BIND_ATTEMPTS = 3
POLL_S = 0.05
PROBE_TIMEOUT_S = 1.0
LOG_TAIL_LINES = 8


@dataclass(frozen=True, slots=True)
class ScrapeTarget:
    address: str  # HOST:PORT
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ScrapeJob:
    name: str
    targets: tuple[ScrapeTarget, ...]
    metrics_path: str = "/metrics"


def _address(url: str) -> str:
    parts = urlsplit(url)
    if parts.hostname is None or parts.port is None:
        raise ValueError(f"no host:port in {url!r}")
    return f"{parts.hostname}:{parts.port}"


def scrape_jobs(nodes: Sequence[SimNode], *, agents: bool = True) -> tuple[ScrapeJob, ...]:
    """The simulated nodes' engine pages (job `engine`) and agents (job `agent`), each target
    labelled with its node and pool."""

    def targets(url_of: str) -> tuple[ScrapeTarget, ...]:
        return tuple(
            ScrapeTarget(_address(getattr(node, url_of)), {"node": node.name, "pool": node.pool})
            for node in nodes
        )

    jobs = [ScrapeJob("engine", targets("url"))]
    if agents:
        jobs.append(ScrapeJob("agent", targets("agent")))
    return tuple(jobs)


def prometheus_config(jobs: Sequence[ScrapeJob], interval: float, timeout: float) -> str:
    """prometheus.yml for the jobs (JSON is YAML: no quoting rules to get wrong)."""
    config = {
        "global": {"scrape_interval": _duration(interval), "scrape_timeout": _duration(timeout)},
        "scrape_configs": [
            {
                "job_name": job.name,
                "metrics_path": job.metrics_path,
                "static_configs": [
                    {"targets": [target.address], "labels": dict(target.labels)}
                    for target in job.targets
                ],
            }
            for job in jobs
        ],
    }
    return json.dumps(config, indent=1) + "\n"


def _duration(seconds: float) -> str:
    return f"{max(1, round(seconds * 1000))}ms"


def find_prometheus() -> str:
    found = shutil.which("prometheus")
    if found is None:
        raise FleetdeckError(
            "prometheus not found on PATH: install it (apt-get install prometheus)", "sim"
        )
    return found


class PrometheusProcess:
    """One Prometheus server over the given scrape jobs; an async context manager."""

    def __init__(
        self,
        jobs: Sequence[ScrapeJob],
        *,
        interval: float = 1.0,
        timeout: float | None = None,
        start_timeout: float = 15.0,
    ) -> None:
        self.jobs = tuple(jobs)
        self.interval = interval
        self.timeout = min(interval, 1.0) if timeout is None else timeout
        self.start_timeout = start_timeout
        self.folder: Path | None = None
        self.port: int | None = None
        self.process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("prometheus has not been started")
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError("prometheus is not running")
        return self.process.pid

    @property
    def _folder(self) -> Path:
        if self.folder is None:
            raise RuntimeError("prometheus has not been started")
        return self.folder

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Start on a free port; returns once it answers /-/ready."""
        binary = find_prometheus()
        self.folder = Path(tempfile.mkdtemp(prefix="fleetdeck-prometheus-"))
        text = prometheus_config(self.jobs, self.interval, self.timeout)
        (self.folder / CONFIG_NAME).write_text(text, encoding="utf-8")
        try:
            for attempt in range(1, BIND_ATTEMPTS + 1):
                (self.port,) = free_ports(1)
                failure = await self._launch(binary)
                if failure is None:
                    return
                if "address already in use" not in failure or attempt == BIND_ATTEMPTS:
                    raise FleetdeckError(f"prometheus did not start: {failure}", "sim")
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.returncode is None:
            process.send_signal(signal.SIGCONT)  # a paused one must run to see SIGTERM
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), self.start_timeout)
            except TimeoutError:
                process.kill()
                await process.wait()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    def pause(self) -> None:
        """SIGSTOP: connections are accepted by the kernel, never answered."""
        if self.process is not None:
            self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)

    async def __aenter__(self) -> PrometheusProcess:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- queries, for tests and benchmarks ------------------------------------------------

    async def query(self, expression: str) -> list[dict[str, object]]:
        """The `result` of an instant query (raw HTTP on loopback: no client to configure)."""
        path = f"/api/v1/query?query={quote(expression)}"
        status, body = await _get(self._port, path)
        if status != 200:
            raise FleetdeckError(f"prometheus query {expression!r}: HTTP {status} {body[:200]!r}")
        answer = json.loads(body)
        result: list[dict[str, object]] = answer["data"]["result"]
        return result

    async def wait_for(self, expression: str, at_least: float, within: float = 30.0) -> float:
        """Poll a scalar-valued query until it reaches `at_least` (FleetdeckError after
        `within` seconds); its value."""
        deadline = time.monotonic() + within
        value = 0.0
        while True:
            result = await self.query(expression)
            value = float(result[0]["value"][1]) if result else 0.0  # type: ignore[index]
            if value >= at_least:
                return value
            if time.monotonic() > deadline:
                raise FleetdeckError(
                    f"prometheus: {expression} stayed at {value:g} < {at_least:g} for {within:g} s"
                )
            await asyncio.sleep(self.interval / 2)

    # -- inside -------------------------------------------------------------------------

    @property
    def _port(self) -> int:
        if self.port is None:
            raise RuntimeError("prometheus has not been started")
        return self.port

    async def _launch(self, binary: str) -> str | None:
        folder = self._folder
        with self._open_log() as log:
            self.process = await asyncio.create_subprocess_exec(
                binary,
                f"--config.file={CONFIG_NAME}",
                f"--storage.tsdb.path={folder / 'data'}",
                f"--web.listen-address={HOST}:{self._port}",
                "--log.level=warn",
                cwd=folder,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
            )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.start_timeout
        while self.process.returncode is None:
            if await _ready(self._port):
                return None
            if loop.time() > deadline:
                self.process.kill()
                await self.process.wait()
                return f"not ready within {self.start_timeout:g} s; {self._log_tail()}"
            await asyncio.sleep(POLL_S)
        return f"exit status {self.process.returncode}; {self._log_tail()}"

    def _open_log(self) -> BinaryIO:
        """The log, appended to by every start (the child keeps its own descriptor)."""
        return open(self._folder / LOG_NAME, "ab")

    def _log_tail(self) -> str:
        try:
            text = (self._folder / LOG_NAME).read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            return f"no log ({exc.strerror})"
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        return f"prometheus said: {' | '.join(lines[-LOG_TAIL_LINES:]) or '(nothing)'}"


async def _get(port: int, path: str) -> tuple[int, bytes]:
    """One HTTP/1.0 GET on loopback: (status, body)."""
    async with asyncio.timeout(PROBE_TIMEOUT_S * 10):
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            writer.write(f"GET {path} HTTP/1.0\r\nHost: {HOST}\r\n\r\n".encode())
            reply = await reader.read()
        finally:
            writer.close()
    head, _, body = reply.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
    return status, body


async def _ready(port: int) -> bool:
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S):
            status, _ = await _get(port, "/-/ready")
    except (OSError, TimeoutError):
        return False
    return status == 200
