"""The Textual console: the fleet screen, details and one-key actions."""
