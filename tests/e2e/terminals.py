"""Real terminals a test can run a program in, type into and read back: tmux and GNU screen,
each a small driver behind one `Terminal` protocol. Every driver runs a private server (its own
socket), ignores the user's configuration files, and `close()` waits until that server is gone."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol, TypeVar

import psutil
import pytest

COLUMNS, LINES = 80, 24
ENTER, ESCAPE = "\r", "\x1b"  # the bytes a terminal sends for these keys
COMMAND_S = 10.0  # bound on one command to a terminal's server, and on its answer
CLOSE_S = 10.0  # bound on a server going away after close()
Found = TypeVar("Found")


class Terminal(Protocol):
    """A terminal of COLUMNS x LINES with one program in it."""

    def start(self, command: Sequence[str], env: Mapping[str, str]) -> None:
        """Run command in the terminal, with env over the environment the terminal gives it
        (a TERM in env replaces the terminal's own)."""

    def screen(self) -> str:
        """The visible lines as this terminal reads them back (see `legible`), each ended by a
        newline. Split them on "\\n" only: a cell read back may hold "\\x0c" or "\\x85"."""

    def legible(self, text: str) -> str:
        """text as `screen()` shows it."""

    def keys(self, typed: str) -> None:
        """Send typed as the bytes of a user's keystrokes (ENTER, ESCAPE for those keys)."""

    def running(self) -> bool:
        """Whether the program is still in the terminal."""

    def close(self) -> None:
        """Take the terminal and whatever still runs in it down."""


def require(executable: str) -> str:
    """The executable's path; a test without it skips, or fails where CI is set."""
    found = shutil.which(executable)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(f"{executable} is not installed (CI is set, so terminal tests must run)")
        pytest.skip(f"{executable} is not installed")
    return found


def with_environment(command: Sequence[str], env: Mapping[str, str]) -> list[str]:
    return ["env", *(f"{key}={value}" for key, value in env.items()), *command]


def poll(what: str, found: Callable[[], Found | None], bound_s: float = COMMAND_S) -> Found:
    """found()'s first answer that is not None, asked until bound_s has passed."""
    deadline = time.monotonic() + bound_s
    while (answer := found()) is None:
        if time.monotonic() > deadline:
            pytest.fail(f"waited {bound_s:g} s for {what}")
        time.sleep(0.02)
    return answer


def until(what: str, condition: Callable[[], bool], bound_s: float = COMMAND_S) -> None:
    poll(what, lambda: True if condition() else None, bound_s)


def alive(pid: int) -> bool:
    """Whether the process runs (a zombie nobody reaped does not)."""
    try:
        status: str = psutil.Process(pid).status()
    except psutil.NoSuchProcess:
        return False
    return bool(status != psutil.STATUS_ZOMBIE)


def _run(command: Sequence[str], env: Mapping[str, str] | None = None) -> str:
    """The command's output; its exit status tells nothing the caller uses."""
    return subprocess.run(
        command, capture_output=True, text=True, timeout=COMMAND_S, env=env
    ).stdout


class Tmux:
    """tmux on its own socket (-S, in a folder of its own: tmux leaves the file behind); the
    screen read with capture-pane, keys sent as hex bytes."""

    def __init__(self) -> None:
        executable = require("tmux")
        self.folder = Path(tempfile.mkdtemp(prefix="fd-tmux-"))
        self.command = [executable, "-f", "/dev/null", "-S", str(self.folder / "socket")]
        self.server: int | None = None  # its pid, once started

    def _tmux(self, *args: str) -> str:
        return _run([*self.command, *args])

    def start(self, command: Sequence[str], env: Mapping[str, str]) -> None:
        size = ["-x", str(COLUMNS), "-y", str(LINES)]
        program = shlex.join(with_environment(command, env))  # tmux runs it with sh -c
        self._tmux("new-session", "-d", "-s", "demo", *size, "-c", os.getcwd(), program)
        self.server = int(self._tmux("display-message", "-p", "-t", "demo", "#{pid}"))

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", "demo")

    def legible(self, text: str) -> str:
        return text

    def keys(self, typed: str) -> None:
        self._tmux("send-keys", "-t", "demo", "-H", *(f"{byte:02x}" for byte in typed.encode()))

    def running(self) -> bool:
        return "demo:" in self._tmux("list-sessions")

    def close(self) -> None:
        self._tmux("kill-server")
        server = self.server
        if server is not None:
            until("tmux to quit", lambda: not alive(server), CLOSE_S)
        shutil.rmtree(self.folder)


class GnuScreen:
    """GNU screen with its own socket folder (SCREENDIR) and no screenrc at all; the screen is
    read with hardcopy, keys are sent with stuff. Detached, screen gives its window 80x24 and
    cannot resize it (width and height need a display), so start() checks the size instead.
    Only start() asks screen a question (-Q): a query the session ends before answering hangs
    its client, so whether the session still runs is read from its server's process."""

    def __init__(self) -> None:
        self.executable = require("screen")
        self.folder = Path(tempfile.mkdtemp(prefix="fd-screen-"))
        self.sockets = self.folder / "sockets"
        self.sockets.mkdir(mode=0o700)  # screen refuses a socket folder others can enter
        self.hardcopy = self.folder / "hardcopy"
        self.environment = {
            **os.environ,
            "SCREENDIR": str(self.sockets),
            "SYSSCREENRC": "/dev/null",
        }
        self.server: int | None = None  # its pid, once started

    def _screen(self, *args: str) -> str:
        return _run([self.executable, "-S", "demo", *args], self.environment)

    def start(self, command: Sequence[str], env: Mapping[str, str]) -> None:
        # -U: a UTF-8 window whatever the locale; -h 0: no scrollback
        options = ["-U", "-c", "/dev/null", "-d", "-m", "-h", "0"]
        self._screen(*options, *with_environment(command, env))
        self.server = int(poll("screen's session to start", self._server_socket))
        try:
            info = self._screen("-Q", "info")  # e.g. "(1,1)/(80,24)+0 +(+)flow UTF-8 0(env)"
        except subprocess.TimeoutExpired:
            pytest.fail(f"screen -Q info got no answer in {COMMAND_S:g} s (the program ended?)")
        size = re.search(r"/\((\d+),(\d+)\)", info)
        if size is None or (int(size[1]), int(size[2])) != (COLUMNS, LINES):
            pytest.fail(f"screen's window is not {COLUMNS}x{LINES}: its info says {info!r}")

    def _server_socket(self) -> str | None:
        """The server's pid, from its socket's name (PID.demo)."""
        for socket in self.sockets.iterdir():
            if named := re.fullmatch(r"(\d+)\.demo", socket.name):
                return named[1]
        return None

    def screen(self) -> str:
        self.hardcopy.unlink(missing_ok=True)
        self._screen("-X", "hardcopy", str(self.hardcopy))
        return poll("screen's hardcopy", self._hardcopy)

    def _hardcopy(self) -> str | None:
        """The file once whole (-X does not wait for it): a line, ended by a newline, for each
        of the window's rows."""
        try:
            written = self.hardcopy.read_bytes()
        except FileNotFoundError:
            written = b""
        if written.count(b"\n") == LINES:
            return written.decode("latin-1")
        return None if self.running() else ""  # an ended session shows nothing

    def legible(self, text: str) -> str:
        """screen 4's hardcopy writes the low byte of each cell only (the rest of a code point
        past U+00FF is in a font byte it leaves out): "⏸" (U+23F8) reads back as "ø"."""
        return "".join(chr(ord(char) & 0xFF) for char in text)

    def keys(self, typed: str) -> None:
        # as octal escapes: stuff's argument goes through screen's parser, which expands $VAR
        self._screen("-X", "stuff", "".join(f"\\{byte:03o}" for byte in typed.encode()))

    def running(self) -> bool:
        return self.server is not None and alive(self.server)

    def close(self) -> None:
        self._screen("-X", "quit")
        until("screen to quit", lambda: not self.running(), CLOSE_S)
        shutil.rmtree(self.folder)  # with the socket a client killed on its timeout leaves
