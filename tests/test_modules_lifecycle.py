"""Module states persist in SQLite, every change is audited, and only approved files run."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError
from sqlmodel import SQLModel

from nexus_desktop.db.migrations import MIGRATIONS
from nexus_desktop.db.store import AsyncStore, Store
from nexus_desktop.modules.discovery import discover
from nexus_desktop.modules.errors import TransitionError, UnknownModuleError
from nexus_desktop.modules.lifecycle import (
    ALLOWED_TRANSITIONS,
    QUARANTINE_AFTER_FAILURES,
    ModuleLifecycle,
    ModuleState,
)
from nexus_desktop.modules.tables import ModuleEvent, ModuleRecord
from tests.hostile.modules import write_module

S = ModuleState


@pytest.fixture
def dev_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "dev"
    write_module(folder / "dice")
    return folder


def sync(lifecycle: ModuleLifecycle, dev_dir: Path, tmp_path: Path) -> None:
    found = discover(bundled_dir=tmp_path / "none", user_dir=tmp_path / "none", developer_dir=dev_dir)
    lifecycle.sync(found)


def transitions(lifecycle: ModuleLifecycle, name: str = "dice-roller") -> list[tuple[str | None, str]]:
    return [(event.from_state, event.to_state) for event in lifecycle.history(name)]


def edit_code(dev_dir: Path) -> None:
    main = dev_dir / "dice" / "dice_roller" / "main.py"
    main.write_text(main.read_text() + "\n# tweaked\n")


def approve_then_edit(lifecycle: ModuleLifecycle, dev_dir: Path, tmp_path: Path) -> None:
    """The user approves dice-roller, then its code is edited and the folders are looked at again."""
    sync(lifecycle, dev_dir, tmp_path)
    lifecycle.approve("dice-roller")
    edit_code(dev_dir)
    sync(lifecycle, dev_dir, tmp_path)


def test_the_module_tables_match_their_migration(store: Store) -> None:
    conn = sqlite3.connect(store.path)
    for model in (ModuleRecord, ModuleEvent):
        table = SQLModel.metadata.tables[str(model.__tablename__)]
        columns = {row[1] for row in conn.execute(f"PRAGMA table_info({table.name})")}
        assert columns == {c.name for c in table.columns}, table.name


def test_a_database_from_before_modules_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with create_engine(f"sqlite:///{path}").begin() as old:  # the schema the first release wrote
        MIGRATIONS[0](old)
        old.execute(text("PRAGMA user_version = 1"))
        old.execute(text("INSERT INTO setting VALUES ('settings', '{}')"))
    store = Store(path)  # runs only the steps after 1
    store.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] >= 2
    assert conn.execute("SELECT count(*) FROM module").fetchone()[0] == 0
    assert conn.execute("SELECT key FROM setting").fetchall() == [("settings",)]


def test_a_new_module_waits_for_approval_and_the_steps_are_audited(
    store: Store, dev_dir: Path, tmp_path: Path
) -> None:
    lifecycle = ModuleLifecycle(store.engine)
    sync(lifecycle, dev_dir, tmp_path)
    row = lifecycle.get("dice-roller")
    assert row.state == S.AWAITING_APPROVAL
    assert row.active and row.approved_hash is None
    assert transitions(lifecycle) == [
        (None, "discovered"),
        ("discovered", "validated"),
        ("validated", "awaiting_approval"),
    ]


def test_state_and_audit_log_survive_a_restart(store: Store, dev_dir: Path, tmp_path: Path) -> None:
    lifecycle = ModuleLifecycle(store.engine)
    sync(lifecycle, dev_dir, tmp_path)
    lifecycle.approve("dice-roller", access=["Connect to example.org"])
    store.close()
    reopened = Store(store.path)
    try:
        again = ModuleLifecycle(reopened.engine)
        row = again.get("dice-roller")
        assert row.state == S.ENABLED
        assert row.approved_access == ["Connect to example.org"]
        assert transitions(again)[-1] == ("awaiting_approval", "enabled")
        assert again.history("dice-roller")[-1].reason == "approved by you"
    finally:
        reopened.close()


def test_approval_records_the_content_hash(store: Store, dev_dir: Path, tmp_path: Path) -> None:
    lifecycle = ModuleLifecycle(store.engine)
    sync(lifecycle, dev_dir, tmp_path)
    row = lifecycle.approve("dice-roller")
    assert row.approved_hash == row.content_hash
    assert row.approved_at is not None


def test_approving_files_that_changed_since_the_review_is_refused(
    store: Store, dev_dir: Path, tmp_path: Path
) -> None:
    lifecycle = ModuleLifecycle(store.engine)
    sync(lifecycle, dev_dir, tmp_path)
    reviewed = lifecycle.get("dice-roller").content_hash
    edit_code(dev_dir)
    sync(lifecycle, dev_dir, tmp_path)
    with pytest.raises(TransitionError, match="changed while you were reviewing them; review it again"):
        lifecycle.approve("dice-roller", expected_hash=reviewed)
    assert lifecycle.get("dice-roller").state == S.AWAITING_APPROVAL


def test_changed_code_after_approval_needs_approval_again(
    store: Store, dev_dir: Path, tmp_path: Path
) -> None:
    lifecycle = ModuleLifecycle(store.engine)
    approve_then_edit(lifecycle, dev_dir, tmp_path)
    row = lifecycle.get("dice-roller")
    assert row.state == S.AWAITING_APPROVAL
    assert row.reason == "its files changed since you approved them"
    assert transitions(lifecycle)[-1] == ("enabled", "awaiting_approval")
    with pytest.raises(TransitionError, match="has not been approved as it is now; approve it first"):
        lifecycle.enable("dice-roller")


def test_developer_mode_keeps_an_edited_developer_module_enabled(
    store: Store, dev_dir: Path, tmp_path: Path
) -> None:
    lifecycle = ModuleLifecycle(store.engine, developer_mode=True)
    approve_then_edit(lifecycle, dev_dir, tmp_path)
    row = lifecycle.get("dice-roller")
    assert row.state == S.ENABLED
    assert row.content_hash != row.approved_hash
    assert "developer mode" in row.reason
    # Once developer mode is off, the unapproved edit is caught.
    strict = ModuleLifecycle(store.engine, developer_mode=False)
    sync(strict, dev_dir, tmp_path)
    assert strict.get("dice-roller").state == S.AWAITING_APPROVAL


def test_re_approving_developer_edits_pins_the_new_hash_and_is_audited(
    store: Store, dev_dir: Path, tmp_path: Path
) -> None:
    lifecycle = ModuleLifecycle(store.engine, developer_mode=True)
    approve_then_edit(lifecycle, dev_dir, tmp_path)
    row = lifecycle.approve("dice-roller")
    assert row.approved_hash == row.content_hash
    assert transitions(lifecycle)[-1] == ("enabled", "enabled")
    assert lifecycle.history("dice-roller")[-1].reason == "approved again by you"


def test_developer_mode_does_not_exempt_installed_modules(store: Store, tmp_path: Path) -> None:
    user_dir = tmp_path / "modules"
    write_module(user_dir / "dice-roller" / "1.0.0")
    lifecycle = ModuleLifecycle(store.engine, developer_mode=True)
    lifecycle.sync(discover(bundled_dir=tmp_path / "none", user_dir=user_dir))
    lifecycle.approve("dice-roller")
    main = user_dir / "dice-roller" / "1.0.0" / "dice_roller" / "main.py"
    main.write_text(main.read_text() + "# tampered\n")
    lifecycle.sync(discover(bundled_dir=tmp_path / "none", user_dir=user_dir))
    assert lifecycle.get("dice-roller").state == S.AWAITING_APPROVAL


def test_developer_mode_still_needs_the_first_approval(store: Store, dev_dir: Path, tmp_path: Path) -> None:
    lifecycle = ModuleLifecycle(store.engine, developer_mode=True)
    sync(lifecycle, dev_dir, tmp_path)
    with pytest.raises(TransitionError, match="approve it first"):
        lifecycle.enable("dice-roller")


@pytest.mark.parametrize(
    ("start", "target"),
    [(S.QUARANTINED, S.ENABLED), (S.DISCOVERED, S.ENABLED), (S.AWAITING_APPROVAL, S.VALIDATED)],
)
def test_the_transition_table_refuses_illegal_moves(start: ModuleState, target: ModuleState) -> None:
    assert target not in ALLOWED_TRANSITIONS[start]


def test_every_state_has_a_way_out_and_enabled_is_reachable_only_after_validation() -> None:
    assert set(ALLOWED_TRANSITIONS) == set(ModuleState)
    assert all(ALLOWED_TRANSITIONS[state] for state in ModuleState)
    assert S.ENABLED not in ALLOWED_TRANSITIONS[S.DISCOVERED]


def test_a_quarantined_module_cannot_be_enabled_directly_and_nothing_is_logged(
    store: Store, dev_dir: Path, tmp_path: Path
) -> None:
    lifecycle = ModuleLifecycle(store.engine)
    sync(lifecycle, dev_dir, tmp_path)
    lifecycle.approve("dice-roller")
    lifecycle.quarantine("dice-roller", "reported as malicious")
    before = transitions(lifecycle)
    with pytest.raises(TransitionError) as caught:
        lifecycle.enable("dice-roller")
    assert str(caught.value) == (
        "dice-roller cannot go from quarantined to enabled; release it for review first."
    )
    assert transitions(lifecycle) == before
    assert lifecycle.get("dice-roller").state == S.QUARANTINED
    lifecycle.release("dice-roller")
    assert lifecycle.get("dice-roller").state == S.AWAITING_APPROVAL


def test_repeated_failures_quarantine_a_module_and_a_success_resets_the_count(
    store: Store, dev_dir: Path, tmp_path: Path
) -> None:
    lifecycle = ModuleLifecycle(store.engine)
    sync(lifecycle, dev_dir, tmp_path)
    lifecycle.approve("dice-roller")
    row = lifecycle.record_failure("dice-roller", {"error": "ZeroDivisionError"})
    assert (row.state, row.failure_count) == (S.FAILED, 1)
    row = lifecycle.record_success("dice-roller", {"calls": 3})
    assert (row.state, row.failure_count, row.last_report) == (S.ENABLED, 0, {"calls": 3})
    for _ in range(QUARANTINE_AFTER_FAILURES):
        row = lifecycle.record_failure("dice-roller", {"error": "ZeroDivisionError"})
    assert row.state == S.QUARANTINED
    assert row.reason == f"failed {QUARANTINE_AFTER_FAILURES} times in a row; last: ZeroDivisionError"
    assert row.last_report == {"error": "ZeroDivisionError"}


def test_a_module_that_breaks_on_disk_fails_and_recovers_once_fixed(
    store: Store, dev_dir: Path, tmp_path: Path
) -> None:
    lifecycle = ModuleLifecycle(store.engine)
    sync(lifecycle, dev_dir, tmp_path)
    lifecycle.approve("dice-roller")
    manifest = dev_dir / "dice" / "nexus-module.json"
    good = manifest.read_text()
    manifest.write_text(good.replace('"1.0.0"', '"one"'))
    sync(lifecycle, dev_dir, tmp_path)
    row = lifecycle.get("dice-roller")
    assert row.state == S.FAILED
    assert "field 'version'" in row.reason
    manifest.write_text(good)
    sync(lifecycle, dev_dir, tmp_path)
    assert lifecycle.get("dice-roller").state == S.ENABLED  # the very files approved before


def test_a_disabled_module_stays_disabled_when_rediscovered(
    store: Store, dev_dir: Path, tmp_path: Path
) -> None:
    lifecycle = ModuleLifecycle(store.engine)
    sync(lifecycle, dev_dir, tmp_path)
    lifecycle.approve("dice-roller")
    lifecycle.disable("dice-roller")
    sync(lifecycle, dev_dir, tmp_path)
    assert lifecycle.get("dice-roller").state == S.DISABLED
    assert lifecycle.enable("dice-roller").state == S.ENABLED


def test_a_module_whose_folder_is_gone_is_removed_but_its_history_stays(
    store: Store, dev_dir: Path, tmp_path: Path
) -> None:
    lifecycle = ModuleLifecycle(store.engine)
    sync(lifecycle, dev_dir, tmp_path)
    shutil.rmtree(dev_dir / "dice")
    sync(lifecycle, dev_dir, tmp_path)
    with pytest.raises(UnknownModuleError, match="No module dice-roller is installed"):
        lifecycle.get("dice-roller")
    assert transitions(lifecycle)[-1] == ("awaiting_approval", "removed")


def test_the_audit_log_cannot_be_edited_or_deleted(store: Store, dev_dir: Path, tmp_path: Path) -> None:
    sync(ModuleLifecycle(store.engine), dev_dir, tmp_path)
    with store.engine.connect() as conn:
        for statement in ("UPDATE module_event SET reason = 'nothing'", "DELETE FROM module_event"):
            with pytest.raises(DBAPIError, match="append-only"):
                conn.exec_driver_sql(statement)
            conn.rollback()


def test_async_callers_use_the_store_thread(store: Store, dev_dir: Path, tmp_path: Path) -> None:
    lifecycle = ModuleLifecycle(store.engine)
    sync(lifecycle, dev_dir, tmp_path)
    async_store = AsyncStore(store)

    async def approve() -> ModuleRecord:
        return await async_store.call(lifecycle.approve, "dice-roller")

    try:
        assert asyncio.run(approve()).state == S.ENABLED
    finally:
        async_store.close()
