"""The command palette (`:` or ctrl+p): jump to any node or pool by fuzzy name, run any action
on it, switch theme. Textual's own commands (quit, keys, screenshot) stay beside these."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from textual.command import Hit, Hits, Provider

if TYPE_CHECKING:
    from console.tui.app import FleetdeckApp

NODE_ACTIONS = ("drain", "undrain", "rollback", "ack")
POOL_ACTIONS = ("failover", "failback", "rollback", "ack")


class FleetCommands(Provider):
    def _commands(self) -> list[tuple[str, Callable[[], object], str]]:
        app: FleetdeckApp = self.app  # type: ignore[assignment]
        found: list[tuple[str, Callable[[], object], str]] = []
        snapshot = app.latest
        if snapshot is not None:
            for node in snapshot.nodes:
                found.append((f"go to node {node.name}", partial(app.go_to, node.name), node.pool))
                for action in NODE_ACTIONS:
                    found.append(
                        (f"{action} {node.name}", partial(app.act_on, action, node.name), "node")
                    )
            for pool in snapshot.pools:
                found.append((f"go to pool {pool.name}", partial(app.go_to, pool.name), "pool"))
                for action in POOL_ACTIONS:
                    found.append(
                        (f"{action} {pool.name}", partial(app.act_on, action, pool.name), "pool")
                    )
        for name in app.themes.names:
            found.append((f"theme {name}", partial(setattr, app, "theme", name), "switch theme"))
        return found

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, command, help_text in self._commands():
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), command, text=text, help=help_text)
