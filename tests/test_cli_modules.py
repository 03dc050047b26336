"""`nexus modules`: the gallery's states from a terminal, and releasing a quarantined module."""

from __future__ import annotations

from pathlib import Path

from nexus_desktop import paths
from nexus_desktop.db.store import Store
from nexus_desktop.modules.lifecycle import QUARANTINE_AFTER_FAILURES, ModuleLifecycle
from tests.test_cli import assert_one_line_error, nexus


def states(data_dir: Path) -> dict[str, list[str]]:
    """``nexus modules list`` as name -> [version, state, reason]."""
    result = nexus("modules", "list", data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["NAME", "VERSION", "STATE", "REASON"]
    return {row.split()[0]: row.split(maxsplit=3)[1:] for row in rows}


def test_modules_list_then_release_a_quarantined_module_for_review(private_data_dir: Path) -> None:
    listed = states(private_data_dir)
    assert listed["dice"] == ["1.0.0", "enabled", "bundled with NEXUS Desktop"]

    store = Store(paths.database_path())  # the dice module fails three times, as the app records it
    try:
        lifecycle = ModuleLifecycle(store.engine)
        for _ in range(QUARANTINE_AFTER_FAILURES):
            lifecycle.record_failure("dice", {"error": "dice failed in call_tool: ValueError: no dice"})
    finally:
        store.close()
    assert states(private_data_dir)["dice"][1:] == [
        "quarantined",
        "failed 3 times in a row; last: dice failed in call_tool: ValueError: no dice",
    ]

    released = nexus("modules", "release", "dice", data_dir=private_data_dir)
    assert released.returncode == 0, released.stderr
    assert "Released dice 1.0.0 from quarantine" in released.stdout
    assert "dice passed validation; approve it in Modules" in released.stdout
    # Waiting for a person, even though it is bundled: nothing approves it behind their back.
    assert states(private_data_dir)["dice"][1] == "awaiting_approval"

    again = nexus("modules", "release", "dice", data_dir=private_data_dir)
    assert_one_line_error(again, "dice is not quarantined, so there is nothing to release.")
    unknown = nexus("modules", "release", "no-such-module", data_dir=private_data_dir)
    assert_one_line_error(unknown, "No module no-such-module is installed")
