"""Deploy revisions and run operator hooks on this node, one action at a time.

A rollback runs the configured argv (`{rev}` filled in, no shell), waits for the
engine to answer healthy, and only then records the new current revision. Every step goes
through the history file first (see `_history`), so the history stays consistent whether the
command fails, times out, or the agent dies while it runs. Hooks (`stop_accepting`, `resume`)
run the same way (`{reason}` filled in) as actions of kind "hook"; they never change the
revision.

The server calls this module; it speaks no HTTP itself:

    Deployer(config, hooks).start_rollback(to, reason) -> action id     (Busy, ValueError)
    Deployer.run_hook(name, reason) -> action id                         (Busy, KeyError)
    Deployer.action(id) / .revisions() / .current_revision() / .close()
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from console.agent._command import run_command
from console.agent._history import Action, Deployed, HistoryError, HistoryFile, Record
from console.agent.config import DeployConfig, HookConfig

__all__ = ["Busy", "Deployer", "HealthCheck", "HistoryError", "http_health_check"]

log = logging.getLogger("fleetdeck.agent")

FINISHED_KEPT = 100  # finished actions kept in memory for GET /v1/actions/ID
HEALTH_POLL_MAX_S = 1.0
HEALTH_REQUEST_TIMEOUT_S = 5.0

HealthCheck = Callable[[str], Awaitable[bool]]


class Busy(Exception):
    """Another action runs on this node; the message names it."""


class Deployer:
    """This node's revisions and actions, backed by the history file."""

    def __init__(
        self,
        config: DeployConfig | None,
        hooks: Mapping[str, HookConfig],
        *,
        clock: Callable[[], float] = time.time,
        health_check: HealthCheck | None = None,
    ) -> None:
        self._config = config
        self._hooks = dict(hooks)
        self._clock = clock
        self._health_check = health_check or http_health_check
        self._file = None if config is None else HistoryFile(Path(config.history_file))
        self._record = self._open()
        self._finished: OrderedDict[str, Action] = OrderedDict(
            (action.id, action) for action in reversed(self._record.actions)
        )
        self._running: Action | None = None
        self._task: asyncio.Task[None] | None = None

    # -- reads ----------------------------------------------------------------------------

    def current_revision(self) -> str | None:
        return self._record.current

    def revisions(self) -> dict[str, Any]:
        last = self._last_rollback()
        return {
            "current": self._record.current,
            "history": [deployed.as_json() for deployed in self._record.history],
            "previous": self._record.previous(),
            "last_rollback": None if last is None else last.as_json(),
        }

    def action(self, action_id: str) -> dict[str, Any] | None:
        running = self._running
        if running is not None and running.id == action_id:
            return running.as_json()
        finished = self._finished.get(action_id)
        return None if finished is None else finished.as_json()

    # -- actions --------------------------------------------------------------------------

    async def start_rollback(self, to: str | None, reason: str) -> str:
        """Start deploying `to` (None: the previous revision); returns the action id."""
        config = self._config
        if config is None:
            raise ValueError("this agent has no deployment configured")
        self._ensure_idle()
        target = self._rollback_target(to)
        action = self._new_action("rollback", None, target, reason)
        argv = _render(config.command, rev=target)
        await self._start(action, argv, config.timeout)
        return action.id

    async def run_hook(self, name: str, reason: str) -> str:
        """Start the operator hook `name`; returns the action id."""
        hook = self._hooks.get(name)
        if hook is None:
            raise KeyError(name)
        self._ensure_idle()
        action = self._new_action("hook", name, None, reason)
        argv = _render(hook.command, reason=reason)
        await self._start(action, argv, hook.timeout)
        return action.id

    async def close(self) -> None:
        """Stop a running command (its process group) and record the action interrupted."""
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task])

    # -- internals ------------------------------------------------------------------------

    def _open(self) -> Record:
        """Load the history, settle an action a killed agent left running, note a new deploy."""
        if self._file is None:
            return Record()
        loaded = self._file.load()
        record = Record() if loaded is None else loaded
        now = self._clock()
        if record.running is not None:
            interrupted = replace(
                record.running,
                state="interrupted",
                finished=round(now, 3),
                error="the agent stopped while this action ran; its outcome is unknown, "
                "check the engine and act again",
            )
            log.warning("action %s was interrupted by an agent restart", interrupted.id)
            record = record.finish(interrupted)
        record = self._note_configured(record, now)
        if record != loaded:
            self._file.save(record)
        return record

    def _note_configured(self, record: Record, now: float) -> Record:
        """A changed `current` in the config is a deploy made outside the agent."""
        configured = self._config.current if self._config is not None else None
        if configured is None or configured == record.configured:
            return record
        record = replace(record, configured=configured)
        if configured == record.current:
            return record
        return record.deploy(Deployed(configured, now, "declared in the agent config", None))

    def _ensure_idle(self) -> None:
        running = self._running
        if running is None:
            return
        if running.kind == "rollback":
            what = f"rollback {running.id} to {running.to_revision}"
        else:
            what = f"hook {running.name} {running.id}"
        since = time.strftime("%H:%M:%S", time.gmtime(running.started))
        raise Busy(f"{what} running since {since} UTC (reason: {running.reason})")

    def _rollback_target(self, to: str | None) -> str:
        if to is None:
            previous = self._record.previous()
            if previous is None:
                raise ValueError("no previous revision to roll back to")
            return previous
        if not self._record.knows(to):
            raise ValueError(f"unknown revision {to!r}")
        return to

    def _new_action(self, kind: str, name: str | None, to: str | None, reason: str) -> Action:
        return Action(
            id=secrets.token_hex(4),
            kind=kind,
            name=name,
            from_revision=self._record.current,
            to_revision=to,
            reason=reason,
            state="running",
            started=round(self._clock(), 3),
        )

    async def _start(self, action: Action, argv: tuple[str, ...], limit_s: float) -> None:
        """Claim the node, write the intent, then run the command in the background."""
        self._running = action  # claimed before the first await: a concurrent caller gets Busy
        try:
            await self._save(replace(self._record, running=action))
        except BaseException:
            self._running = None
            raise
        log.info("action %s started: %s (reason: %s)", action.id, list(argv), action.reason)
        self._task = asyncio.create_task(self._execute(action, argv, limit_s))

    async def _execute(self, action: Action, argv: tuple[str, ...], limit_s: float) -> None:
        try:
            result = await run_command(argv, limit_s)
            action = replace(
                action,
                exit_code=result.exit_code,
                output_tail=result.output_tail,
                error=result.error,
            )
            if result.error is None and action.kind == "rollback":
                action = replace(action, error=await self._health_error(action.to_revision))
        except asyncio.CancelledError:
            await self._finish(action, "interrupted", "the agent shut down while it ran")
            raise
        except Exception as exc:  # a bug must leave the action failed, not running forever
            log.exception("action %s crashed", action.id)
            action = replace(action, error=f"internal error: {exc!r}")
        await self._finish(action, "failed" if action.error else "done", action.error)

    async def _health_error(self, revision: str | None) -> str | None:
        """None once the engine answers healthy; the reason it did not in time otherwise."""
        config = self._config
        if config is None or config.health_url is None:
            return None  # nothing to ask: the command's exit code is the verdict
        url, limit = config.health_url, config.health_timeout
        poll_s = min(HEALTH_POLL_MAX_S, limit / 20)
        try:
            async with asyncio.timeout(limit):
                while True:
                    if await self._health_check(url):
                        return None
                    await asyncio.sleep(poll_s)
        except TimeoutError:
            return f"engine not healthy on {revision} at {url} within {limit:g}s"

    async def _finish(self, action: Action, state: str, error: str | None) -> None:
        finished = round(self._clock(), 3)
        action = replace(action, state=state, error=error, finished=finished)
        record = self._record.finish(action)
        if action.kind == "rollback" and state == "done" and action.to_revision is not None:
            record = record.deploy(Deployed(action.to_revision, finished, action.reason, action.id))
        try:
            await self._save(record)
        except HistoryError as exc:
            # the file still shows the action running: a restart will report it interrupted
            self._record = replace(self._record, running=None)
            action = replace(action, state="failed", error=f"{error or 'command succeeded'}; {exc}")
        self._running = None
        self._finished[action.id] = action
        while len(self._finished) > FINISHED_KEPT:
            self._finished.popitem(last=False)
        log.log(
            logging.INFO if action.state == "done" else logging.ERROR,
            "action %s %s: %s",
            action.id,
            action.state,
            action.error or "ok",
        )

    async def _save(self, record: Record) -> None:
        if self._file is not None:
            await asyncio.to_thread(self._file.save, record)
        self._record = record

    def _last_rollback(self) -> Action | None:
        if self._running is not None and self._running.kind == "rollback":
            return self._running
        return next((a for a in reversed(self._finished.values()) if a.kind == "rollback"), None)


def _render(template: Sequence[str], **values: str) -> tuple[str, ...]:
    """Fill the template's placeholder (`{{` is a literal brace); a value is never expanded."""
    return tuple(word.format_map(values) for word in template)


async def http_health_check(url: str) -> bool:
    """The engine is healthy when `url` answers 2xx."""
    import httpx  # only an agent with a health URL pays for it

    try:
        async with httpx.AsyncClient(timeout=HEALTH_REQUEST_TIMEOUT_S) as client:
            response = await client.get(url)
    except httpx.HTTPError as exc:
        log.debug("health check %s: %s", url, exc)
        return False
    return response.is_success
