"""NEXUS Desktop: a local-first AI companion."""

__version__ = "0.1.0"
APP_NAME = "NEXUS Desktop"
