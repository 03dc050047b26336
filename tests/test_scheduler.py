"""The scheduler keeps every task on its cadence whatever one task does: one that hangs forever
(in a thread, a subprocess or a module's process) is abandoned at its timeout, one that raises is
counted, one slower than its cadence never overlaps itself; clock jumps neither multiply nor stall
runs; state survives a restart; a task not built yet is shown and never run; observers never
hold it up.  Real threads, real processes, real SQLite files."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import psutil
import pytest
from sqlalchemy import Engine

from nexus_desktop.control.runners import TaskTimeout, in_module, in_process, in_thread
from nexus_desktop.control.scheduler import Scheduler, Task, recent_runs, task_grid, utc_now
from nexus_desktop.control.tables import ScheduledTaskState, TaskRun
from nexus_desktop.db.engine import open_engine

T = TypeVar("T")
TICK = 0.05


class ShiftedClock:
    """The real UTC clock plus an offset a test moves: the system clock jumping."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return utc_now() + self.offset


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "nexus.db"


@pytest.fixture
def engine(db_path: Path) -> Iterator[Engine]:
    engine = open_engine(db_path)
    yield engine
    engine.dispose()


def scheduled(engine: Engine, body: Callable[[Scheduler], Awaitable[T]], clock: Any = utc_now) -> T:
    """Run ``body`` with a started scheduler, closed afterwards."""

    async def main() -> T:
        scheduler = Scheduler(engine, clock=clock, tick_seconds=TICK)
        await scheduler.start()
        try:
            return await body(scheduler)
        finally:
            await scheduler.aclose()

    return asyncio.run(main())


def state(engine: Engine, name: str) -> ScheduledTaskState:
    return next(row for row in task_grid(engine) if row.name == name)


def runs(engine: Engine, name: str, since: datetime | None = None) -> list[TaskRun]:
    since = since or datetime(2000, 1, 1).astimezone()
    found = [run for run in recent_runs(engine, since, limit=10_000) if run.task == name]
    return sorted(found, key=lambda run: run.started_at)


def returns(text: str) -> Callable[[float], Awaitable[str]]:
    async def run(_timeout: float) -> str:
        return text

    return run


# "Forever" for the scheduler; each test stops them afterwards, so that abandoned threads do not
# spin through the rest of the session.
STOP = threading.Event()


@pytest.fixture(autouse=True)
def stop_hung_threads() -> Iterator[None]:
    STOP.clear()
    yield
    STOP.set()


def spin_forever() -> None:
    while not STOP.is_set():  # pure Python: holds the GIL between switches, never yields
        pass


async def never_yields() -> None:
    while not STOP.is_set():  # a coroutine that never awaits: it would freeze any loop it ran on
        pass


def sleep_forever() -> None:
    STOP.wait()


# Hangs --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "hang", [sleep_forever, spin_forever, never_yields], ids=["blocks", "spins", "async"]
)
def test_a_task_that_hangs_forever_in_a_thread_times_out_and_the_others_keep_their_cadence(
    engine: Engine, hang: Callable[[], Any]
) -> None:
    async def body(scheduler: Scheduler) -> None:
        scheduler.add(Task("hangs", "every 1s", in_thread(hang, name="hangs"), timeout_seconds=0.5))
        scheduler.add(Task("steady", "every 1s", in_thread(lambda: "steady", name="steady")))
        await asyncio.sleep(2.7)

    scheduled(engine, body)
    hung, steady = state(engine, "hangs"), state(engine, "steady")
    assert hung.timeout_count >= 1, runs(engine, "hangs")
    assert "did not finish within 0.5 s" in hung.last_error
    # Positive control: the task beside it ran on every due time, each one ok.
    assert [r.outcome for r in runs(engine, "steady")] == ["ok", "ok"], runs(engine, "steady")
    assert steady.run_count == 2 and steady.error_count == steady.timeout_count == steady.skipped_count == 0


