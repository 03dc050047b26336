"""What the Dashboards page shows, read from the tables into plain frozen snapshots (no Qt).

Each reader is synchronous and meant to run off the Qt thread (the page runs them through
``QueryOp``), one call at a time per reader.  Readers remember what they already read, so a
refresh ten times a second costs a couple of indexed queries, not a reread of the day:

- ``SchedulerReader``: the task grid (small: read whole), runs after the last id seen plus the
  ones still running, the loop's health and its latest daily report (both every few seconds);
- ``GateReader``: every gate decision, reread only when a decision or adapter event was added;
- ``BudgetReader``: usage per character per day against its policy, and cooldowns in force;
Inference series live in ``control/dashboard_series.py``, budgets in ``control/dashboard_budgets.py``
and training curves in ``control/dashboard_training.py``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from nexus_desktop.control.dashboard_series import Floats
from nexus_desktop.control.metrics import read_rows
from nexus_desktop.control.tables import LoopCycle

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
OUTCOMES = ("ok", "error", "timeout", "skipped", "running")
SLOW_EVERY_SECONDS = 2.0
"""Health and the report change slowly and cost more to work out: read at most this often."""
REPORT_MAX_CHARS = 200_000


def _now() -> datetime:
    return datetime.now(UTC)


def aware(moment: datetime | None) -> datetime | None:
    """SQLite hands datetimes back naive; every one the app writes is UTC."""
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# Scheduler ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskRow:
    name: str
    owner: str
    cadence: str
    state: str
    next_due: datetime | None
    last_started: datetime | None
    last_duration: float | None
    last_outcome: str | None
    last_error: str
    run_count: int
    error_count: int
    timeout_count: int
    skipped_count: int


@dataclass(frozen=True)
class RunPoint:
    id: int
    task: str
    started_at: datetime
    outcome: str
    seconds: float | None
    detail: str


@dataclass(frozen=True)
class Health:
    label: str
    """healthy, degraded, stalled, or unknown when the loop cannot say."""
    reason: str


@dataclass(frozen=True)
class Report:
    path: str
    text: str
    written_at: datetime | None


@dataclass(frozen=True)
class Timeline:
    """Recent runs as plot-ready arrays: x in unix seconds, y the task's row, the outcome's index."""

    x: Floats
    y: Floats
    outcome: np.ndarray[Any, np.dtype[np.int8]]
    runs: tuple[RunPoint, ...]
    """In the same order as the arrays (what a click on point i shows)."""


@dataclass(frozen=True)
class SchedulerSnapshot:
    tasks: tuple[TaskRow, ...]
    timeline: Timeline
    timeline_version: int
    health: Health
    report: Report | None


def sql_time(moment: datetime) -> str:
    """A moment as the tables store it (UTC text), for comparisons in plain SQL."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def parse_time(text: str | None) -> datetime | None:
    return aware(datetime.fromisoformat(text)) if text else None


# Plain SQL on the page's read engine: these run ten times a second, and the ORM's per-row work
# would compete with the window for the GIL.
_GRID = (
    "SELECT name, owner, cadence, state, next_due, last_started, last_duration, last_outcome, last_error, "
    "run_count, error_count, timeout_count, skipped_count FROM scheduled_task ORDER BY name"
)
_RUN_COLUMNS = "id, task, started_at, outcome, seconds, detail"
_FIRST_RUNS = f"SELECT {_RUN_COLUMNS} FROM task_run WHERE started_at >= :since ORDER BY id DESC LIMIT :limit"
_NEW_RUNS = f"SELECT {_RUN_COLUMNS} FROM task_run WHERE id > :after OR id IN ({{again}}) ORDER BY id"


def _task_row(row: tuple[Any, ...]) -> TaskRow:
    name, owner, cadence, state, next_due, last_started, *rest = row
    duration, outcome, error, runs, errors, timeouts, skips = rest
    return TaskRow(
        name=name,
        owner=owner,
        cadence=cadence,
        state=state,
        next_due=parse_time(next_due),
        last_started=parse_time(last_started),
        last_duration=duration,
        last_outcome=outcome,
        last_error=error or "",
        run_count=runs or 0,
        error_count=errors or 0,
        timeout_count=timeouts or 0,
        skipped_count=skips or 0,
    )


def read_health(engine: Engine) -> Health:
    """The loop's label and reason from ``control.health`` (H4), or ``unknown`` without it."""
    try:
        from nexus_desktop.control.health import loop_health  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return Health("unknown", "This build has no loop health check yet.")
    try:
        health = loop_health(engine)
    except Exception as error:  # a broken check must not take the scheduler view with it
        log.warning("The loop's health check failed", exc_info=True)
        return Health("unknown", f"The health check failed: {error}")
    return Health(str(health.label), str(health.reason))


def latest_report(engine: Engine) -> tuple[str, datetime | None] | None:
    """The newest report path the loop recorded, and when its cycle finished."""
    with Session(engine) as s:
        cycle = s.exec(
            select(LoopCycle)
            .where(col(LoopCycle.report_path).is_not(None), LoopCycle.report_path != "")
            .order_by(col(LoopCycle.id).desc())
            .limit(1)
        ).first()
    if cycle is None or not cycle.report_path:
        return None
    return cycle.report_path, aware(cycle.finished_at or cycle.started_at)


