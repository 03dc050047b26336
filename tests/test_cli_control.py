"""`nexus scheduler | loop | report | governor` work headless on a real data folder and fail with
one clear line."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.hostile.modules import write_module
from tests.test_app_tasks import CHORES
from tests.training_support import make_zoo


def nexus(*args: str, data_dir: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "NEXUS_DATA_DIR": str(data_dir), **(env or {})}
    full_env.pop("NEXUS_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "nexus_desktop.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=full_env,
    )


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("nexus: error: ")
    return line


def test_scheduler_status_shows_the_built_in_tasks_and_then_their_runs(private_data_dir: Path) -> None:
    fresh = nexus("scheduler", "status", data_dir=private_data_dir)
    assert fresh.returncode == 0, fresh.stderr
    rows = {line.split()[0]: line for line in fresh.stdout.splitlines()[1:] if line.strip()}
    for name, cadence in [("daily-cycle", "daily 04:00"), ("training-check", "every 30m")]:
        assert cadence in rows[name] and "not started" in rows[name]

    ran = nexus("scheduler", "run", "impact-assessment", data_dir=private_data_dir)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.startswith("impact-assessment: ok in ")
    assert "No promotion in the last 30 days to assess." in ran.stdout

    status = nexus("scheduler", "status", data_dir=private_data_dir)
    line = next(line for line in status.stdout.splitlines() if line.startswith("impact-assessment"))
    assert line.split()[-2:] == ["ok", "1/0/0/0"] and "daily 12:00" in line and "nexus" in line


def test_scheduler_run_of_a_failing_task_exits_1_with_the_reason(
    private_data_dir: Path, tmp_path: Path
) -> None:
    zoo = make_zoo(tmp_path)
    (zoo / "broken.toml").write_text("id = [this is not toml", encoding="utf-8")
    result = nexus(
        "scheduler", "run", "training-check", data_dir=private_data_dir, env={"NEXUS_ZOO_DIR": str(zoo)}
    )
    line = one_error_line(result)
    assert "training-check failed in " in line and "The zoo spec broken.toml cannot be read" in line
    (zoo / "broken.toml").unlink()  # a positive control: with the zoo mended it runs
    mended = nexus(
        "scheduler", "run", "training-check", data_dir=private_data_dir, env={"NEXUS_ZOO_DIR": str(zoo)}
    )
    assert mended.returncode == 0, mended.stderr
    assert "No zoo model is past its threshold (persona-test 0/8, router-test 0/50)" in mended.stdout


def test_scheduler_run_of_an_unknown_task_names_the_known_ones(private_data_dir: Path) -> None:
    line = one_error_line(nexus("scheduler", "run", "nonesuch", data_dir=private_data_dir))
    assert "There is no task called nonesuch; known tasks: daily-cycle, eval-sweep" in line


def test_loop_status_shows_the_health_label_and_a_corrupt_row_as_unreadable(private_data_dir: Path) -> None:
    empty = nexus("loop", "status", data_dir=private_data_dir)
    assert empty.returncode == 0, empty.stderr
    assert empty.stdout.startswith("Loop: healthy. No daily cycle has run yet")
    assert "nexus scheduler run daily-cycle" in empty.stdout
    for _ in range(3):
        assert nexus("scheduler", "run", "eval-sweep", data_dir=private_data_dir).returncode == 0
    with sqlite3.connect(private_data_dir / "nexus.db") as raw:
        raw.execute("UPDATE loop_cycle SET changes = 'garbage]' WHERE id = 2")

    result = nexus("loop", "status", data_dir=private_data_dir)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Loop: healthy.")
    assert any(line.split()[:3] == ["3", "eval", "sweep"] and " ok " in line for line in lines)
    assert any(line.split()[:3] == ["1", "eval", "sweep"] for line in lines)
    assert "    2  unreadable row 2 (its changes or detail are not valid JSON); skipped" in lines


def test_report_daily_says_how_to_make_one_then_prints_the_latest(private_data_dir: Path) -> None:
    line = one_error_line(nexus("report", "daily", data_dir=private_data_dir))
    assert "There is no daily report yet" in line and line.endswith("nexus scheduler run daily-cycle")

    ran = nexus("scheduler", "run", "daily-cycle", data_dir=private_data_dir)
    assert ran.returncode == 0, ran.stderr
    result = nexus("report", "daily", data_dir=private_data_dir)

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("# Daily improvement report, ")
    assert "## What changed\n\nNothing changed." in result.stdout
    assert "Loop health: **healthy**" in result.stdout
    assert [p.name.startswith("daily-") for p in (private_data_dir / "reports").iterdir()] == [True]


def test_governor_show_prints_a_characters_policy_and_names_an_unknown_one(private_data_dir: Path) -> None:
    assert nexus("characters", "list", data_dir=private_data_dir).returncode == 0  # seeds the defaults
    shown = nexus("governor", "show", "Vega", data_dir=private_data_dir)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("Vega: no limits set")
    line = one_error_line(nexus("governor", "show", "Nobody", data_dir=private_data_dir))
    assert "There is no character called Nobody" in line


def test_scheduler_run_runs_a_modules_task_in_the_modules_process(
    private_data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nexus_desktop.core import AppCore
    from nexus_desktop.db.store import Store
    from nexus_desktop.settings import Settings

    write_module(tmp_path / "dev" / "chores", "chores", code=CHORES, hooks=["register_scheduled_tasks"])
    monkeypatch.setenv("NEXUS_LOAD_MODULES", "chores")  # not the bundled modules' processes
    store = Store(private_data_dir / "nexus.db")
    store.save_settings(Settings(modules_developer_dir=str(tmp_path / "dev")))
    store.close()

    async def approve() -> None:  # in the app, as a person would
        core = AppCore()
        try:
            await core.start_modules(watch=False)
            await core.modules.approve(await core.modules.review("chores"))
        finally:
            await core.aclose()

    asyncio.run(approve())
    env = {"NEXUS_LOAD_MODULES": "chores"}

    tidy = nexus("scheduler", "run", "chores.tidy", data_dir=private_data_dir, env=env)
    assert tidy.returncode == 0, tidy.stderr
    assert tidy.stdout.startswith("chores.tidy: ok in ") and tidy.stdout.rstrip().endswith("tidied 3 files")
    line = one_error_line(nexus("scheduler", "run", "chores.sweep", data_dir=private_data_dir, env=env))
    assert "chores.sweep failed in " in line and "the shed is locked" in line
