"""The scheduler's rows: task state that survives restarts, one row per run, and the one thread
that writes them.

Every write the scheduler makes goes through :class:`StateWriter`, a single thread that batches
what is queued into one transaction, so the event loop never waits on SQLite and the counters
are updated by one writer in order.  The reads (:func:`task_grid`, :func:`recent_runs`) are
plain synchronous queries for the CLI and the dashboards' worker threads.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Engine, case, insert, update
from sqlmodel import Session, col, select

from nexus_desktop.control.tables import ScheduledTaskState, TaskRun

log = logging.getLogger(__name__)
T = TypeVar("T")
Op = Callable[[Session], Any]

_BATCH = 256
_COLLECT_SECONDS = 0.02
INTERRUPTED = "the app stopped while it ran"


def run_row(
    task: str,
    due: datetime | None,
    started: datetime,
    finished: datetime | None,
    outcome: str,
    seconds: float | None,
    detail: str,
) -> dict[str, Any]:
    """A TaskRun row's values but its id, as plain values (cheaper than a TaskRun to build)."""
    return {
        "task": task,
        "due_at": due,
        "started_at": started,
        "finished_at": finished,
        "outcome": outcome,
        "seconds": seconds,
        "detail": detail,
    }


def to_db(moment: datetime | None) -> datetime | None:
    """The tables hold aware UTC times (sqlmodel stores them as UTC and reads them back aware)."""
    return None if moment is None else moment.astimezone(UTC)


