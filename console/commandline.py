"""How a printed fleetdeck command is spelt for the console that prints it.

Retry, revert, re-apply and forget commands are meant to be pasted as they are, so they carry
the options that found this fleet and its audit log (after the subcommand, where every command
takes them) and `--yes`.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from console.fleet import FleetConfig


@dataclass(frozen=True, slots=True)
class CommandLine:
    program: tuple[str, ...] = ("fleetdeck",)
    options: tuple[str, ...] = ()  # e.g. ("-c", "/etc/fleetdeck/fleet.yaml")

    def __call__(self, *words: str, force: bool = False) -> str:
        extra = ("--force",) if force else ()
        return shlex.join([*self.program, *words, *self.options, *extra, "--yes"])

    @classmethod
    def for_fleet(cls, config: FleetConfig, audit_log: str | None = None) -> CommandLine:
        """`-c` for a fleet read from a file; `--audit-log` when one was named on the command
        line (a log named in the config comes with `-c`)."""
        options: list[str] = []
        if config.path is not None:
            options += ["-c", config.path]
        if audit_log is not None:
            options += ["--audit-log", audit_log]
        return cls(options=tuple(options))
