"""The error tree.

FleetdeckError(message, title)
 ├── ConfigError       a fleet or agent config that cannot be used (carries file:line:col)
 ├── PluginError       a plugin that cannot be loaded or registered
 ├── SourceError       a page or payload a source cannot decode (names the target)
 ├── GatewayError      a gateway replica that refused or failed a command (names the replica)
 │    ├── GatewayUnreachable   no answer: refused, timed out, connection lost
 │    └── GatewayRefused       an error reply (`No such server.`, `Permission denied`, ...)
 ├── ActionError       an action that cannot go ahead (refused, lock held, read-only)
 └── UsageError        a command line that makes no sense
"""

from __future__ import annotations


class FleetdeckError(Exception):
    """Base of every error Fleetdeck reports to a person: one clear line, no traceback."""

    title = "error"

    def __init__(self, message: str, title: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if title is not None:
            self.title = title

    def __str__(self) -> str:
        return self.message


class ConfigError(FleetdeckError):
    title = "config"


class PluginError(FleetdeckError):
    title = "plugin"


class SourceError(FleetdeckError):
    title = "source"


class GatewayError(FleetdeckError):
    """A gateway replica's failure; `replica` is its runtime endpoint (tcp://... or unix://...)."""

    title = "gateway"

    def __init__(self, replica: str, message: str) -> None:
        super().__init__(f"{replica}: {message}")
        self.replica = replica
        self.reason = message


class GatewayUnreachable(GatewayError):
    """The replica did not answer: connection refused, timed out or lost."""


class GatewayRefused(GatewayError):
    """The replica answered with an error reply; `kind` names which (`no_such_server`, ...)."""

    def __init__(self, replica: str, message: str, kind: str) -> None:
        super().__init__(replica, message)
        self.kind = kind


class ActionError(FleetdeckError):
    title = "action"
    exit_code = 1  # refused, as DESIGN.md's table has it for actions


class UsageError(FleetdeckError):
    title = "usage"
