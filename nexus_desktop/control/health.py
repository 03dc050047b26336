"""The loop's health label: healthy, degraded or stalled, with the reason in plain words.

- **stalled**: a cycle is still running past its time limit (stuck), or no daily cycle finished
  in more than 26 hours of the app running.  "Running" is measured from the scheduler's own
  timeline: the training check runs every 30 minutes while the app is open, so gaps between its
  runs longer than ``UPTIME_GAP`` are time the app was closed, and do not count.
- **degraded**: the last daily cycle ended partial, failed or abandoned, or a built-in task failed
  (error or timeout) ``REPEATED`` times or more in a row.
- **healthy**: none of that.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from nexus_desktop.control.ledger import (
    DAILY,
    KIND_WORDS,
    RUNNING,
    TASK_NAMES,
    Cycle,
    LedgerPage,
    as_utc,
    read_cycles,
    utc_now,
)
from nexus_desktop.control.tables import ScheduledTaskState, TaskRun

Label = Literal["healthy", "degraded", "stalled"]

STALL_AFTER = timedelta(hours=26)
"""A day plus two hours of slack: the daily cycle may start late and run long."""
UPTIME_GAP = timedelta(minutes=45)
"""Longer than the training check's 30 minutes: a longer gap in the timeline means the app was closed."""
REPEATED = 2
"""Failed runs in a row that make a built-in task a problem (one failure can be bad luck)."""
FAILED_RUNS = frozenset({"error", "timeout"})


@dataclass(frozen=True)
class LoopHealth:
    label: Label
    reason: str


def loop_health(engine: Engine, now: datetime | None = None, *, assume: Cycle | None = None) -> LoopHealth:
    """``assume``: a cycle as it is about to be closed (the daily report states the label as it
    will read once its own cycle ends)."""
    moment = as_utc(now or utc_now())
    page = read_cycles(engine, limit=200)
    cycles = list(page.cycles)
    if assume is not None:
        cycles = [assume, *(cycle for cycle in cycles if cycle.id != assume.id)]
    stuck = _stuck(cycles, moment)
    if stuck:
        return LoopHealth("stalled", stuck)
    last_daily = LedgerPage(tuple(cycles)).latest(DAILY, finished=True)
    stall = _no_daily(engine, last_daily, moment)
    if stall:
        return LoopHealth("stalled", stall)
    problems = [*_daily_problem(cycles), *_failing_tasks(engine)]
    if problems:
        return LoopHealth("degraded", "; ".join(problems[:3]) + ".")
    return LoopHealth("healthy", _healthy_reason(engine, cycles, last_daily))


def _stuck(cycles: Sequence[Cycle], now: datetime) -> str | None:
    for cycle in cycles:
        deadline = cycle.deadline
        if cycle.outcome == RUNNING and deadline is not None and now > deadline:
            ran = _hours(now - cycle.started_at)
            limit = _hours(deadline - cycle.started_at)
            return (
                f"The {cycle.words} started {_when(cycle.started_at)} is stuck: it has run {ran}, "
                f"past its {limit} limit."
            )
    return None


def _no_daily(engine: Engine, last: Cycle | None, now: datetime) -> str | None:
    since = last.finished_at if last is not None and last.finished_at else now - timedelta(days=30)
    uptime = app_uptime(_run_times(engine, since), until=now)
    if uptime <= STALL_AFTER:
        return None
    ran = _hours(uptime)
    if last is None:
        return f"No daily cycle has finished in {ran} of the app running."
    return f"No daily cycle has finished since {_when(since)}, in {ran} of the app running."


def app_uptime(times: Iterable[datetime], *, until: datetime) -> timedelta:
    """How long the app ran, judged from the start times of the built-in tasks' runs."""
    total = timedelta()
    previous: datetime | None = None
    for moment in [*sorted(times), until]:
        if previous is not None and moment - previous <= UPTIME_GAP:
            total += moment - previous
        previous = moment
    return total


def _run_times(engine: Engine, since: datetime) -> list[datetime]:
    with Session(engine) as s:
        query = (
            select(TaskRun.started_at)
            .where(col(TaskRun.task).in_(list(TASK_NAMES.values())), col(TaskRun.started_at) >= as_utc(since))
            .order_by(col(TaskRun.started_at))
            .limit(5000)
        )
        return [as_utc(moment) for moment in s.exec(query)]


def _daily_problem(cycles: Sequence[Cycle]) -> list[str]:
    for cycle in cycles:
        if cycle.kind != DAILY or cycle.outcome == RUNNING:
            continue
        if cycle.outcome == "ok":
            return []
        why = cycle.summary or str(cycle.detail.get("abandoned") or "")
        text = f"The last daily cycle ({_when(cycle.started_at)}) was {cycle.outcome}"
        return [f"{text}: {why.rstrip('.')}" if why else text]
    return []


def _failing_tasks(engine: Engine) -> list[str]:
    problems = []
    with Session(engine) as s:
        for kind, task in TASK_NAMES.items():
            query = (
                select(TaskRun)
                .where(TaskRun.task == task, col(TaskRun.outcome).not_in([RUNNING, "skipped"]))
                .order_by(col(TaskRun.id).desc())
                .limit(10)
            )
            runs = list(s.exec(query))
            failed = 0
            for run in runs:
                if run.outcome not in FAILED_RUNS:
                    break
                failed += 1
            if failed >= REPEATED:
                last = runs[0]
                what = "timed out" if all(r.outcome == "timeout" for r in runs[:failed]) else "failed"
                detail = f": {last.detail.strip().rstrip('.')}" if last.detail.strip() else ""
                problems.append(f"The {KIND_WORDS[kind]} {what} its last {failed} runs{detail}")
    return problems


def _healthy_reason(engine: Engine, cycles: Sequence[Cycle], last: Cycle | None) -> str:
    running = next((c for c in cycles if c.kind == DAILY and c.outcome == RUNNING), None)
    if running is not None:
        return f"The daily cycle is running (since {_when(running.started_at)}); no task is failing."
    if last is None:
        with Session(engine) as s:
            state = s.get(ScheduledTaskState, TASK_NAMES[DAILY])
        due = f"; the first is due {_when(as_utc(state.next_due))}" if state and state.next_due else ""
        return f"No daily cycle has run yet{due}. No task is failing."
    changes = len(last.changes)
    changed = f"{changes} change{'s' if changes != 1 else ''}" if changes else "nothing changed"
    when = _when(last.finished_at) if last.finished_at is not None else "at a time not recorded"
    return f"The last daily cycle finished ok {when} ({changed}); no task is failing."


def _hours(span: timedelta) -> str:
    hours = span.total_seconds() / 3600
    if hours < 1:
        return f"{max(1, round(hours * 60))} min"
    return f"{hours:.1f} h" if hours < 10 else f"{hours:.0f} h"


def _when(moment: datetime) -> str:
    """Local time, as a person reads it."""
    return moment.astimezone().strftime("%Y-%m-%d %H:%M")
