"""Shared test set-up: offscreen Qt, a private data dir per test, a database, a log file, and the
keyring fixtures."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from nexus_desktop import logs
from nexus_desktop.db.store import Store

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

pytest_plugins = ["tests.conftest_keyring", "tests.servers", "tests.ui_support"]


@pytest.fixture(autouse=True)
def private_data_dir(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """Every test gets its own NEXUS data dir, so no test sees another's (or the user's) data."""
    path = tmp_path_factory.mktemp("nexus-data")
    monkeypatch.setenv("NEXUS_DATA_DIR", str(path))
    yield path


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A fresh NEXUS database in ``tmp_path``, closed after the test."""
    store = Store(tmp_path / "nexus.db")
    yield store
    store.close()


@pytest.fixture
def log_file(tmp_path: Path) -> Iterator[Path]:
    """NEXUS logging at DEBUG into ``tmp_path/logs``; the root logger is put back afterwards."""
    root = logging.getLogger()
    level = root.level
    path = logs.setup_logging(tmp_path / "logs", logging.DEBUG)
    yield path
    for handler in list(root.handlers):
        if getattr(handler, "_nexus_managed", False):
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    from nexus_desktop.llm.catalog import default_model_path

    path = default_model_path()
    if path is None:
        pytest.fail("The default model is not installed; run: bash installers/setup.sh --test")
    return path
