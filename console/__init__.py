"""Fleetdeck: the on-call console for LLM inference fleets."""

__version__ = "0.1.0"
