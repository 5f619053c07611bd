"""A live table of the fleet for a terminal, headless (rich, no Textual): what `demo` and the
local-host watch show until the TUI takes over. On a terminal it owns the screen and fits the
table to its height; piped, it prints the last table when it stops."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from console.collector import Collector
from console.render import snapshot_table


async def show_live(
    collector: Collector, notes: Callable[[], Sequence[str]], count: int | None = None
) -> None:
    """Redraw on every snapshot, with `notes()` as the last lines; stop after `count`."""
    console = Console()
    on_terminal = sys.stdout.isatty()
    shown = 0
    with Live(console=console, auto_refresh=False, screen=on_terminal) as live:
        async for snapshot in collector.snapshots():
            said = list(notes())
            footer = Text("\n".join(said), style="italic", no_wrap=True)
            height = console.height - len(said) - 1 if on_terminal else None
            live.update(Group(snapshot_table(snapshot, height), footer), refresh=True)
            shown += 1
            if count is not None and shown >= count:
                return
