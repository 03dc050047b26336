"""Shared test set-up: offscreen Qt, a private data dir per test, and the keyring fixtures."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

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


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    from nexus_desktop.llm.catalog import default_model_path

    path = default_model_path()
    if path is None:
        pytest.fail("The default model is not installed; run: bash installers/setup.sh --test")
    return path