def test_a_subprocess_that_sleeps_forever_is_killed_with_its_tree_at_the_timeout(engine: Engine) -> None:
    marker = f"nexus-test-sleeper-{uuid.uuid4().hex}"
    sleeper = [sys.executable, "-c", f"import time  # {marker}\ntime.sleep(3600)"]

    def alive() -> list[psutil.Process]:
        found = []
        for process in psutil.process_iter(["cmdline"]):
            if any(marker in part for part in process.info["cmdline"] or ()):
                found.append(process)
        return found

    async def body(scheduler: Scheduler) -> tuple[TaskRun, bool, TaskRun]:
        scheduler.add(Task("sleeper", "every 1d", in_process(sleeper), timeout_seconds=2.0))
        scheduler.add(Task("quick", "every 1d", in_process([sys.executable, "-c", "print('did it')"])))
        running = asyncio.ensure_future(scheduler.run_now("sleeper"))
        seen = False
        for _ in range(250):  # positive control: the sleeper is found while it runs
            if alive():
                seen = True
                break
            await asyncio.sleep(0.01)
        return await running, seen, await scheduler.run_now("quick")

    slept, seen, quick = scheduled(engine, body)
    assert seen
    assert slept.outcome == "timeout" and "its process was killed" in slept.detail
    assert alive() == []
    assert quick.outcome == "ok" and quick.detail == "did it"
    assert state(engine, "sleeper").timeout_count == 1


def test_a_subprocess_that_fails_reports_its_last_error_line(engine: Engine) -> None:
    failing = [sys.executable, "-c", "import sys; print('first', file=sys.stderr); sys.exit('disk full')"]

    async def body(scheduler: Scheduler) -> TaskRun:
        scheduler.add(Task("fails", "every 1d", in_process(failing)))
        return await scheduler.run_now("fails")

    run = scheduled(engine, body)
    assert run.outcome == "error" and run.detail.endswith("exited with code 1: disk full")
    assert state(engine, "fails").error_count == 1


# Errors and slow tasks ----------------------------------------------------------------------------


def test_a_task_that_raises_every_time_is_counted_and_the_others_are_unaffected(engine: Engine) -> None:
    async def broken(_timeout: float) -> str:
        raise RuntimeError("the disk is on fire")

    async def body(scheduler: Scheduler) -> None:
        scheduler.add(Task("broken", "every 1s", broken))
        scheduler.add(Task("fine", "every 1s", returns("all good")))
        await asyncio.sleep(3.4)

    scheduled(engine, body)
    broken_state, fine = state(engine, "broken"), state(engine, "fine")
    assert broken_state.run_count == broken_state.error_count == 3
    assert broken_state.last_error == "RuntimeError: the disk is on fire"
    assert fine.run_count == 3 and fine.error_count == 0 and fine.last_outcome == "ok"


@pytest.mark.parametrize("max_instances", [1, 2])
def test_a_task_slower_than_its_cadence_never_overlaps_and_its_skips_are_counted(
    engine: Engine, max_instances: int
) -> None:
    lock = threading.Lock()
    running = [0]
    most = [0]

    def slow() -> str:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(2.2)
        with lock:
            running[0] -= 1
        return "slow and steady"

    async def body(scheduler: Scheduler) -> None:
        scheduler.add(Task("slow", "every 1s", in_thread(slow), max_instances=max_instances))
        await asyncio.sleep(3.3)

    scheduled(engine, body)
    row = state(engine, "slow")
    skipped = [r for r in runs(engine, "slow") if r.outcome == "skipped"]
    # One at a time by default; the positive control lets two overlap and shows they would.
    assert most[0] == max_instances
    assert row.skipped_count == len(skipped) >= 1
    assert all(f"at most {max_instances} run" in r.detail for r in skipped)


# Clock jumps --------------------------------------------------------------------------------------


def test_the_clock_jumping_forward_a_day_runs_a_due_task_once_not_once_per_missed_interval(
    engine: Engine,
) -> None:
    clock = ShiftedClock()

    async def body(scheduler: Scheduler) -> tuple[int, int]:
        scheduler.add(Task("minutely", "every 1m", returns("done")))
        await asyncio.sleep(0.5)
        before = len(runs(engine, "minutely"))  # positive control: nothing was due yet
        clock.offset = timedelta(days=1)
        await asyncio.sleep(1.0)
        return before, len(runs(engine, "minutely"))

    before, after = scheduled(engine, body, clock)
    assert (before, after) == (0, 1)
    (run,) = runs(engine, "minutely")
    assert run.outcome == "ok" and run.detail.startswith("1439 missed runs folded into this one")
    assert state(engine, "minutely").next_due > run.started_at  # type: ignore[operator]


