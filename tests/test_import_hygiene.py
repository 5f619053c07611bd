"""The headless commands never import textual: they start fast and print pure data."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEADLESS = ["status", "watch", "check", "config_check", "act", "audit"]


@pytest.mark.parametrize("command", HEADLESS)
def test_headless_command_does_not_import_textual(command: str) -> None:
    # Import the command, build the whole parser and import everything `run` imports.
    code = f"""
import sys
import console.cli
console.cli.build_parser()
import console.commands.{command}
import console.headless, console.collector, console.render, console.config, console.snapshot
import console.actions, console.audit, console.overlay
from console.plugin import load_registry
load_registry()
bad = sorted(m for m in sys.modules if m == "textual" or m.startswith("textual."))
print(",".join(bad))
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "", f"textual imported: {result.stdout.strip()}"
