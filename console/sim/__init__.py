"""The simulated fleet used by `fleetdeck demo`, the tests and the benchmarks.

Each node serves its engine's real `/metrics` format and an OpenAI-style completions
endpoint on one port and the node agent API on another; a control API reads the ground truth
and pins figures or injects faults. Nothing here imports textual or httpx.
"""

from __future__ import annotations

from console.sim.fleet import SimFleet, SimNode
from console.sim.pages import example_page

__all__ = ["SimFleet", "SimNode", "example_page"]
