"""The console's own log: a file in the user's state dir, so stdout stays data."""

from __future__ import annotations

import logging
import os
from pathlib import Path


def state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "fleetdeck"


def setup_logging(debug: bool = False) -> None:
    """Log to state_dir()/fleetdeck.log; a read-only home only loses the log, never the run."""
    root = logging.getLogger("fleetdeck")
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    if root.handlers:  # set up once per process, however often main() runs
        return
    try:
        directory = state_dir()
        directory.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = logging.FileHandler(directory / "fleetdeck.log")
    except OSError:
        handler = logging.NullHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
