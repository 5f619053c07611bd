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
import time
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

from console.errors import FleetdeckError
from console.sim.child import ChildProcess
from console.sim.ports import HOST, free_ports

if TYPE_CHECKING:
    from console.sim.fleet import SimNode

CONFIG_NAME = "prometheus.yml"
PROBE_TIMEOUT_S = 1.0


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


class PrometheusProcess(ChildProcess):
    """One Prometheus server over the given scrape jobs; an async context manager."""

    name = "prometheus"

    def __init__(
        self,
        jobs: Sequence[ScrapeJob],
        *,
        interval: float = 1.0,
        timeout: float | None = None,
        start_timeout: float = 15.0,
    ) -> None:
        super().__init__(start_timeout)
        self.jobs = tuple(jobs)
        self.interval = interval
        self.timeout = min(interval, 1.0) if timeout is None else timeout
        self.port: int | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self._port}"

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError("prometheus is not running")
        return self.process.pid

    @property
    def _port(self) -> int:
        if self.port is None:
            raise RuntimeError("prometheus has not been started")
        return self.port

    def pause(self) -> None:
        """SIGSTOP: connections are accepted by the kernel, never answered."""
        if self.process is not None:
            self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)

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

    # -- as a child process ---------------------------------------------------------------

    def _binary(self) -> str:
        return find_prometheus()

    def _pick_ports(self) -> None:
        (self.port,) = free_ports(1)

    def _prepare(self) -> None:
        text = prometheus_config(self.jobs, self.interval, self.timeout)
        (self._folder / CONFIG_NAME).write_text(text, encoding="utf-8")

    def _argv(self, binary: str) -> list[str]:
        return [
            binary,
            f"--config.file={CONFIG_NAME}",
            f"--storage.tsdb.path={self._folder / 'data'}",
            f"--web.listen-address={HOST}:{self._port}",
            "--log.level=warn",
        ]

    def _answers(self) -> Awaitable[bool]:
        return _ready(self._port)

    @staticmethod
    def _bind_failed(failure: str) -> bool:
        return "address already in use" in failure


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
