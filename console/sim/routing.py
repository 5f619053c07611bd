"""Where a gateway replica sends the load offered to its routes: a pure function of its view.

A route goes to the backend its map names for its key (the route's own backend when the map
has no entry), and a backend spreads what it gets over its usable servers, those UP with a
weight above 0, in proportion to weight; DRAIN, MAINT and DOWN servers get nothing. Load that
finds no usable server is refused (the gateway answers 503). The view is a
`console.gateway.ReplicaState`, so the split reads the same from the sim's gateway as from a
real HAProxy read through its driver.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from console.fleet import Route
from console.gateway import ReplicaState


@dataclass(frozen=True, slots=True)
class Offer:
    """Requests/s offered to one route; `backend` serves it when the map has no entry."""

    route: Route
    backend: str
    requests_per_s: float


@dataclass(frozen=True, slots=True)
class LoadSplit:
    servers: Mapping[tuple[str, str], float] = field(default_factory=dict)  # (backend, server)
    refused: Mapping[str, float] = field(default_factory=dict)  # backend -> requests/s


def routed_backend(replica: ReplicaState, route: Route, backend: str) -> str:
    """The backend serving `route`: its map entry, else `backend` (HAProxy's map default)."""
    return replica.maps.get(route.map, {}).get(route.key, backend)


def server_shares(replica: ReplicaState, backend: str) -> dict[str, float]:
    """Each usable server's fraction of what `backend` gets; empty when none is usable."""
    weights = {
        server.server: 1 if server.weight is None else server.weight
        for (name, _), server in replica.servers.items()
        if name == backend and server.state == "UP"
    }
    total = sum(weight for weight in weights.values() if weight > 0)
    if total <= 0:
        return {}
    return {server: weight / total for server, weight in weights.items() if weight > 0}


def split_load(replica: ReplicaState, offers: Iterable[Offer]) -> LoadSplit:
    """Requests/s each server of `replica` receives from `offers`, and what it refuses."""
    servers: dict[tuple[str, str], float] = {}
    refused: dict[str, float] = {}
    for offer in offers:
        backend = routed_backend(replica, offer.route, offer.backend)
        shares = server_shares(replica, backend)
        if not shares:
            refused[backend] = refused.get(backend, 0.0) + offer.requests_per_s
        for server, share in shares.items():
            key = (backend, server)
            servers[key] = servers.get(key, 0.0) + offer.requests_per_s * share
    return LoadSplit(servers, refused)
