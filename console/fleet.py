"""The fleet as configured: gateways, pools, nodes, thresholds (plain frozen dataclasses).

`console.config` builds these from `fleet.yaml`; everything downstream reads only these.
Durations are seconds (float); URLs are absolute http(s) URLs without a trailing slash.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from console.errors import ConfigError

ENGINE_KINDS = ("vllm", "sglang", "tgi", "triton", "nim", "auto")
COMMAND_SCOPES = ("node", "pool", "gateway")
# what an operator command's argv may name, by scope
COMMAND_PLACEHOLDERS = {
    "node": ("node", "pool", "server", "backend", "gateway"),
    "pool": ("pool", "backend", "gateway"),
    "gateway": ("gateway",),
}


@dataclass(frozen=True, slots=True)
class SecretRef:
    """A secret named by reference only; the value is read when needed, never stored in config."""

    env: str | None = None
    file: str | None = None

    def resolve(self) -> str:
        """The secret's value; raises ConfigError naming the variable or file when absent."""
        if self.env is not None:
            value = os.environ.get(self.env)
            if value is None:
                raise ConfigError(f"token_env: environment variable {self.env} is not set")
            return value.strip()
        if self.file is not None:
            try:
                with open(self.file, encoding="utf-8") as handle:
                    return handle.read().strip()
            except OSError as exc:
                raise ConfigError(f"token_file: cannot read {self.file}: {exc.strerror}") from None
        raise ConfigError("secret reference names neither token_env nor token_file")

    def __repr__(self) -> str:  # never leak more than the reference itself
        return f"SecretRef(env={self.env!r}, file={self.file!r})"


@dataclass(frozen=True, slots=True)
class Refresh:
    interval: float = 2.0  # seconds between scrapes of one target
    timeout: float = 1.0  # seconds a scrape may take before it counts as failed


@dataclass(frozen=True, slots=True)
class Threshold:
    warn: float | None = None
    crit: float | None = None


@dataclass(frozen=True, slots=True)
class Alerts:
    """Alert thresholds; a figure at or above `warn`/`crit` raises that severity."""

    error_rate: Threshold = Threshold(warn=0.02, crit=0.10)
    waiting: Threshold = Threshold(warn=20, crit=100)
    kv_cache_usage: Threshold = Threshold(warn=0.90, crit=0.98)
    ttft_p95_s: Threshold = Threshold(warn=2.0, crit=5.0)
    gpu_temp: Threshold = Threshold(warn=83, crit=90)
    stale_after: float = 3.0  # a reading older than this many intervals is stale


@dataclass(frozen=True, slots=True)
class Route:
    map: str  # the HAProxy map file
    key: str  # the key whose value names the serving backend


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    name: str
    plugin: str
    endpoints: tuple[str, ...]
    refresh: Refresh
    token: SecretRef | None = None
    line: int = 0  # where it was declared, for messages


@dataclass(frozen=True, slots=True)
class NodeConfig:
    name: str
    pool: str
    engine: str  # one of ENGINE_KINDS
    url: str | None  # the engine's base URL
    metrics_url: str | None  # where its metrics are read; default url + "/metrics"
    agent: str | None  # the node agent's base URL
    dcgm: str | None  # a dcgm-exporter metrics URL, for GPUs of nodes without an agent
    server: str | None  # the node's server name at the pool's gateway backend
    refresh: Refresh
    token: SecretRef | None = None  # bearer token for the agent
    capacity: int | None = None  # requests it holds at once (running + waiting) before it queues
    line: int = 0

    @property
    def engine_metrics_url(self) -> str | None:
        if self.metrics_url is not None:
            return self.metrics_url
        return None if self.url is None else self.url + "/metrics"


@dataclass(frozen=True, slots=True)
class PoolConfig:
    name: str
    model: str | None
    gateway: str | None
    backend: str | None
    route: Route | None
    standby: str | None
    min_healthy: int
    nodes: tuple[str, ...]
    alerts: Alerts
    max_unavailable: int = 1  # nodes a rolling rollback takes out of service at once
    line: int = 0


@dataclass(frozen=True, slots=True)
class CommandConfig:
    """An operator's own command (k9s-style): run without a shell, audited like an action."""

    name: str
    key: str | None  # the TUI key that runs it
    scope: str  # one of COMMAND_SCOPES
    argv: tuple[str, ...]  # may name {node}, {pool}, ... (COMMAND_PLACEHOLDERS[scope])
    confirm: bool = True
    dangerous: bool = False  # hidden and refused in read-only mode
    timeout: float = 30.0
    line: int = 0


SOURCE_FIGURES = ("engine", "gpus", "host")


@dataclass(frozen=True, slots=True)
class SourceLabels:
    """The label names a fleet source discovers nodes, pools and gateways from."""

    node: str = "node"  # e.g. instance
    pool: str = "pool"  # e.g. model
    gateway: str | None = None  # a label naming the gateway in front of the node's pool


@dataclass(frozen=True, slots=True)
class SourceConfig:
    """A query service that already scrapes the fleet (Prometheus and what speaks its API):
    read in a few queries per refresh instead of polling every node."""

    plugin: str
    url: str
    refresh: Refresh = Refresh(interval=15.0, timeout=5.0)
    window: float = 60.0  # rates and quantiles are computed server-side over this window
    labels: SourceLabels = SourceLabels()
    discover: bool = True  # nodes and pools not listed in the file come from label values
    figures: tuple[str, ...] = SOURCE_FIGURES  # what listed nodes take from it
    server: str = "{node}"  # a discovered node's server at its pool's gateway backend
    agent: str | None = None  # a discovered node's agent base URL, e.g. http://{node}:9401
    gateway: str | None = None  # the gateway of discovered pools, when no label names one
    backend: str = "{pool}"  # a discovered pool's backend at its gateway
    token: SecretRef | None = None
    line: int = 0


@dataclass(frozen=True, slots=True)
class FleetConfig:
    path: str | None  # the file it came from, None when built in code
    refresh: Refresh
    alerts: Alerts
    gateways: tuple[GatewayConfig, ...] = ()
    pools: tuple[PoolConfig, ...] = ()
    nodes: tuple[NodeConfig, ...] = ()
    commands: tuple[CommandConfig, ...] = ()
    read_only: bool = False
    audit_log: str | None = None  # shared by everyone using this file; locks sit beside it
    theme: str | None = None  # the TUI's theme; --theme wins
    source: SourceConfig | None = None  # a query service the fleet is read through

    def pool(self, name: str) -> PoolConfig:
        return next(p for p in self.pools if p.name == name)

    def node(self, name: str) -> NodeConfig:
        return next(n for n in self.nodes if n.name == name)

    def gateway(self, name: str) -> GatewayConfig:
        return next(g for g in self.gateways if g.name == name)


def single_node_fleet(node: NodeConfig) -> FleetConfig:
    """A fleet of one node in a pool of its own: the local watch, the agent's engine probe."""
    pool = PoolConfig(
        name=node.pool,
        model=None,
        gateway=None,
        backend=None,
        route=None,
        standby=None,
        min_healthy=0,
        nodes=(node.name,),
        alerts=Alerts(),
    )
    return FleetConfig(
        path=None, refresh=node.refresh, alerts=Alerts(), pools=(pool,), nodes=(node,)
    )
