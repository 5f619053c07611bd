"""The live table draws only the rows in view, and a row that scrolls into view shows its
newest status, not the one it had when it scrolled out."""

from __future__ import annotations

from dataclasses import replace

from textual.app import App, ComposeResult

from console.model import NodeStatus
from console.tui.rows import NODE_COLUMNS, fitting
from console.tui.table import LiveTable
from console.tui.themes import DEFAULT_THEME, load_themes, theme_folders
from tests.tui import frozen

ROWS = 200
SIZE = (100, 20)


def fleet(state: str) -> list[NodeStatus]:
    template = next(n for n in frozen.snapshot().nodes if n.name == "chat-01")
    return [replace(template, name=f"n-{i:03d}", state=state) for i in range(ROWS)]


class TableApp(App[None]):
    def compose(self) -> ComposeResult:
        yield LiveTable(id="table")


def shown_state(table: LiveTable, name: str) -> str:
    return str(table.get_cell(name, "state"))


async def test_rows_out_of_view_catch_up_when_scrolled_to() -> None:
    palette = load_themes(theme_folders()).themes[DEFAULT_THEME].palette
    app = TableApp()
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one(LiveTable)
        table.set_columns(fitting(NODE_COLUMNS, SIZE[0]))
        table.show(fleet("UP"), palette)
        await pilot.pause()
        table.show(fleet("DRAIN"), palette)
        await pilot.pause()
        last = f"n-{ROWS - 1:03d}"
        assert "drain" in shown_state(table, "n-000")
        assert "up" in shown_state(table, last)  # out of view: not formatted yet
        await pilot.press("ctrl+end")  # the cursor to the last row, scrolled into view
        await pilot.pause()
        assert table.cursor_key == last
        assert "drain" in shown_state(table, last)
        bottom = table.render_line(table.size.height - 1)  # the line the terminal gets
        assert "⏸ drain" in bottom.text and last in bottom.text