def test_the_clock_going_back_an_hour_does_not_stall_a_task(engine: Engine) -> None:
    clock = ShiftedClock()

    async def body(scheduler: Scheduler) -> int:
        scheduler.add(Task("steady", "every 1s", returns("tick")))
        await asyncio.sleep(1.2)
        clock.offset = -timedelta(hours=1)
        mark = clock()
        await asyncio.sleep(2.3)
        # Runs from before the jump carry later wall times than any after it.
        return len([r for r in runs(engine, "steady", mark) if r.started_at < mark + timedelta(minutes=30)])

    after_jump = scheduled(engine, body, clock)
    assert after_jump >= 2  # without the recompute it would wait the hour out
    assert state(engine, "steady").error_count == 0


def test_the_clock_going_back_an_hour_does_not_run_a_daily_task_twice(engine: Engine) -> None:
    clock = ShiftedClock()
    now = utc_now().astimezone()
    three = now.replace(hour=3, minute=0, second=0, microsecond=0)
    if three <= now:
        three += timedelta(days=1)

    async def body(scheduler: Scheduler) -> None:
        clock.offset = three - timedelta(seconds=0.5) - utc_now()  # half a second before 03:00
        scheduler.add(Task("nightly", "daily 03:00", returns("cleaned")))
        scheduler.add(Task("steady", "every 1s", returns("tick")))
        await asyncio.sleep(1.2)
        assert len(runs(engine, "nightly")) == 1  # positive control: it ran at 03:00
        clock.offset -= timedelta(hours=1)  # 02:00:00.7: 03:00 is "due" again by the wall clock
        await asyncio.sleep(1.2)
        clock.offset += timedelta(minutes=59, seconds=58)  # on to 03:00 again
        await asyncio.sleep(1.5)

    scheduled(engine, body, clock)
    assert [r.outcome for r in runs(engine, "nightly")] == ["ok"]
    nightly = state(engine, "nightly")
    assert nightly.next_due == three + timedelta(days=1)
    assert state(engine, "steady").run_count >= 3


# Restarts and misfires ----------------------------------------------------------------------------


@pytest.mark.parametrize("coalesce", [True, False])
def test_counters_survive_a_restart_and_runs_missed_while_closed_are_coalesced_into_one(
    db_path: Path, coalesce: bool
) -> None:
    clock = ShiftedClock()
    task = Task("steady", "every 1s", returns("tick"), misfire_grace_seconds=None, coalesce=coalesce)

    async def first(scheduler: Scheduler) -> None:
        scheduler.add(task)
        await asyncio.sleep(2.4)

    async def second(scheduler: Scheduler) -> None:
        scheduler.add(task)
        await asyncio.sleep(0.4)

    engine = open_engine(db_path)
    scheduled(engine, first, clock)
    before = state(engine, "steady")
    engine.dispose()
    assert before.run_count == 2
    clock.offset = timedelta(minutes=10)  # the app stays closed for ten minutes
    reopened = clock()
    engine = open_engine(db_path)
    scheduled(engine, second, clock)
    after = state(engine, "steady")
    since = runs(engine, "steady", since=reopened)
    engine.dispose()
    ran = [r for r in since if r.outcome != "skipped"]
    missed = [r for r in ran if r.due_at is not None and r.due_at < reopened]
    assert len(missed) == 1 and after.run_count == before.run_count + len(ran)
    if coalesce:
        folded = int(missed[0].detail.split()[0])  # "599 missed runs folded into this one; tick"
        assert 599 <= folded <= 601 and after.skipped_count == 0
    else:  # the control: without coalescing each missed run comes due, and all but one are skipped
        assert after.skipped_count >= 500