class StateWriter:
    """One thread that runs queued writes in order, as many as are waiting in one transaction."""

    def __init__(self, engine: Engine, name: str = "nexus-scheduler-db") -> None:
        self.engine = engine
        self._queue: queue.SimpleQueue[tuple[Op, Future[Any]] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def submit(self, op: Callable[[Session], T]) -> Future[T]:
        """Queue ``op``; never blocks.  Its future holds what it returned (or raised)."""
        future: Future[T] = Future()
        self._queue.put((op, future))
        return future

    def close(self, timeout: float = 5.0) -> None:
        """Finish what is queued (within ``timeout``), then stop the thread.  Blocks."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _work(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            # Runs come due together (a hundred tasks on the same second): let the burst of
            # starts finish before this thread takes the GIL for the writes, and write them at once.
            time.sleep(_COLLECT_SECONDS)
            batch = [first]
            stop = False
            while len(batch) < _BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._run(batch)
            if stop:
                return

    def _run(self, batch: list[tuple[Op, Future[Any]]]) -> None:
        try:
            with Session(self.engine) as session:
                results = [op(session) for op, _ in batch]
                session.commit()
        except Exception:
            # One bad write must not lose the others: run each in a transaction of its own.
            for op, future in batch:
                self._run_one(op, future)
            return
        for (_, future), result in zip(batch, results, strict=True):
            future.set_result(result)

    def _run_one(self, op: Op, future: Future[Any]) -> None:
        try:
            with Session(self.engine) as session:
                result = op(session)
                session.commit()
        except Exception as error:  # reported through the future, and logged
            log.warning("A scheduler write failed: %s", error)
            future.set_exception(error)
        else:
            future.set_result(result)


# Writes (each runs on the writer thread, in a transaction the writer commits) -----------------


@dataclass(frozen=True)
class Registered:
    next_due: datetime | None
    state: str


def register(
    name: str, owner: str, cadence: str, next_due: datetime | None, not_implemented: bool
) -> Callable[[Session], Registered]:
    """Insert or update a task's row, keeping its counters.  ``next_due`` is used when the row
    has none or its cadence changed; a stored one is kept, so runs missed while the app was
    closed are still due when it opens."""

    def op(session: Session) -> Registered:
        row = session.get(ScheduledTaskState, name)
        if row is None:
            row = ScheduledTaskState(name=name)
        keep_due = row.cadence == cadence and row.next_due is not None
        row.owner, row.cadence = owner, cadence
        if not_implemented:
            row.state, row.next_due = "not_implemented", None
        else:
            row.state = "running" if row.state == "running" else "idle"
            row.next_due = row.next_due if keep_due else to_db(next_due)
        row.updated_at = datetime.now(UTC)
        session.add(row)
        return Registered(row.next_due, row.state)

    return op


def recover_interrupted(session: Session) -> int:
    """Close the runs a previous session left open (it crashed or was killed mid-run)."""
    runs = list(session.exec(select(TaskRun).where(col(TaskRun.outcome) == "running")))
    for run in runs:
        run.outcome, run.detail = "error", INTERRUPTED
        session.add(run)
    for state in session.exec(select(ScheduledTaskState).where(col(ScheduledTaskState.state) == "running")):
        state.state = "idle"
        session.add(state)
    return len(runs)


class RunRecord:
    """The database id of a run, filled in on the writer thread when its row is inserted."""

    id: int | None = None


# The per-run writes are SQL expressions, not ORM loads: a hundred runs a second must cost the
# writer thread (and the GIL it shares with the tasks' threads) little.
_RUNS = TaskRun.__table__  # type: ignore[attr-defined]
_STATES = ScheduledTaskState.__table__  # type: ignore[attr-defined]


def run_started(run: dict[str, Any], record: RunRecord, next_due: datetime | None) -> Op:
    def op(session: Session) -> int | None:
        connection = session.connection()
        inserted = connection.execute(insert(_RUNS).values(**_db_times(run)))
        record.id = _new_id(inserted)
        values: dict[str, Any] = {
            "state": "running",
            "last_started": to_db(run["started_at"]),
            "run_count": _STATES.c.run_count + 1,
        }
        if run.get("due_at") is not None:  # a scheduled run moves the next due time on
            values["next_due"] = to_db(next_due)
        connection.execute(update(_STATES).where(_STATES.c.name == run["task"]).values(**values))
        return record.id

    return op


def run_finished(run: dict[str, Any], record: RunRecord, still_running: bool) -> Op:
    def op(session: Session) -> None:
        connection = session.connection()
        if record.id is not None:
            ended = {key: _db_times(run)[key] for key in ("outcome", "finished_at", "seconds", "detail")}
            connection.execute(update(_RUNS).where(_RUNS.c.id == record.id).values(**ended))
        outcome = run["outcome"]
        values: dict[str, Any] = {
            "state": "running"
            if still_running
            else case((_STATES.c.state == "running", "idle"), else_=_STATES.c.state),
            "last_finished": to_db(run["finished_at"]),
            "last_duration": run["seconds"],
            "last_outcome": outcome,
            "error_count": _STATES.c.error_count + int(outcome == "error"),
            "timeout_count": _STATES.c.timeout_count + int(outcome == "timeout"),
            "skipped_count": _STATES.c.skipped_count + int(outcome == "skipped"),  # a task's own skip
        }
        if outcome in ("error", "timeout"):
            values["last_error"] = run["detail"]
        connection.execute(update(_STATES).where(_STATES.c.name == run["task"]).values(**values))

    return op


def run_skipped(run: dict[str, Any], count: int, next_due: datetime | None, quiet: bool) -> Op:
    """A skip: one row for ``count`` skipped runs.  ``quiet``: another run of the task is going,
    so its last outcome stays that run's."""

    def op(session: Session) -> int | None:
        connection = session.connection()
        inserted = connection.execute(insert(_RUNS).values(**_db_times(run)))
        values: dict[str, Any] = {"skipped_count": _STATES.c.skipped_count + count}
        if not quiet:
            values["last_outcome"] = "skipped"
        if next_due is not None:
            values["next_due"] = to_db(next_due)
        connection.execute(update(_STATES).where(_STATES.c.name == run["task"]).values(**values))
        return _new_id(inserted)

    return op


def _new_id(inserted: Any) -> int:
    key = inserted.inserted_primary_key
    assert key is not None
    return int(key[0])


def set_next_due(name: str, next_due: datetime | None) -> Op:
    def op(session: Session) -> None:
        state = session.get(ScheduledTaskState, name)
        if state is not None:
            state.next_due = to_db(next_due)
            session.add(state)

    return op


def set_state(name: str, value: str) -> Op:
    def op(session: Session) -> None:
        state = session.get(ScheduledTaskState, name)
        if state is not None:
            state.state = value
            session.add(state)

    return op


def _db_times(run: dict[str, Any]) -> dict[str, Any]:
    return {key: to_db(value) if isinstance(value, datetime) else value for key, value in run.items()}


# Reads ----------------------------------------------------------------------------------------


def task_grid(engine: Engine) -> list[ScheduledTaskState]:
    """Every task the scheduler knows, by name, with aware (UTC) times.  Blocks: not on a UI thread."""
    with Session(engine) as session:
        rows = list(session.exec(select(ScheduledTaskState).order_by(col(ScheduledTaskState.name))))
        session.expunge_all()
    return rows


def recent_runs(engine: Engine, since: datetime, limit: int = 500) -> list[TaskRun]:
    """Runs (and skips) that started at or after ``since``, newest first, with aware times."""
    with Session(engine) as session:
        query = (
            select(TaskRun)
            .where(col(TaskRun.started_at) >= to_db(since))
            .order_by(col(TaskRun.started_at).desc(), col(TaskRun.id).desc())
            .limit(limit)
        )
        rows = list(session.exec(query))
        session.expunge_all()
    return rows
