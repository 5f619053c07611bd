"""`fleetdeck demo` in a real terminal: tmux at 80x24, keys sent as a user types them, the
screen read back with capture-pane. Once with a 256-colour terminal, once as a bastion's
console would be (TERM=linux, NO_COLOR=1)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

WAIT_S = 30.0


def _tmux() -> str:
    found = shutil.which("tmux")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("tmux is not installed (CI is set, so the terminal tests must run)")
        pytest.skip("tmux is not installed")
    return found


class Terminal:
    def __init__(self, tmux: str, socket: str) -> None:
        self.tmux, self.socket = tmux, socket

    def run(self, *args: str) -> str:
        command = [self.tmux, "-L", self.socket, *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=10).stdout

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "demo")

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", "demo", *keys)

    def wait_for(self, text: str) -> str:
        deadline = time.monotonic() + WAIT_S
        while True:
            shown = self.screen()
            if text in shown:
                return shown
            if time.monotonic() > deadline:
                pytest.fail(f"{text!r} did not appear within {WAIT_S:g} s; the screen:\n{shown}")
            time.sleep(0.2)


@pytest.fixture
def terminal() -> Iterator[Terminal]:
    running = Terminal(_tmux(), f"fleetdeck-test-{uuid.uuid4().hex[:8]}")
    try:
        yield running
    finally:
        running.run("kill-server")


@pytest.mark.parametrize(
    "environment",
    [{"TERM": "xterm-256color"}, {"TERM": "linux", "NO_COLOR": "1"}],
    ids=["256-colours", "bastion-console"],
)
def test_demo_shows_the_fleet_and_drains_from_the_keyboard(
    terminal: Terminal, tmp_path: Path, environment: dict[str, str]
) -> None:
    settings = " ".join(f"{key}={value}" for key, value in environment.items())
    command = (
        f"env {settings} XDG_STATE_HOME={tmp_path} {sys.executable} -m console demo "
        f"--no-incident --audit-log {tmp_path}/audit.jsonl"
    )
    terminal.run(
        "new-session", "-d", "-s", "demo", "-x", "80", "-y", "24", "-c", os.getcwd(), command
    )
    screen = terminal.wait_for("node-012")
    assert "POOL" in screen and "NODE" in screen and "pool-a" in screen
    assert all(len(line) <= 80 for line in screen.splitlines())
    terminal.keys("s")  # sort by name: node-001 first
    terminal.wait_for("sort: name")
    terminal.keys("d")
    terminal.wait_for("confirm: drain node node-001")
    terminal.keys("y")
    terminal.wait_for("verified: drain node node-001")
    terminal.wait_for("⏸ drain")  # the row shows it with the next snapshot
    terminal.keys("q")
    deadline = time.monotonic() + WAIT_S
    while "demo" in terminal.run("list-sessions"):
        assert time.monotonic() < deadline, "the demo did not quit on q"
        time.sleep(0.2)