@pytest.mark.parametrize("grace", [300.0, None])
def test_a_run_missed_by_more_than_its_misfire_grace_is_skipped_and_counted_once(
    db_path: Path, grace: float | None
) -> None:
    clock = ShiftedClock()
    task = Task("hourly", "every 1h", returns("done"), misfire_grace_seconds=grace)

    async def register(scheduler: Scheduler) -> None:
        scheduler.add(task)
        await asyncio.sleep(0.2)

    engine = open_engine(db_path)
    scheduled(engine, register, clock)
    clock.offset = timedelta(hours=10, minutes=30)  # closed ten and a half hours: 30 min late
    scheduled(engine, register, clock)
    row = state(engine, "hourly")
    outcomes = [r.outcome for r in runs(engine, "hourly")]
    engine.dispose()
    if grace is None:  # the control: no grace, it runs however late, once
        assert outcomes == ["ok"] and row.skipped_count == 0
    else:
        assert outcomes == ["skipped"] and row.skipped_count == 1 and row.run_count == 0


CRASHING_APP = """
import asyncio, sys, threading
from datetime import datetime
from pathlib import Path
from nexus_desktop.control.runners import in_thread
from nexus_desktop.control.scheduler import Scheduler, Task, recent_runs
from nexus_desktop.db.engine import open_engine

async def main():
    engine = open_engine(Path(sys.argv[1]))
    scheduler = Scheduler(engine)
    scheduler.add(Task("long", "every 1d", in_thread(threading.Event().wait)))
    running = asyncio.ensure_future(scheduler.run_now("long"))
    while not recent_runs(engine, datetime(2000, 1, 1).astimezone()):  # its row is written
        await asyncio.sleep(0.02)
    print("running", flush=True)
    await running

asyncio.run(main())
"""


