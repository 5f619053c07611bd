"""The gateway vocabulary: what one gateway replica reports, and the driver a plugin supplies.

A gateway (HAProxy, the sim's gateway, later Envoy) has several replicas, one runtime endpoint
each. A `GatewayDriver` talks to one endpoint per call; fanning out over the replicas, comparing
them and deciding what a partial result means belong to the core (`console.gateways`,
`console.actions`), so every plugin gets them the same way.

Server states are normalised to four canonical words (`UP`, `DOWN`, `DRAIN`, `MAINT`); the
gateway's own wording (`UP 1/3`, `MAINT (via b/s)`, `no check`) is kept beside it for people.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

# what `set server ... state` takes, by canonical state
ADMIN_STATES = {"UP": "ready", "DRAIN": "drain", "MAINT": "maint"}


@dataclass(frozen=True, slots=True)
class ServerState:
    """One server of one backend, as one replica reports it. Counters are cumulative."""

    backend: str
    server: str
    state: str  # canonical: UP, DOWN, DRAIN or MAINT
    status: str  # the gateway's own words: "UP 1/3", "MAINT (via b/s)", "no check", ...
    weight: int | None = None
    scur: int | None = None  # sessions (requests) in flight now
    qcur: int | None = None  # requests queued at the gateway for this server
    stot: int | None = None  # sessions since start
    hrsp_5xx: int | None = None
    check_status: str | None = None


@dataclass(frozen=True, slots=True)
class BackendState:
    name: str
    status: str  # UP or DOWN (the gateway's words)
    scur: int | None = None
    qcur: int | None = None
    stot: int | None = None
    hrsp_5xx: int | None = None


@dataclass(frozen=True, slots=True)
class ReplicaState:
    """Everything one replica reported in one read."""

    endpoint: str
    servers: Mapping[tuple[str, str], ServerState] = field(default_factory=dict)
    backends: Mapping[str, BackendState] = field(default_factory=dict)
    maps: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # map file -> entries


class GatewayDriver(Protocol):
    """One gateway plugin's access to one replica at a time.

    Every method is bounded by the gateway's timeout and raises `GatewayUnreachable` when the
    replica does not answer, `GatewayRefused` (naming the replica) on an error reply.
    """

    async def read(self, endpoint: str, maps: tuple[str, ...]) -> ReplicaState:
        """Servers and backends, and the entries of each named map file."""
        ...

    async def set_server_state(self, endpoint: str, backend: str, server: str, state: str) -> None:
        """`state` is canonical: UP (ready), DRAIN or MAINT."""
        ...

    async def set_server_weight(
        self, endpoint: str, backend: str, server: str, weight: int
    ) -> None: ...

    async def set_map(self, endpoint: str, map_file: str, key: str, value: str) -> None: ...
