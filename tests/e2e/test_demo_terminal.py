"""`fleetdeck demo` in real terminals at 80x24, keys sent as a user types them and the screen
read back: tmux with a 256-colour terminal and as a bastion's console would be (TERM=linux,
NO_COLOR=1); GNU screen with the TERM it gives its windows, in colour and with NO_COLOR=1."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.terminals import (
    COLUMNS,
    ENTER,
    ESCAPE,
    LINES,
    GnuScreen,
    Terminal,
    Tmux,
    alive,
    until,
)

WAIT_S = 30.0
# records what the program will see (its pid, TERM, size) before it becomes the demo
PROBE = 'printf "%s %s %s\\n" "$$" "$TERM" "$(stty size)" > "$0"; exec "$@"'
DETAILS = "node-001  pool pool-a"  # the node screen's title
CONFIRM = "confirm: drain node node-001"


@pytest.fixture
def terminal(request: pytest.FixtureRequest) -> Iterator[Terminal]:
    opened: Terminal = request.param()
    try:
        yield opened
    finally:
        opened.close()


def wait_until(terminal: Terminal, what: str, done: Callable[[str], bool]) -> str:
    deadline = time.monotonic() + WAIT_S
    while not done(shown := terminal.screen()):
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {WAIT_S:g} s; the screen:\n{shown}")
        time.sleep(0.1)
    return shown


def wait_for(terminal: Terminal, text: str) -> str:
    return wait_until(terminal, f"{text!r} did not appear", lambda s: terminal.legible(text) in s)


def wait_gone(terminal: Terminal, text: str) -> str:
    return wait_until(terminal, f"{text!r} stayed", lambda s: terminal.legible(text) not in s)


def wait_quit(terminal: Terminal, pid: int) -> None:
    what = f"the demo (pid {pid}) to quit on q"
    until(what, lambda: not terminal.running() and not alive(pid), WAIT_S)


@pytest.mark.parametrize(
    ("terminal", "environment", "term"),
    [
        (Tmux, {"TERM": "xterm-256color"}, "xterm-256color"),
        (Tmux, {"TERM": "linux", "NO_COLOR": "1"}, "linux"),
        (GnuScreen, {}, "screen"),
        (GnuScreen, {"NO_COLOR": "1"}, "screen"),
    ],
    ids=["tmux-256-colours", "tmux-bastion-console", "screen", "screen-no-colour"],
    indirect=["terminal"],
)
def test_demo_shows_the_fleet_and_drains_from_the_keyboard(
    terminal: Terminal, tmp_path: Path, environment: dict[str, str], term: str
) -> None:
    probe, audit = tmp_path / "probe", tmp_path / "audit.jsonl"
    demo = [sys.executable, "-m", "console", "demo", "--no-incident", "--audit-log", str(audit)]
    terminal.start(
        ["sh", "-c", PROBE, str(probe), *demo], {**environment, "XDG_STATE_HOME": str(tmp_path)}
    )
    screen = wait_for(terminal, "node-012")
    pid, seen_term, rows, columns = probe.read_text().split()
    assert (seen_term, int(columns), int(rows)) == (term, COLUMNS, LINES)
    lines = screen.removesuffix("\n").split("\n")  # not splitlines: see Terminal.screen
    assert "POOL" in screen and "NODE" in screen and "pool-a" in screen
    assert all(len(line) <= COLUMNS for line in lines)
    assert len(lines) == LINES and "q Quit" in lines[-1]  # the footer on the terminal's last row

    terminal.keys("s")  # sort by name: node-001 first
    wait_for(terminal, "sort: name")
    terminal.keys(ENTER)
    wait_for(terminal, DETAILS)
    terminal.keys(ESCAPE)
    wait_gone(terminal, DETAILS)
    terminal.keys("d")
    wait_for(terminal, CONFIRM)
    terminal.keys(ESCAPE)  # declined: nothing runs
    wait_gone(terminal, CONFIRM)
    terminal.keys("d")
    wait_for(terminal, CONFIRM)
    terminal.keys("y")
    wait_for(terminal, "verified: drain node node-001")
    wait_for(terminal, "⏸ drain")  # the row shows it with the next snapshot
    terminal.keys("q")
    wait_quit(terminal, int(pid))

    records = [json.loads(line) for line in audit.read_text().splitlines()]
    intents = [
        (record["action"], record["targets"]) for record in records if record["kind"] == "intent"
    ]
    assert intents == [("drain", ["node-001"])]
