"""Where NEXUS keeps its files.

``NEXUS_DATA_DIR`` overrides the platformdirs location, which tests and portable installs use.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def data_location() -> Path:
    """Where the data folder is, without creating it (the uninstallers ask about it)."""
    override = os.environ.get("NEXUS_DATA_DIR")
    return Path(override) if override else Path(platformdirs.user_data_dir("nexus-desktop", "NEXUS"))


def data_dir() -> Path:
    path = data_location()
    path.mkdir(parents=True, exist_ok=True)
    return path


def database_path() -> Path:
    return data_dir() / "nexus.db"


def models_dir() -> Path:
    path = data_dir() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def log_dir() -> Path:
    path = data_dir() / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def resources_dir() -> Path:
    """``resources/`` beside the package in a checkout, or inside it when installed."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "resources", here / "resources"):
        if candidate.is_dir():
            return candidate
    return here.parent / "resources"
