"""Exit codes, as DESIGN.md's table fixes them for every subcommand."""

from __future__ import annotations

import enum


class Exit(enum.IntEnum):
    OK = 0
    WARN = 1  # check: WARN; actions: refused; config check: invalid
    CRIT = 2  # check: CRIT; actions: failed
    UNKNOWN = 3  # check: UNKNOWN (also usage and config errors); actions: partial
    VERIFY_TIMEOUT = 4
    USAGE = 64
    CONFIG = 78
