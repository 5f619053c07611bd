"""Argument types shared by subcommands (standard library only: parsers are built eagerly)."""

from __future__ import annotations

import argparse

from console.durations import parse_duration


def duration(text: str) -> float:
    """`2`, `2s`, `500ms`, `1m` -> seconds, more than zero."""
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"bad duration '{text}': must be more than zero")
    return seconds


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got '{text}'")
    return value
