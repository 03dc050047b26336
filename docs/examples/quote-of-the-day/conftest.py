"""Lets ``pytest tests/`` import the module's package when run from this folder."""
