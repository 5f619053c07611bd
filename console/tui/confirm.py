"""The confirm modal: the plan and its preflight (blast radius, warnings, refusal), an optional
reason for the audit log, answered with y / n / esc."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from console.plans import Plan

ANSWER_HINT = "y confirm · n/esc cancel · tab: type a reason, enter to confirm"


class ConfirmModal(ModalScreen[str | None]):
    """Dismissed with the reason ('' for none) when confirmed, None when declined. A refused
    plan can only be closed."""

    AUTO_FOCUS = ""  # nothing focused: y/n answer at once; tab moves into the reason field
    BINDINGS = [
        Binding("y", "confirm", "Confirm"),
        Binding("n", "decline", "Cancel"),
        Binding("escape", "decline", "Cancel", priority=True),
    ]

    def __init__(self, plan: Plan) -> None:
        super().__init__()
        self.plan = plan

    def compose(self) -> ComposeResult:
        plan = self.plan
        with Vertical(id="confirm"):
            title = "refused" if plan.refusal else ("no change needed" if plan.noop else "confirm")
            yield Static(Text(f"{title}: {plan.summary}", style="bold"), id="confirm-title")
            lines = Text("\n".join(plan.lines()[1:]), no_wrap=False)
            yield Static(lines, id="confirm-plan")
            if plan.refusal is None:
                yield Input(placeholder="reason (incident, ticket) — optional", id="reason")
                yield Static(ANSWER_HINT, id="confirm-hint")
            else:
                yield Static("n/esc close", id="confirm-hint")

    def action_confirm(self) -> None:
        if self.plan.refusal is None:
            self.dismiss(self.query_one("#reason", Input).value.strip())

    def action_decline(self) -> None:
        self.dismiss(None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_confirm()
