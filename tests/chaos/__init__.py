"""Fault scenarios at full size, as commands (see README.md)."""
