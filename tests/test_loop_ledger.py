"""The loop's ledger keeps every cycle, survives damaged rows and killed apps, and the health label
says healthy, degraded or stalled for the right reasons."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import Session

from nexus_desktop.control.health import loop_health
from nexus_desktop.control.ledger import (
    DAILY,
    EVAL_SWEEP,
    TRAINING_CHECK,
    abandon_stale,
    close_cycle,
    get_cycle,
    latest_report,
    open_cycle,
    read_cycles,
)
from nexus_desktop.control.tables import TaskRun
from nexus_desktop.db.store import Store

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def daily(
    engine: Engine, outcome: str, *, at: datetime, changes: tuple[str, ...] = (), summary: str = ""
) -> int:
    cycle = open_cycle(engine, DAILY, timeout_seconds=3600, now=at)
    close_cycle(engine, cycle, outcome, changes, {"summary": summary}, now=at + timedelta(minutes=10))
    return cycle


def task_runs(engine: Engine, task: str, outcomes: list[str], *, start: datetime, every: timedelta) -> None:
    with Session(engine) as s:
        for index, outcome in enumerate(outcomes):
            at = start + every * index
            s.add(TaskRun(task=task, started_at=at, finished_at=at, outcome=outcome, detail=f"run {index}"))
        s.commit()


def test_a_cycle_is_closed_once_with_what_changed(store: Store) -> None:
    engine = store.engine
    cycle = open_cycle(engine, TRAINING_CHECK, timeout_seconds=60)
    assert read_cycles(engine).cycles[0].outcome == "running"
    assert close_cycle(engine, cycle, "ok", ["router: job 3 promoted"], {"summary": "trained one"})
    assert not close_cycle(engine, cycle, "failed", ["late"], {"summary": "a second verdict"})
    [kept] = read_cycles(engine).cycles
    assert (kept.outcome, kept.changes, kept.summary) == ("ok", ("router: job 3 promoted",), "trained one")
    assert kept.finished_at is not None and kept.detail["timeout_seconds"] == 60


def test_a_corrupt_ledger_row_is_shown_as_unreadable_and_skipped(store: Store) -> None:
    engine = store.engine
    first = daily(engine, "ok", at=NOW - timedelta(hours=3), changes=("router: promoted job 1",))
    garbage = daily(engine, "ok", at=NOW - timedelta(hours=2))
    unknown = daily(engine, "ok", at=NOW - timedelta(hours=1))
    reported = daily(engine, "ok", at=NOW - timedelta(minutes=30))
    with sqlite3.connect(store.path) as raw:  # damage two rows behind the app's back
        raw.execute("UPDATE loop_cycle SET detail = '{not json' WHERE id = ?", (garbage,))
        raw.execute(
            "UPDATE loop_cycle SET outcome = 'exploded', report_path = 'r.md' WHERE id = ?", (unknown,)
        )
        raw.execute("UPDATE loop_cycle SET report_path = 'good.md' WHERE id = ?", (reported,))

    page = read_cycles(engine)
    assert [c.id for c in page.cycles] == [reported, first]
    assert page.cycles[1].changes == ("router: promoted job 1",)  # the good rows still read whole
    assert {row.label for row in page.unreadable} == {
        f"unreadable row {garbage}",
        f"unreadable row {unknown}",
    }
    assert "not valid JSON" in next(r.why for r in page.unreadable if r.id == garbage)
    assert "'exploded' is unknown" in next(r.why for r in page.unreadable if r.id == unknown)
    assert isinstance(get_cycle(engine, garbage), type(page.unreadable[0]))
    assert latest_report(engine) == ("good.md", NOW - timedelta(minutes=20))
    health = loop_health(engine, NOW)  # never crashes on them either
    assert health.label == "healthy", health.reason


def test_a_cycle_a_killed_app_left_running_is_abandoned_at_the_next_start(store: Store) -> None:
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from nexus_desktop.db.engine import open_engine\n"
        "from nexus_desktop.control.ledger import open_cycle\n"
        "print(open_cycle(open_engine(Path(sys.argv[1])), 'daily', timeout_seconds=14400), flush=True)\n"
        "time.sleep(600)\n"
    )
    app = subprocess.Popen([sys.executable, "-c", script, str(store.path)], stdout=subprocess.PIPE, text=True)
    assert app.stdout is not None
    orphan = int(app.stdout.readline())
    ours = open_cycle(store.engine, DAILY, timeout_seconds=14400)  # this process lives on
    assert abandon_stale(store.engine) == []  # the other app is still running its cycle
    app.kill()
    app.wait()

    assert abandon_stale(store.engine) == [orphan]
    left = get_cycle(store.engine, orphan)
    assert left is not None and not isinstance(left, str)
    assert left.outcome == "abandoned" and "stopped while this cycle ran" in left.detail["abandoned"]
    live = get_cycle(store.engine, ours)
    assert live is not None and getattr(live, "outcome", None) == "running"
    assert not close_cycle(store.engine, orphan, "ok", [], {})  # a late close does not revive it
    health = loop_health(store.engine)
    assert health.label == "degraded" and "was abandoned" in health.reason


def test_a_cycle_past_its_time_limit_is_abandoned_and_until_then_the_loop_is_stalled(store: Store) -> None:
    started = NOW - timedelta(hours=5)
    stuck = open_cycle(store.engine, DAILY, timeout_seconds=4 * 3600, now=started)
    health = loop_health(store.engine, NOW)
    assert health.label == "stalled"
    assert "is stuck: it has run 5.0 h, past its 4.0 h limit" in health.reason
    assert loop_health(store.engine, started + timedelta(hours=1)).label == "healthy"  # within its limit
    assert abandon_stale(store.engine, now=NOW) == [stuck]
    assert "ran past its 4 h limit" in read_cycles(store.engine).cycles[0].detail["abandoned"]


def test_the_loop_is_healthy_after_an_ok_daily_cycle(store: Store) -> None:
    daily(store.engine, "ok", at=NOW - timedelta(hours=8), changes=("a", "b"))
    task_runs(
        store.engine,
        "training-check",
        ["ok"] * 10,
        start=NOW - timedelta(hours=5),
        every=timedelta(minutes=30),
    )
    health = loop_health(store.engine, NOW)
    assert health.label == "healthy"
    assert "finished ok" in health.reason and "(2 changes)" in health.reason


def test_a_partial_daily_cycle_makes_the_loop_degraded_until_one_ends_ok(store: Store) -> None:
    daily(store.engine, "partial", at=NOW - timedelta(hours=8), summary="Partly done: the eval sweep failed.")
    health = loop_health(store.engine, NOW)
    assert health.label == "degraded" and "was partial: Partly done: the eval sweep failed" in health.reason
    daily(store.engine, "ok", at=NOW - timedelta(hours=1))
    assert loop_health(store.engine, NOW).label == "healthy"


def test_a_built_in_task_failing_twice_in_a_row_degrades_the_loop_but_once_does_not(store: Store) -> None:
    daily(store.engine, "ok", at=NOW - timedelta(hours=8))
    hour = timedelta(hours=1)
    task_runs(store.engine, "eval-sweep", ["ok", "error"], start=NOW - 5 * hour, every=hour)
    assert loop_health(store.engine, NOW).label == "healthy"  # one failure may be bad luck
    task_runs(store.engine, "eval-sweep", ["skipped", "timeout"], start=NOW - 2 * hour, every=hour)
    health = loop_health(store.engine, NOW)
    assert health.label == "degraded"
    assert "The eval sweep failed its last 2 runs: run 1" in health.reason
    task_runs(store.engine, "some-module.tidy", ["error"] * 5, start=NOW - 5 * hour, every=hour)
    assert "some-module" not in loop_health(store.engine, NOW).reason  # only the loop's own tasks


def test_no_daily_cycle_in_26_hours_of_running_is_a_stall_but_hours_the_app_was_closed_do_not_count(
    store: Store,
) -> None:
    last = NOW - timedelta(days=3)
    daily(store.engine, "ok", at=last)
    half_hour = timedelta(minutes=30)
    # The app ran for 10 hours the day before yesterday and 10 hours today: 20 h, no stall.
    task_runs(store.engine, "training-check", ["ok"] * 20, start=NOW - timedelta(days=2), every=half_hour)
    task_runs(store.engine, "training-check", ["ok"] * 20, start=NOW - timedelta(hours=10), every=half_hour)
    assert loop_health(store.engine, NOW).label == "healthy"
    # Then it runs on for another 8 hours, still without a daily cycle: 28 h of running.
    later = NOW + timedelta(hours=8)
    task_runs(store.engine, "training-check", ["ok"] * 16, start=NOW, every=half_hour)
    health = loop_health(store.engine, later)
    assert health.label == "stalled"
    assert "No daily cycle has finished since" in health.reason and "of the app running" in health.reason


def test_a_new_loop_is_healthy_and_says_nothing_has_run_yet(store: Store, tmp_path: Path) -> None:
    health = loop_health(store.engine, NOW)
    assert health.label == "healthy" and "No daily cycle has run yet" in health.reason
    assert read_cycles(store.engine).cycles == () and latest_report(store.engine) is None
    assert read_cycles(store.engine, kind=EVAL_SWEEP).unreadable == ()