def test_a_run_cut_short_by_a_crash_is_closed_when_the_app_starts_again(db_path: Path) -> None:
    # A real crash: an app process with a run in progress, killed with SIGKILL.
    app = subprocess.Popen(
        [sys.executable, "-c", CRASHING_APP, str(db_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert app.stdout is not None and app.stdout.readline().strip() == "running"
    finally:
        app.kill()
        app.wait()
    engine = open_engine(db_path)
    assert [r.outcome for r in runs(engine, "long")] == ["running"]  # positive control

    async def restart(scheduler: Scheduler) -> None:
        scheduler.add(Task("long", "every 1d", returns("ok")))
        await asyncio.sleep(0.2)

    scheduled(engine, restart)
    (run,) = runs(engine, "long")
    engine.dispose()
    assert (run.outcome, run.detail) == ("error", "the app stopped while it ran")


# Not implemented, observers, closing -----------------------------------------------------------------


def test_a_task_not_built_yet_is_shown_as_not_implemented_with_one_warning_and_never_runs(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="nexus_desktop.control.scheduler")

    async def body(scheduler: Scheduler) -> TaskRun:
        scheduler.add(Task("someday", "every 1s", None, description="Not yet."))
        scheduler.add(Task("someday", "every 1s", None, description="Not yet."))
        scheduler.add(Task("today", "every 1s", returns("done")))
        await asyncio.sleep(1.5)
        return await scheduler.run_now("someday")

    asked = scheduled(engine, body)
    someday, today = state(engine, "someday"), state(engine, "today")
    assert someday.state == "not_implemented" and someday.run_count == 0 and someday.next_due is None
    assert runs(engine, "someday") == [] and asked.outcome == "skipped" and "not built yet" in asked.detail
    assert caplog.text.count("someday is declared but not built yet") == 1
    assert today.run_count == 1 and today.state == "idle"  # positive control


def test_a_slow_or_raising_observer_does_not_stall_the_scheduler_or_the_others(engine: Engine) -> None:
    heard: list[TaskRun] = []
    raised: list[str] = []
    slow_started = threading.Event()

    def slow(_run: TaskRun) -> None:
        slow_started.set()
        time.sleep(30)

    def raising(run: TaskRun) -> None:
        raised.append(run.task)
        raise ValueError("observer bug")

    async def body(scheduler: Scheduler) -> None:
        scheduler.subscribe(slow)
        scheduler.subscribe(raising)
        unsubscribe = scheduler.subscribe(heard.append)
        scheduler.add(Task("steady", "every 1s", returns("tick")))
        await asyncio.sleep(3.3)
        unsubscribe()

    scheduled(engine, body)
    assert slow_started.is_set()
    assert [run.outcome for run in heard] == ["ok", "ok", "ok"] and len(raised) == 3
    assert all(run.id is not None for run in heard)
    assert state(engine, "steady").run_count == 3


def test_closing_abandons_a_run_in_progress_and_records_why(engine: Engine) -> None:
    async def main() -> None:
        scheduler = Scheduler(engine, tick_seconds=TICK)
        await scheduler.start()
        scheduler.add(Task("long", "every 1d", in_thread(spin_forever), timeout_seconds=600))
        running = asyncio.ensure_future(scheduler.run_now("long"))
        await asyncio.sleep(0.3)
        assert not running.done()
        await asyncio.wait_for(scheduler.aclose(), 10)  # returns, never waits for the thread

    asyncio.run(main())
    (run,) = runs(engine, "long")
    assert (run.outcome, run.detail) == ("error", "the app stopped while it ran")
    assert state(engine, "long").state == "idle"


def test_a_task_that_is_still_running_is_not_started_again_by_run_now(engine: Engine) -> None:
    release = threading.Event()

    async def body(scheduler: Scheduler) -> tuple[TaskRun, TaskRun]:
        scheduler.add(Task("long", "every 1d", in_thread(lambda: release.wait(10) and "released")))
        first = asyncio.ensure_future(scheduler.run_now("long"))
        await asyncio.sleep(0.2)
        second = await scheduler.run_now("long")
        release.set()
        return await first, second

    first, second = scheduled(engine, body)
    assert (first.outcome, first.detail) == ("ok", "released")
    assert second.outcome == "skipped" and "still going" in second.detail


# Module tasks -------------------------------------------------------------------------------------

CHORES = """
import time

from nexus_desktop.modules.hookspecs import hookimpl
from nexus_desktop.modules.specs import ScheduledTaskSpec


class Plugin:
    @hookimpl
    def register_scheduled_tasks(self, register):
        register(ScheduledTaskSpec("chores.tidy", "Tidy up.", 3600, lambda: "tidied"))
        register(ScheduledTaskSpec("chores.stuck", "Never ends.", 3600, lambda: time.sleep(3600)))


plugin = Plugin()
"""


def test_a_module_task_runs_in_the_module_process_and_a_stuck_one_times_out(
    tmp_path: Path, engine: Engine
) -> None:
    from nexus_desktop.db.store import Store
    from tests.hostile.runtime_modules import approve_all, developer_host, make_supervisor, module_secrets

    store = Store(tmp_path / "modules.db")
    host = developer_host(store, tmp_path, {"chores": (CHORES, {"hooks": ["register_scheduled_tasks"]})})
    approve_all(host)

    async def main() -> tuple[TaskRun, TaskRun, TaskRun]:
        supervisor = make_supervisor(host, module_secrets("chores", "unused"))
        await supervisor.start()
        scheduler = Scheduler(engine, tick_seconds=TICK)
        try:
            scheduler.add(Task("chores.tidy", "every 1h", in_module(supervisor, "chores", "chores.tidy")))
            stuck = in_module(supervisor, "chores", "chores.stuck")
            scheduler.add(Task("chores.stuck", "every 1h", stuck, owner="chores", timeout_seconds=1.0))
            tidy = await scheduler.run_now("chores.tidy")
            hung = await scheduler.run_now("chores.stuck")
            again = await scheduler.run_now("chores.tidy")  # the module's process starts again
            with pytest.raises(TaskTimeout):
                await stuck(0.5)
            return tidy, hung, again
        finally:
            await scheduler.aclose()
            await supervisor.aclose()

    try:
        tidy, hung, again = asyncio.run(main())
    finally:
        store.close()
    assert (tidy.outcome, tidy.detail) == ("ok", "tidied") and (again.outcome, again.detail) == (
        "ok",
        "tidied",
    )
    assert hung.outcome == "timeout" and "did not answer within 1 seconds" in hung.detail
    row = state(engine, "chores.stuck")
    assert row.owner == "chores" and row.timeout_count == 1
