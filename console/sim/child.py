"""What the simulator's real servers share: started and stopped as async context managers, and
for those that are child processes (HAProxy, Prometheus) a folder of their own, a log, free
ports picked again when another process took one first, and a bounded wait until they answer.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Self

from console.errors import FleetdeckError

BIND_ATTEMPTS = 3  # a free port picked here can be taken by someone else before the child binds
POLL_S = 0.02
LOG_TAIL_LINES = 12


class Service:
    """Something started and stopped: `async with` runs it for the block."""

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()


class ChildProcess(Service):
    """A server run as a child process from a folder of its own, removed on stop.

    A subclass picks its ports (`_pick_ports`), writes its files into the folder (`_prepare`),
    names its command line (`_argv`) and says when it answers (`_answers`); a start whose
    failure `_bind_failed` recognises is tried again on other ports."""

    name = "child"  # in messages and file names

    def __init__(self, start_timeout: float) -> None:
        self.start_timeout = start_timeout
        self.folder: Path | None = None
        self.process: asyncio.subprocess.Process | None = None

    @property
    def _folder(self) -> Path:
        if self.folder is None:
            raise RuntimeError(f"{self.name} has not been started")
        return self.folder

    @property
    def log_path(self) -> Path:
        return self._folder / f"{self.name}.log"

    # -- to fill in -------------------------------------------------------------------------

    def _binary(self) -> str:
        raise NotImplementedError

    def _pick_ports(self) -> None:
        raise NotImplementedError

    def _prepare(self) -> None:
        """Write what the child reads, once the ports are picked."""
        raise NotImplementedError

    def _argv(self, binary: str) -> Sequence[str]:
        raise NotImplementedError

    def _answers(self) -> Awaitable[bool]:
        raise NotImplementedError

    @staticmethod
    def _bind_failed(failure: str) -> bool:
        raise NotImplementedError

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Start on free ports; returns once it answers."""
        binary = self._binary()
        self.folder = Path(tempfile.mkdtemp(prefix=f"fleetdeck-{self.name}-"))
        try:
            for attempt in range(1, BIND_ATTEMPTS + 1):
                self._pick_ports()
                self._prepare()
                failure = await self._launch(binary)
                if failure is None:
                    return
                if not self._bind_failed(failure) or attempt == BIND_ATTEMPTS:
                    raise FleetdeckError(f"{self.name} did not start: {failure}", "sim")
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        await self._halt(signal.SIGTERM)
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    async def _launch(self, binary: str) -> str | None:
        """Run the child from its folder; None once it answers, else why not, with the tail
        of its log."""
        with self._open_log() as log:
            self.process = await asyncio.create_subprocess_exec(
                *self._argv(binary),
                cwd=self._folder,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
            )
        return await self._until_it_answers(self._answers)

    async def _until_it_answers(self, answers: Callable[[], Awaitable[bool]]) -> str | None:
        assert self.process is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.start_timeout
        while self.process.returncode is None:
            if await answers():
                return None
            if loop.time() > deadline:
                await self._halt(signal.SIGKILL)
                return f"no answer within {self.start_timeout:g} s; {self._log_tail()}"
            await asyncio.sleep(POLL_S)
        await self.process.wait()
        return f"exit status {self.process.returncode}; {self._log_tail()}"

    async def _halt(self, how: signal.Signals) -> None:
        process, self.process = self.process, None
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGCONT)  # a stopped (paused) child must run to see it
        process.send_signal(how)
        try:
            await asyncio.wait_for(process.wait(), self.start_timeout)
        except TimeoutError:
            process.kill()
            await process.wait()

    def _open_log(self) -> BinaryIO:
        """The log, appended to by every start (the child keeps its own descriptor)."""
        return open(self.log_path, "ab")

    def _log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError as exc:
            return f"no log ({exc.strerror})"
        tail = " | ".join(line.strip() for line in lines[-LOG_TAIL_LINES:] if line.strip())
        return f"{self.name} said: {tail or '(nothing)'}"
