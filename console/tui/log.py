"""The action log: every action in the audit log, newest first, unfinished ones called out."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from console.audit import AuditLog, entries, unfinished
from console.commands.audit import table


class LogScreen(Screen[None]):
    BINDINGS = [Binding("escape", "app.pop_screen", "Back"), Binding("r", "reload", "Reload")]

    def __init__(self, audit: AuditLog) -> None:
        super().__init__()
        self.audit = audit

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(id="log-title")
            yield Static(id="log-lines")
        yield Footer()

    def on_mount(self) -> None:
        self.action_reload()

    def action_reload(self) -> None:
        readout = self.audit.read()
        records = list(readout.records)
        left = unfinished(records)
        title = f"actions in {self.audit.path} (newest first)"
        if left:
            title += f" — {len(left)} unfinished: " + ", ".join(
                f"{r.action} {' '.join(r.targets)}" for r in left
            )
        self.query_one("#log-title", Static).update(title)
        lines = table(entries(records)) if records else ["no actions recorded yet"]
        header, rows = lines[0], lines[1:]
        problems = [f"skipped: {problem}" for problem in readout.problems]
        self.query_one("#log-lines", Static).update("\n".join([header, *reversed(rows), *problems]))
