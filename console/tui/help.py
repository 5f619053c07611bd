"""The help screen, generated from the bindings that are active, so it is never out of date."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape", "dismiss", "Close"),
        Binding("q", "dismiss", "Close"),
        Binding("question_mark", "dismiss", "Close"),
    ]

    def __init__(self, bindings: list[tuple[str, str]]) -> None:
        super().__init__()
        self.bindings = bindings  # (key as shown, what it does)

    def compose(self) -> ComposeResult:
        table = Table(box=None, show_header=False, pad_edge=False)
        table.add_column("key", style="bold", no_wrap=True)
        table.add_column("does")
        for key, description in self.bindings:
            table.add_row(key, description)
        with VerticalScroll(id="help"):
            yield Static("fleetdeck keys (esc closes)", id="help-title")
            yield Static(table)


def binding_rows(bindings: list[tuple[str, Binding]]) -> list[tuple[str, str]]:
    """(key, description) for each binding with a description: each description once, with
    its shortest key (`q` rather than `ctrl+q`), in the order the descriptions first come."""
    best: dict[str, str] = {}
    for key, binding in bindings:
        shown = binding.key_display or key
        if not binding.description:
            continue
        known = best.get(binding.description)
        if known is None or len(shown) < len(known):
            best[binding.description] = shown
    return [(key, description) for description, key in best.items()]