class SchedulerReader:
    def __init__(
        self, engine: Engine, *, window: timedelta = timedelta(hours=24), max_runs: int = 5000
    ) -> None:
        self.engine = engine
        self.window = window
        self.max_runs = max_runs
        self._runs: dict[int, RunPoint] = {}
        self._last_id = 0
        self._version = 0
        self._timeline = Timeline(np.empty(0), np.empty(0), np.empty(0, dtype=np.int8), ())
        self._timeline_tasks: tuple[str, ...] = ()
        self._slow_at = -float("inf")
        self._health = Health("unknown", "Not read yet.")
        self._report: Report | None = None
        self._report_key: tuple[str, float] | None = None

    def read(self, now: datetime | None = None) -> SchedulerSnapshot:
        now = now or _now()
        tasks = tuple(_task_row(row) for row in read_rows(self.engine, _GRID))
        changed = self._read_runs(now - self.window)
        names = tuple(t.name for t in tasks)
        if changed or names != self._timeline_tasks:
            self._timeline = self._make_timeline(names)
            self._timeline_tasks = names
            self._version += 1
        if time.monotonic() - self._slow_at >= SLOW_EVERY_SECONDS:
            self._health = read_health(self.engine)
            self._report = self._read_report()
            self._slow_at = time.monotonic()
        return SchedulerSnapshot(tasks, self._timeline, self._version, self._health, self._report)

    def _read_runs(self, since: datetime) -> bool:
        if self._last_id == 0:
            params: dict[str, Any] = {"since": sql_time(since), "limit": self.max_runs}
            rows = read_rows(self.engine, _FIRST_RUNS, params)[::-1]  # oldest first
        else:
            running = [run_id for run_id, run in self._runs.items() if run.outcome == "running"][-200:]
            params = {"after": self._last_id, **{f"r{i}": run_id for i, run_id in enumerate(running)}}
            again = ", ".join(f":r{i}" for i in range(len(running))) or "NULL"
            rows = read_rows(self.engine, _NEW_RUNS.format(again=again), params)
        changed = False
        for run_id, task, started_at, outcome, seconds, detail in rows:
            point = RunPoint(run_id, task, parse_time(started_at) or since, outcome, seconds, detail)
            if self._runs.get(run_id) != point:
                self._runs[run_id] = point
                changed = True
            self._last_id = max(self._last_id, run_id)
        # Runs are kept in id order, so the ones that left the window are at the front.
        for run_id in list(self._runs):
            if self._runs[run_id].started_at >= since and len(self._runs) <= self.max_runs:
                break
            del self._runs[run_id]
            changed = True
        return changed

    def _make_timeline(self, names: tuple[str, ...]) -> Timeline:
        rows = {name: index for index, name in enumerate(names)}
        runs = tuple(sorted(self._runs.values(), key=lambda r: r.id))
        for run in runs:  # a run of a task no longer registered keeps a row of its own
            rows.setdefault(run.task, len(rows))
        x = np.fromiter((r.started_at.timestamp() for r in runs), dtype=np.float64, count=len(runs))
        y = np.fromiter((rows[r.task] for r in runs), dtype=np.float64, count=len(runs))
        codes = {name: index for index, name in enumerate(OUTCOMES)}
        outcome = np.fromiter((codes.get(r.outcome, 0) for r in runs), dtype=np.int8, count=len(runs))
        return Timeline(x, y, outcome, runs)

    def _read_report(self) -> Report | None:
        found = latest_report(self.engine)
        if found is None:
            return None
        path, written_at = found
        try:
            mtime = Path(path).stat().st_mtime
        except OSError:
            return Report(
                path, f"The report file {path} is missing; the next daily cycle writes a new one.", None
            )
        if self._report_key != (path, mtime) or self._report is None:
            try:
                text = Path(path).read_text(encoding="utf-8", errors="replace")[:REPORT_MAX_CHARS]
            except OSError as error:
                text = f"The report {path} could not be read: {error}"
            self._report = Report(path, text, written_at)
            self._report_key = (path, mtime)
        return self._report


# Gate decisions ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class GateSnapshot:
    version: int
    decisions: dict[str, tuple[Any, ...]]
    """Zoo model -> its decisions (``training.service.GateView``), oldest first."""

    @property
    def models(self) -> list[str]:
        return sorted(self.decisions)


_GATE_TOKEN = (
    "SELECT (SELECT MAX(id) FROM gate_decision), (SELECT COUNT(*) FROM gate_decision), "
    "(SELECT MAX(id) FROM adapter_event)"
)


class GateReader:
    """Gate decisions are few and rare: reread in full when one is added, else nothing."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._token: tuple[Any, ...] | None = None
        self._snapshot = GateSnapshot(0, {})

    def read(self) -> GateSnapshot:
        from nexus_desktop.training.gate import decision_history
        from nexus_desktop.training.registry import AdapterRegistry
        from nexus_desktop.training.service import TrainingService

        token = read_rows(self.engine, _GATE_TOKEN)[0]
        if token == self._token:
            return self._snapshot
        events = AdapterRegistry(self.engine).history(None)
        promoted = {event.decision_id for event in events if event.decision_id is not None}
        decisions: dict[str, list[Any]] = {}
        for record in decision_history(self.engine, None):
            # The Training page's own view of a decision, so both pages say the same.
            view = TrainingService._gate_view(record, record.id in promoted, events)
            decisions.setdefault(record.model_id, []).append(view)
        self._token = token
        self._snapshot = GateSnapshot(self._snapshot.version + 1, {k: tuple(v) for k, v in decisions.items()})
        return self._snapshot
