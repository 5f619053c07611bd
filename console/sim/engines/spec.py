"""What an engine kind declares to the simulator: its histograms and how its page is built."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from console.sim.pagetext import Page


@dataclass(frozen=True, slots=True)
class HistogramSpec:
    """One histogram series the node keeps: `role` says which simulated quantity feeds it
    (see `console.sim.traffic.ROLES`), `scale` converts seconds to the family's unit and
    `weight` is the share of the role's observations this series sees."""

    key: str
    role: str
    bounds: tuple[float, ...]
    scale: float = 1.0
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class EngineSpec:
    kind: str
    model: str  # the model a node of this kind serves
    process: str  # the process name on the node's GPUs
    histograms: tuple[HistogramSpec, ...]
    build_page: Callable[[str, tuple[str, ...]], Page]  # (model, GPU UUIDs) -> compiled page
    names_gpus: bool = False  # whether the page differs per node (it names the node's GPUs)
