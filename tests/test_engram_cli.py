"""``nexus memory``: list, add, recall and forget what characters remember, run as the real command
with real embeddings; failures are one clear line and exit 1."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.test_cli import assert_one_line_error, nexus

pytestmark = pytest.mark.model


def test_add_list_recall_and_forget_memories(private_data_dir: Path) -> None:
    empty = nexus("memory", "list", "Vega", data_dir=private_data_dir)
    assert empty.returncode == 0 and "Vega remembers nothing yet" in empty.stdout

    for arguments in (
        ("Vega", "Mara grew up on a farm in Ireland."),
        ("Vega", "Mara reads detective novels before bed."),
        ("Bramble", "Bramble's garden has forty rose bushes."),
        ("Vega", "Everyone on the station eats at noon.", "--shared"),
    ):
        added = nexus("memory", "add", *arguments, data_dir=private_data_dir)
        assert added.returncode == 0, added.stderr
    assert "Remembered #4 for every character (shared)." in added.stdout

    listed = nexus("memory", "list", "vega", data_dir=private_data_dir).stdout.splitlines()
    assert listed == [
        "#1     [user] Mara grew up on a farm in Ireland.",
        "#2     [user] Mara reads detective novels before bed.",
        "#4     [shared] Everyone on the station eats at noon.",
    ]
    recalled = nexus(
        "memory", "recall", "Vega", "Where was her childhood home?", "-k", "3", data_dir=private_data_dir
    )
    assert recalled.returncode == 0, recalled.stderr
    lines = recalled.stdout.splitlines()
    assert lines[0].startswith("#1     [user] Mara grew up on a farm in Ireland.  (similarity ")
    assert not any("rose bushes" in line for line in lines)  # Bramble's, never Vega's

    forgot = nexus("memory", "forget", "1", data_dir=private_data_dir)
    assert forgot.returncode == 0 and forgot.stdout.strip() == "Forgot #1: Mara grew up on a farm in Ireland."
    with sqlite3.connect(private_data_dir / "nexus.db") as db:
        assert [row[0] for row in db.execute("SELECT id FROM memory ORDER BY id")] == [2, 3, 4]


def test_bad_requests_fail_with_one_line_and_change_nothing(private_data_dir: Path) -> None:
    assert nexus("memory", "add", "Vega", "A fact.", data_dir=private_data_dir).returncode == 0  # control
    assert_one_line_error(
        nexus("memory", "forget", "99", data_dir=private_data_dir), "There is no memory #99"
    )
    assert_one_line_error(
        nexus("memory", "list", "Nobody", data_dir=private_data_dir), "No character named 'Nobody'"
    )
    assert_one_line_error(
        nexus("memory", "add", "Vega", "   ", data_dir=private_data_dir), "The memory is empty"
    )
    with sqlite3.connect(private_data_dir / "nexus.db") as db:
        assert db.execute("SELECT text FROM memory").fetchall() == [("A fact.",)]
