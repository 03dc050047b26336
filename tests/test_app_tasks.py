"""The running app schedules the loop's built-in tasks and every module's own tasks: a module's
task runs in the module's process and leaves the schedule when the module stops, and the app
registers the built-ins and closes a cycle a killed app left running as soon as its window opens."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from nexus_desktop.control.app_tasks import BUILTINS, AppTasks
from nexus_desktop.control.ledger import DAILY, get_cycle, open_cycle
from nexus_desktop.control.loop import Loop
from nexus_desktop.control.scheduler import Scheduler, task_grid
from nexus_desktop.db.engine import open_engine
from nexus_desktop.db.store import Store
from nexus_desktop.modules.service import ModuleService
from nexus_desktop.secrets import SecretStore
from nexus_desktop.settings import Settings
from nexus_desktop.training.service import TrainingService
from tests.hostile.modules import write_module
from tests.test_ui_app import STARTED, wait_for_log

T = TypeVar("T")
CHORES = """
from nexus_desktop.modules.hookspecs import hookimpl
from nexus_desktop.modules.specs import ScheduledTaskSpec


def broken():
    raise RuntimeError("the shed is locked")


class Plugin:
    @hookimpl
    def register_scheduled_tasks(self, register):
        register(ScheduledTaskSpec("chores.tidy", "Tidy up.", 3600, lambda: "tidied 3 files"))
        register(ScheduledTaskSpec("sweep", "Sweep.", 600, broken))


plugin = Plugin()
"""


async def until(read: Callable[[], T], timeout: float = 10.0) -> T:
    """``read()`` once it is truthy: the scheduler writes its rows on a thread of its own."""
    deadline = time.monotonic() + timeout
    while not (found := read()):
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)
    return found


def test_a_modules_task_runs_in_its_process_and_leaves_the_schedule_when_the_module_stops(
    tmp_path: Path,
) -> None:
    write_module(tmp_path / "dev" / "chores", "chores", code=CHORES, hooks=["register_scheduled_tasks"])
    store = Store(tmp_path / "nexus.db")

    async def scenario() -> None:
        service = ModuleService(
            store.engine,
            SecretStore(f"nexus-test-{uuid.uuid4().hex[:8]}", timeout=5),
            bundled_dir=tmp_path / "no-bundled",
            user_dir=tmp_path / "user",
            developer_dir=tmp_path / "dev",
            environ={},
        )
        training = TrainingService(store.engine, zoo_folder=tmp_path / "zoo")
        scheduler = Scheduler(store.engine)
        tasks = AppTasks(scheduler, Loop(store.engine, training, reports_dir=tmp_path), service.supervisor)
        service.listeners.append(tasks.sync_modules)
        try:
            await service.start()
            assert tasks.module_task_names() == []  # awaiting approval: not running
            await service.approve(await service.review("chores"))
            assert tasks.module_task_names() == ["chores.sweep", "chores.tidy"]

            tidy = await scheduler.run_now("chores.tidy")
            assert (tidy.outcome, tidy.detail) == ("ok", "tidied 3 files")
            sweep = await scheduler.run_now("chores.sweep")
            assert sweep.outcome == "error" and "the shed is locked" in sweep.detail
            grid = {row.name: row for row in task_grid(store.engine)}  # run_now waits for its rows
            assert (grid["chores.tidy"].owner, grid["chores.tidy"].cadence) == ("chores", "every 1h")
            assert grid["chores.sweep"].error_count == 1 and grid["chores.tidy"].run_count == 1

            await service.disable("chores")
            assert tasks.module_task_names() == []
            disabled = await until(lambda: [r.name for r in task_grid(store.engine) if r.state == "disabled"])
            assert sorted(disabled) == ["chores.sweep", "chores.tidy"]
        finally:
            await scheduler.aclose()
            await service.aclose()
            await training.aclose()

    asyncio.run(scenario())
    store.close()


def test_the_window_starts_the_scheduler_and_abandons_a_cycle_a_killed_app_left_running(
    tmp_path: Path,
) -> None:
    engine = open_engine(tmp_path / "nexus.db")
    killed = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    orphan = open_cycle(engine, DAILY, timeout_seconds=14400)
    with engine.begin() as conn:  # as if that (now killed) process had opened it
        conn.exec_driver_sql(
            f"UPDATE loop_cycle SET detail = json_set(detail, '$.pid', {killed.pid}) WHERE id = {orphan}"
        )
    killed.kill()
    killed.wait()
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "NEXUS_DATA_DIR": str(tmp_path)}
    app = subprocess.Popen(
        [sys.executable, "-m", "nexus_desktop"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        wait_for_log(tmp_path / "logs" / "nexus.log", STARTED, app, timeout=180)
        wanted = {builtin.name: builtin.cadence for builtin in BUILTINS}
        deadline = time.monotonic() + 120
        while True:
            grid = {row.name: row for row in task_grid(engine) if row.name in wanted}
            if len(grid) == len(wanted) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert {name: row.cadence for name, row in grid.items()} == wanted
        assert all(row.next_due is not None and row.state == "idle" for row in grid.values())
        left = get_cycle(engine, orphan)
        assert getattr(left, "outcome", None) == "abandoned"
        app.send_signal(signal.SIGTERM)
        assert app.wait(timeout=120) == 0
    finally:
        if app.poll() is None:
            app.kill()
            app.wait()
        engine.dispose()


def test_the_app_core_schedules_a_modules_task_once_the_module_is_approved(
    private_data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nexus_desktop.core import AppCore

    write_module(tmp_path / "dev" / "chores", "chores", code=CHORES, hooks=["register_scheduled_tasks"])
    monkeypatch.setenv("NEXUS_LOAD_MODULES", "chores")  # not the bundled modules' processes
    store = Store(private_data_dir / "nexus.db")
    store.save_settings(Settings(modules_developer_dir=str(tmp_path / "dev")))
    store.close()

    async def scenario() -> None:
        core = AppCore()
        try:
            await core.start_modules(watch=False)
            await core.start_scheduler()
            assert core.tasks.module_task_names() == []
            await core.modules.approve(await core.modules.review("chores"))  # it starts: the listener
            assert core.tasks.module_task_names() == ["chores.sweep", "chores.tidy"]
            names = {task.name: task.owner for task in core.scheduler.tasks()}
            assert names["chores.tidy"] == "chores" and names["daily-cycle"] == "nexus"
        finally:
            await core.aclose()

    asyncio.run(scenario())
