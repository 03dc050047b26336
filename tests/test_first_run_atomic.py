"""A first run or a migration killed at any point leaves nothing the next start cannot finish.

Each case runs the real first start in a child process and SIGKILLs it at the Nth kill point:
before every COMMIT of the app's first start (migrations, the bundled characters, module
discovery and the bundled modules' approval), and for migrations before every SQL statement too.
SQLAlchemy events the child installs land the kill exactly there instead of by timing; killing
before a commit leaves the state right after the one before it.  N walks up until the run
completes without reaching N.  After each kill the next start, on the same data folder, must reach
the same state as an uninterrupted first run.
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection
from sqlmodel import SQLModel

from nexus_desktop.cards.io import load_card
from nexus_desktop.db import (
    migrations,
    tables,  # noqa: F401  (registers the tables in SQLModel.metadata)
)
from nexus_desktop.db.engine import open_engine
from nexus_desktop.db.migrations import MIGRATIONS
from nexus_desktop.db.store import Store
from nexus_desktop.modules import tables as module_tables  # noqa: F401
from nexus_desktop.paths import resources_dir
from nexus_desktop.training import tables as training_tables  # noqa: F401

# The child: argv is (mode, kill_at); kill_at 0 never kills.  It prints how many kill points the
# run passed, so the parent knows when N has gone past the last one.
CHILD = r"""
import asyncio, os, signal, sys
from pathlib import Path
from sqlalchemy import Engine, event

mode, kill_at = sys.argv[1], int(sys.argv[2])
points = 0

def point(*_args):
    global points
    points += 1
    if points == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)

# Before every COMMIT; "engine" also before every statement, to land between DDL and version bump.
event.listen(Engine, "commit", point)
if mode == "engine":
    event.listen(Engine, "before_cursor_execute", point)

async def first_start():
    from nexus_desktop.core import AppCore

    core = AppCore()
    core.modules.start_modules = False  # discovery and bundled approvals only: no module processes
    await core.start_modules(watch=False)
    await core.aclose()

if mode == "core":
    asyncio.run(first_start())
else:
    from nexus_desktop.db.engine import open_engine

    open_engine(Path(sys.argv[3])).dispose()
print("points", points)
"""


def run_child(mode: str, kill_at: int, *args: str) -> subprocess.CompletedProcess[str]:
    # NEXUS_DATA_DIR comes from the private_data_dir fixture through the inherited environment.
    return subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(kill_at), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def kill_at_every_point(mode: str, fresh: Callable[[], list[str]], check: Callable[[int], None]) -> int:
    """Kill a first run on a ``fresh()`` folder at point 1, 2, ... and ``check(n)`` the next start."""
    for n in itertools.count(1):
        result = run_child(mode, n, *fresh())
        if result.returncode == 0:
            assert result.stdout.split()[-2:] == ["points", str(n - 1)], result.stdout
            return n - 1
        assert result.returncode == -signal.SIGKILL, result.stderr
        check(n)
    raise AssertionError("unreachable")


def start_app() -> None:
    """A normal start (the next one, after a kill), the same as the child's but in this process."""
    from nexus_desktop.core import AppCore

    async def start() -> None:
        core = AppCore()
        core.modules.start_modules = False
        await core.start_modules(watch=False)
        await core.aclose()

    asyncio.run(start())


def bundled_character_names() -> list[str]:
    files = sorted((resources_dir() / "characters").glob("*.png"))
    assert files, "no bundled characters in resources/characters"
    return [load_card(path).name for path in files]


def app_state(database: Path) -> dict[str, Any]:
    """What a first run leaves behind, without ids and times."""
    conn = sqlite3.connect(database)
    try:
        return {
            "characters": conn.execute("SELECT name, builtin FROM character ORDER BY id").fetchall(),
            "modules": conn.execute(
                "SELECT name, version, state, active, approved_hash IS NOT NULL FROM module ORDER BY name"
            ).fetchall(),
            "version": conn.execute("PRAGMA user_version").fetchone()[0],
        }
    finally:
        conn.close()


def schema(database: Path) -> list[tuple[str, str, str]]:
    conn = sqlite3.connect(database)
    try:
        query = "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name"
        return conn.execute(query).fetchall()
    finally:
        conn.close()


def reset(folder: Path) -> None:
    for path in folder.iterdir():
        if path.is_file():
            path.unlink()
        else:
            shutil.rmtree(path)


def test_a_first_run_killed_at_any_point_still_gets_every_bundled_character(
    private_data_dir: Path,
) -> None:
    database = private_data_dir / "nexus.db"
    names = bundled_character_names()
    assert len(names) >= 2  # with one there is no "between two characters" to kill in
    assert run_child("core", 0).returncode == 0
    expected = app_state(database)
    assert expected["characters"] == [(name, 1) for name in names]
    assert expected["version"] == len(MIGRATIONS)

    def fresh() -> list[str]:
        reset(private_data_dir)
        return []

    def check(n: int) -> None:
        start_app()
        assert app_state(database) == expected, f"killed at point {n}"

    points = kill_at_every_point("core", fresh, check)
    assert points > len(MIGRATIONS) + len(names)  # it did walk through migrations and seeding


def test_a_migration_killed_at_any_point_migrates_fully_on_the_next_start(tmp_path: Path) -> None:
    clean = tmp_path / "clean" / "nexus.db"
    open_engine(clean).dispose()
    expected = schema(clean)
    database = tmp_path / "killed" / "nexus.db"

    def fresh() -> list[str]:
        for path in database.parent.glob("nexus.db*"):
            path.unlink()
        return [str(database)]

    def check(n: int) -> None:
        open_engine(database).dispose()
        conn = sqlite3.connect(database)
        try:
            assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS), n
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok", n
            for name, table in SQLModel.metadata.tables.items():
                columns = {row[1] for row in conn.execute(f"PRAGMA table_info({name})")}
                assert columns == {c.name for c in table.columns}, (n, name)
        finally:
            conn.close()
        assert schema(database) == expected, f"killed at point {n}"

    points = kill_at_every_point("engine", fresh, check)
    assert points > len(MIGRATIONS) * 2


def test_a_migration_another_process_applied_meanwhile_is_not_run_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two first starts at once: both read version 0, one migrates while the other waits for the
    # write lock.  The waiting one must see the new version, not run CREATE TABLE a second time.
    database = tmp_path / "nexus.db"
    open_engine(database).dispose()  # the other process got there first
    expected = schema(database)
    reads: list[int] = []

    def stale_first_read(conn: Connection) -> int:
        reads.append(1)
        return 0 if len(reads) == 1 else real_schema_version(conn)

    real_schema_version = migrations.schema_version
    monkeypatch.setattr(migrations, "schema_version", stale_first_read)
    open_engine(database).dispose()
    assert len(reads) > 1
    assert schema(database) == expected


def test_seeding_adds_nothing_once_a_character_exists(store: Store) -> None:
    # The emptiness check and the inserts share a transaction, so a second first run (another
    # process, or a start after the user's own import) never doubles up.
    store.add_character("Mine", {"name": "Mine"})
    assert store.seed_characters([("Vega", {"name": "Vega"}, None)]) == []
    assert [c.name for c in store.list_characters()] == ["Mine"]
