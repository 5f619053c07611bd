"""The error tree.

FleetdeckError(message, title)
 ├── ConfigError       a fleet or agent config that cannot be used (carries file:line:col)
 ├── PluginError       a plugin that cannot be loaded or registered
 ├── SourceError       a page or payload a source cannot decode (names the target)
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


class UsageError(FleetdeckError):
    title = "usage"
