"""The Fleetdeck TUI: the fleet screen, details, and one-key actions through the action engine.

Snapshots arrive from a feed running in a worker; the app keeps the latest and shows it unless
paused (the data keeps coming while paused; `r` reads the fleet now). Action keys plan through
`console.actions.Actions` on the latest snapshot, show the plan in a confirm modal, and run the
confirmed action in a worker; the outcome is a notification (a partial one stays until
dismissed) and the rows show the new state with the next snapshot.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping

from textual.app import App
from textual.binding import ActiveBinding, Binding

from console.actions import Actions, Outcome
from console.fleet import CommandConfig
from console.gcpolicy import settle_garbage_collector
from console.history import History
from console.model import NodeStatus, PoolStatus, Snapshot
from console.plans import Plan, Request
from console.tui.confirm import ConfirmModal
from console.tui.detail import DetailScreen, NodeScreen, PoolScreen
from console.tui.events import EventLog
from console.tui.feed import Feed
from console.tui.fleet import FleetScreen
from console.tui.help import HelpScreen, binding_rows
from console.tui.log import LogScreen
from console.tui.palette import FleetCommands
from console.tui.themes import (
    LoadedTheme,
    ThemeSet,
    app_ansi_color,
    choose_theme,
    load_themes,
    theme_folders,
)

ACK_FOR_S = 1800.0  # `a` silences an alert for 30 minutes
OUTCOME_SEVERITY = {
    "verified": "information",
    "noop": "information",
    "refused": "warning",
    "failed": "error",
    "partial": "error",
    "verify_timeout": "warning",
}


class FleetdeckApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "fleetdeck"
    COMMANDS = App.COMMANDS | {FleetCommands}
    BINDINGS = [
        Binding("colon", "command_palette", "Commands", key_display=":"),
        Binding("q", "quit_safely", "Quit"),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("p", "pause", "Pause"),
        Binding("r", "refresh", "Refresh"),
        Binding("d", "drain", "Drain"),
        Binding("u", "undrain", "Undrain"),
        Binding("f", "failover", "Failover"),
        Binding("F", "failback", "Failback", key_display="F"),
        Binding("b", "rollback", "Rollback"),
        Binding("a", "ack", "Ack 30m"),
        Binding("enter", "details", "Details", show=False),
        Binding("e", "log", "Action log"),
    ]

    def __init__(
        self,
        feed: Feed,
        actions: Actions | None = None,
        *,
        read_only: bool = False,
        commands: tuple[CommandConfig, ...] = (),
        themes: ThemeSet | None = None,
        theme: LoadedTheme | None = None,
        clock: Callable[[], float] = time.time,
        history: History | None = None,
        events: EventLog | None = None,
    ) -> None:
        # with NO_COLOR, colours fall back to the terminal's own and bold/reverse carry status
        super().__init__(ansi_color=app_ansi_color())
        self.feed = feed
        self.actions = actions
        self.read_only = read_only
        self.commands = commands
        self.themes = themes if themes is not None else load_themes(theme_folders())
        self.chosen = theme if theme is not None else choose_theme(self.themes)
        self.palette: Mapping[str, str] = self.chosen.palette
        self.clock = clock
        self.latest: Snapshot | None = None
        self.paused = False
        self.events = events if events is not None else EventLog()
        # the collector's rings, or (a frozen snapshot) a history given with it
        self.history = history or (feed.collector.history if feed.collector else None)
        self.running: dict[str, Plan] = {}  # actions in flight, by audit target
        for command in commands:
            if command.key is not None and not (read_only and command.dangerous):
                self.bind(command.key, f"command('{command.name}')", description=command.name)

    def on_mount(self) -> None:
        for loaded in self.themes.themes.values():
            self.register_theme(loaded.textual)
        if self.chosen.name not in self.themes.themes:
            self.register_theme(self.chosen.textual)
        self.theme = self.chosen.name
        for problem in self.themes.problems:
            self.notify(f"theme skipped: {problem}", severity="warning", timeout=10)
        self.fleet = FleetScreen(self.palette, self.clock)
        self.push_screen(self.fleet)
        self.run_worker(self.feed.run(self.publish), name="feed", exclusive=True)

    # --- snapshots --------------------------------------------------------------------

    def publish(self, snapshot: Snapshot) -> None:
        if self.latest is None:
            settle_garbage_collector()
        self.latest = snapshot
        self.events.observe(snapshot)
        if not self.paused:
            self.fleet.apply(snapshot)
            if isinstance(self.screen, DetailScreen):
                self.screen.apply(snapshot)

    # --- other screens ----------------------------------------------------------------

    def action_details(self) -> None:
        chosen = self.fleet.selected()
        if chosen is None or self.latest is None:
            return
        screen: DetailScreen
        if isinstance(chosen, NodeStatus):
            screen = NodeScreen(chosen.name, self.history, self.events, self.palette)
        else:
            standby = None
            if self.actions is not None:
                standby = self.actions.config.pool(chosen.name).standby
            screen = PoolScreen(chosen.name, self.history, self.events, self.palette, standby)
        self.push_screen(screen)
        screen.call_after_refresh(screen.apply, self.latest)

    def action_log(self) -> None:
        if self.actions is None:
            self.notify("no audit log: no fleet to act on", severity="warning")
            return
        self.push_screen(LogScreen(self.actions.audit))

    def watch_theme(self, name: str) -> None:
        """A theme of ours brings its status styles; Textual's own keep the last ones."""
        loaded = self.themes.themes.get(name)
        if loaded is None or not hasattr(self, "fleet"):
            return
        self.palette = self.fleet.palette = loaded.palette
        self.fleet.redraw()

    def go_to(self, name: str) -> None:
        """Put the cursor on a node or pool (from the command palette)."""
        self.fleet.go_to(name)

    def act_on(self, action: str, name: str) -> None:
        ack_for = ACK_FOR_S if action == "ack" else None
        self.act(Request(action, name, ack_for=ack_for))

    def incident_notice(self, text: str) -> None:
        """Something outside the console happened (the demo's scripted incident)."""
        self.notify(text, title="incident", severity="warning", timeout=15)

    def action_pause(self) -> None:
        self.paused = not self.paused
        self.fleet.paused = self.paused
        if not self.paused and self.latest is not None:
            self.fleet.apply(self.latest)
        else:
            self.fleet.redraw()
        self.notify("paused: the view is frozen, data still arrives" if self.paused else "live")

    def action_refresh(self) -> None:
        self.feed.refresh()

    # --- help and quitting ------------------------------------------------------------

    def action_help(self) -> None:
        """The console's own keys first (app, then screen), then the focused widget's."""
        screen = self.screen

        def rank(active: ActiveBinding) -> int:
            return 0 if active.node is self else 1 if active.node is screen else 2

        active = sorted(screen.active_bindings.items(), key=lambda item: rank(item[1]))
        self.push_screen(HelpScreen(binding_rows([(key, b.binding) for key, b in active])))

    def action_quit_safely(self) -> None:
        if not self.running:
            self.exit()
            return
        names = ", ".join(plan.summary for plan in self.running.values())
        question = Plan(
            Request("quit", "fleetdeck"),
            f"quit while running: {names}",
            warnings=("the action keeps its intent in the audit log and shows as unfinished",),
        )
        self.push_screen(
            ConfirmModal(question), lambda answer: self.exit() if answer is not None else None
        )

    # --- actions ----------------------------------------------------------------------

    def _node(self) -> NodeStatus | None:
        chosen = self.fleet.selected()
        return chosen if isinstance(chosen, NodeStatus) else None

    def action_drain(self) -> None:
        self._on_node("drain")

    def action_undrain(self) -> None:
        self._on_node("undrain")

    def action_failover(self) -> None:
        self._on_pool("failover")

    def action_failback(self) -> None:
        self._on_pool("failback")

    def action_rollback(self) -> None:
        chosen = self.fleet.selected()
        if chosen is not None:
            self.act(Request("rollback", chosen.name))

    def action_ack(self) -> None:
        chosen = self.fleet.selected()
        if chosen is not None:
            self.act(Request("ack", chosen.name, ack_for=ACK_FOR_S))

    def action_command(self, name: str) -> None:
        command = next(c for c in self.commands if c.name == name)
        chosen: NodeStatus | PoolStatus | None
        chosen = self.fleet.selected_pool() if command.scope == "pool" else self._node()
        if command.scope == "gateway" and self.latest is not None and self.latest.gateways:
            self.act(Request("command", self.latest.gateways[0].name, command=name))
        elif chosen is not None:
            self.act(Request("command", chosen.name, command=name), confirm=command.confirm)

    def _on_node(self, action: str) -> None:
        node = self._node()
        if node is None:
            self.notify(f"{action}: put the cursor on a node", severity="warning")
            return
        self.act(Request(action, node.name))

    def _on_pool(self, action: str) -> None:
        pool = self.fleet.selected_pool()
        if pool is not None:
            self.act(Request(action, pool.name))

    def act(self, request: Request, confirm: bool = True) -> None:
        """Plan on the latest snapshot, confirm in a modal, run in a worker."""
        what = request.command or request.action
        if self.actions is None:
            self.notify(f"{what}: no fleet to act on", severity="warning")
            return
        if self.read_only and request.action != "command":
            self.notify(f"read-only mode: {what} is disabled", severity="warning")
            return
        plan = self.actions.plan(request, self.latest)
        if not confirm and plan.refusal is None:
            self._run(plan, "")
            return
        self.push_screen(
            ConfirmModal(plan),
            lambda reason: self._run(plan, reason) if reason is not None else None,
        )

    def _run(self, plan: Plan, reason: str) -> None:
        request = dataclasses.replace(plan.request, reason=reason or None)
        plan = dataclasses.replace(plan, request=request)
        key = plan.request.target
        self.running[key] = plan
        self.notify(f"running: {plan.summary}")
        self.run_worker(self._execute(key, plan), name=f"action {key}", group="actions")

    async def _execute(self, key: str, plan: Plan) -> None:
        assert self.actions is not None
        try:
            outcome = await self.feed.call(self.actions.execute(plan))
        finally:
            self.running.pop(key, None)
        self._report(outcome)
        self.action_refresh()

    def _report(self, outcome: Outcome) -> None:
        plan = outcome.plan
        targets = (*plan.nodes, *plan.pools) or (plan.request.target,)
        self.events.add(self.clock(), targets, f"{outcome.status}: {plan.summary}")
        lines = [f"{outcome.status}: {outcome.plan.summary}"]
        if outcome.detail:
            lines.append(outcome.detail)
        if outcome.status in ("partial", "failed", "verify_timeout") and outcome.retry:
            lines.append(f"retry: {outcome.retry}")
        sticky = outcome.status in ("partial", "failed")  # stays until dismissed
        self.notify(
            "\n".join(lines),
            severity=OUTCOME_SEVERITY[outcome.status],  # type: ignore[arg-type]
            timeout=None if sticky else 8,
        )
