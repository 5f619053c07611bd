"""Run one argv without a shell, bounded in time, keeping the tail of what it printed.

The command runs in its own session, so a timeout (or the agent shutting down) stops the whole
process group: a deploy script's children do not outlive it. Output goes through a pipe the
agent owns, so a background child that inherits it cannot keep the agent waiting either.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass

OUTPUT_TAIL_BYTES = 4096
KILL_GRACE_S = 2.0  # between SIGTERM and SIGKILL to the process group
DRAIN_AFTER_EXIT_S = 0.5  # how long output may still arrive once the command has exited


@dataclass(frozen=True, slots=True)
class CommandResult:
    exit_code: int | None  # None when the command never started
    output_tail: str  # the last OUTPUT_TAIL_BYTES of stdout and stderr together
    error: str | None  # one line when the command did not exit 0 in time


class _TailProtocol(asyncio.Protocol):
    """Keeps the last `limit` bytes read from a pipe."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.tail = bytearray()
        self.closed = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.tail += data
        del self.tail[: -self.limit]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def text(self) -> str:
        return self.tail.decode("utf-8", errors="replace")


async def run_command(argv: Sequence[str], limit_s: float) -> CommandResult:
    """Run `argv`; on timeout or cancellation, stop its process group before returning."""
    loop = asyncio.get_running_loop()
    read_fd, write_fd = os.pipe()
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=write_fd,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        os.close(read_fd)
        return CommandResult(None, "", f"cannot run {argv[0]!r}: {exc.strerror or exc}")
    finally:
        os.close(write_fd)
    output = _TailProtocol(OUTPUT_TAIL_BYTES)
    pipe, _ = await loop.connect_read_pipe(lambda: output, os.fdopen(read_fd, "rb", buffering=0))
    error: str | None = None
    try:
        async with asyncio.timeout(limit_s):
            exit_code = await process.wait()
        if exit_code != 0:
            error = f"{argv[0]} exited with {_describe_exit(exit_code)}"
    except TimeoutError:
        exit_code = await _stop_group(process)
        error = f"{argv[0]} timed out after {limit_s:g}s and was stopped"
    finally:
        if process.returncode is None:  # cancelled: the agent is shutting down
            await _stop_group(process)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(DRAIN_AFTER_EXIT_S):
                await output.closed
        pipe.close()
    return CommandResult(exit_code, output.text(), error)


async def _stop_group(process: asyncio.subprocess.Process) -> int:
    """SIGTERM the process group, then SIGKILL it if the leader outlives the grace period."""
    _signal_group(process.pid, signal.SIGTERM)
    try:
        async with asyncio.timeout(KILL_GRACE_S):
            return await process.wait()
    except TimeoutError:
        _signal_group(process.pid, signal.SIGKILL)
        return await process.wait()


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # the whole group has already exited
        os.killpg(pgid, signum)


def _describe_exit(exit_code: int) -> str:
    if exit_code >= 0:
        return f"code {exit_code}"
    try:
        return f"signal {signal.Signals(-exit_code).name}"
    except ValueError:  # a signal number Python has no name for
        return f"signal {-exit_code}"
