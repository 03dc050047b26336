"""The scheduler: runs tasks on their cadence, on the app's event loop, and never waits on one.

Semantics as in APScheduler, plus what it lacks (a timeout per run):

- **Misfire grace**: a run that comes due more than ``misfire_grace_seconds`` late is skipped
  (a ``skipped`` run row, counted); ``None`` runs it however late.
- **Coalescing**: runs missed while the app was closed, asleep, or behind a clock jump are folded
  into one run, for the latest due time missed (never N runs).
- **Max instances**: a run that comes due while ``max_instances`` runs of the task are still
  going is skipped and counted.
- **Timeout**: every run has one.  The runner (``control.runners``) stops what it can; a run
  still going a moment after its limit is abandoned and counted in ``timeout_count``.  The tick
  loop starts runs as tasks of their own and never awaits one, so nothing a task does (short of
  blocking the event loop itself, which is why blocking work goes through a runner) delays
  another.
- **Errors** are counted in ``error_count`` and kept as the run's detail, never raised.
- **Pause**: while paused (game mode), a ``heavy`` task's runs are ``skipped`` with
  "paused: <reason>"; the others run as usual.
- A task declared with ``run=None`` is ``not_implemented``: one warning, shown in the grid,
  never run.

Time: due times are wall-clock (aware UTC) times from ``clock``; the loop sleeps on the event
loop's monotonic clock, at most ``tick_seconds`` at a time, so it notices clock jumps within a
tick.  A jump forward makes runs due, coalesced into one; after a jump back, a due time more than
one interval away is computed again from now (so a task does not stall for the hour the clock
went back), but never so that a task runs twice within half its interval.

State is one ``ScheduledTaskState`` row per task and a ``TaskRun`` row per run; every write goes
through one database thread (``control.task_state``).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from nexus_desktop.control.cadence import Cadence, due_times, parse_cadence
from nexus_desktop.control.observers import Fanout
from nexus_desktop.control.runners import Runner, TaskSkipped, TaskTimeout, one_line
from nexus_desktop.control.tables import TaskRun
from nexus_desktop.control.task_state import (
    INTERRUPTED,
    Registered,
    RunRecord,
    StateWriter,
    recent_runs,
    recover_interrupted,
    register,
    run_finished,
    run_row,
    run_skipped,
    run_started,
    set_next_due,
    set_state,
    task_grid,
)

__all__ = ["Scheduler", "Task", "UnknownTask", "recent_runs", "task_grid", "utc_now"]

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]
Observer = Callable[[TaskRun], None]

_EARLY = timedelta(milliseconds=1)  # a wake-up this close before a due time counts as on time
_MISSED_LIMIT = 1000  # due times enumerated after a long absence (coalesce=False); older are counted


def utc_now() -> datetime:
    return datetime.now(UTC)


class UnknownTask(KeyError):
    """No task of that name is registered."""


@dataclass
class Task:
    """A scheduled task.  ``cadence``: a :class:`Cadence` or its text (``every 15m``...);
    ``run``: where and how it runs (``control.runners``), or None for a task declared but not
    built yet."""

    name: str
    cadence: Cadence | str
    run: Runner | None
    description: str = ""
    owner: str = "nexus"
    timeout_seconds: float = 300.0
    misfire_grace_seconds: float | None = 300.0
    coalesce: bool = True
    max_instances: int = 1
    heavy: bool = False
    """Training or benchmarks: skipped while the scheduler is paused (a game runs)."""
    schedule: Cadence = field(init=False, repr=False)
    """``cadence``, read."""

    def __post_init__(self) -> None:
        self.schedule = self.cadence if isinstance(self.cadence, Cadence) else parse_cadence(self.cadence)
        if not self.name.strip():
            raise ValueError("A scheduled task needs a name.")
        if self.timeout_seconds <= 0:
            raise ValueError(f"The task {self.name}: timeout_seconds must be above 0.")
        if self.misfire_grace_seconds is not None and self.misfire_grace_seconds < 0:
            raise ValueError(f"The task {self.name}: misfire_grace_seconds must be 0 or more, or None.")
        if self.max_instances < 1:
            raise ValueError(f"The task {self.name}: max_instances must be at least 1.")


@dataclass
class _Active:
    """One run in progress."""

    run: dict[str, Any]
    """The run's row as plain values: TaskRun objects cost too much to build on the event loop
    for a hundred runs a second; observers get theirs built on the database thread."""
    record: RunRecord
    note: str
    job: asyncio.Task[None] | None = None
    started: float = field(default_factory=time.monotonic)
    stop_reason: str = INTERRUPTED
    written: Future[Any] | None = None


@dataclass
class _Entry:
    task: Task
    loaded: Future[Registered]
    ready: bool = False
    next_due: datetime | None = None
    running: dict[int, _Active] = field(default_factory=dict)
    last_fire_mono: float | None = None


class Scheduler:
    """Runs registered tasks on the running event loop; see the module's docstring."""

    def __init__(self, engine: Engine, *, clock: Clock = utc_now, tick_seconds: float = 1.0) -> None:
        self.engine = engine
        self.clock = clock
        self.tick_seconds = tick_seconds
        self._writer = StateWriter(engine)
        self._fanout: Fanout[TaskRun] = Fanout()
        self._entries: dict[str, _Entry] = {}
        self._warned: set[str] = set()
        self._keys = itertools.count()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._closing = False
        self.paused = ""
        """Why heavy tasks skip now ("game mode"); empty when they run."""

    async def pause(self, reason: str) -> None:
        """Skip heavy tasks' runs, with "paused: ``reason``" as their detail, until ``resume``."""
        self.paused = reason

    async def resume(self) -> None:
        self.paused = ""

    # Registration ---------------------------------------------------------------------------

    def add(self, task: Task) -> None:
        """Register ``task``, or update it: its row keeps its counters (and its next due time,
        unless the cadence changed).  Never blocks: the row is written on the database thread."""
        if task.run is None and task.name not in self._warned:
            self._warned.add(task.name)
            log.warning("Scheduled task %s is declared but not built yet; it will not run.", task.name)
        first_due = task.schedule.next_after(self.clock())
        op = register(task.name, task.owner, task.schedule.text, first_due, task.run is None)
        previous = self._entries.get(task.name)
        entry = _Entry(task, self._writer.submit(op))
        if previous is not None:
            entry.running, entry.last_fire_mono = previous.running, previous.last_fire_mono
        self._entries[task.name] = entry
        entry.loaded.add_done_callback(lambda _: self._poke_threadsafe())

    def remove(self, name: str) -> None:
        """Stop scheduling ``name``; runs in progress are abandoned.  Its row stays, ``disabled``."""
        entry = self._entries.pop(name, None)
        if entry is None:
            return
        for active in list(entry.running.values()):
            active.stop_reason = "the task was removed while it ran"
            if active.job is not None:
                active.job.cancel()
        self._writer.submit(set_state(name, "disabled"))

    def tasks(self) -> list[Task]:
        return [entry.task for entry in self._entries.values()]

    def subscribe(self, observer: Observer) -> Callable[[], None]:
        """Call ``observer`` with every finished or skipped run, on a thread of its own (never the
        event loop).  One that falls behind misses runs; one that raises is logged.  Returns the
        function that unsubscribes it."""
        return self._fanout.subscribe(observer)

    # Life -----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Close runs a previous session left open, then start ticking."""
        if self._ticker is not None:
            return
        self._attach()
        self._writer.submit(recover_interrupted)
        self._ticker = asyncio.get_running_loop().create_task(self._tick_loop(), name="nexus-scheduler")

    async def aclose(self) -> None:
        """Stop ticking, abandon runs in progress (recorded as errors: the app stopped), write what
        is queued and return; a task that ignores cancellation is left behind, not waited for."""
        self._closing = True
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
        jobs = [a.job for e in self._entries.values() for a in e.running.values() if a.job is not None]
        for job in jobs:
            job.cancel()
        if jobs:
            await asyncio.wait(jobs, timeout=1.0)
        for entry in self._entries.values():  # runs cancelled before they began, or stuck
            for key, active in list(entry.running.items()):
                self._finish(entry, key, active, "error", active.stop_reason)
        await asyncio.to_thread(self._writer.close, 5.0)
        self._fanout.close()

    async def run_now(self, name: str) -> TaskRun:
        """Run ``name`` now and return its finished run.  A task at its ``max_instances`` gives a
        ``skipped`` run; a ``not_implemented`` one gives a skipped run that is not recorded."""
        entry = self._entries.get(name)
        if entry is None:
            raise UnknownTask(name)
        self._attach()
        await asyncio.wrap_future(entry.loaded)
        now = self.clock()
        if entry.task.run is None:
            detail = f"The task {name} is not built yet (not_implemented); nothing ran."
            return TaskRun(
                task=name, started_at=now, finished_at=now, outcome="skipped", seconds=0.0, detail=detail
            )
        if len(entry.running) >= entry.task.max_instances:
            return TaskRun(**self._skip(entry, None, now, 1, self._busy(entry), quiet=True))
        active = self._start(entry, None, "")
        assert active.job is not None
        await asyncio.shield(active.job)
        if active.written is not None:
            await asyncio.wrap_future(active.written)
        return TaskRun(**active.run, id=active.record.id)

    # The tick loop ----------------------------------------------------------------------------

    def _attach(self) -> None:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._wake = asyncio.Event()

    def _poke_threadsafe(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is None or wake is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(wake.set)
        except RuntimeError:
            pass  # the loop closed in between

    async def _tick_loop(self) -> None:
        assert self._loop is not None and self._wake is not None
        while not self._closing:
            self._wake.clear()
            try:
                delay = self._tick(self.clock(), time.monotonic())
            except Exception:  # a bug here must not stop every task: log it, tick again
                log.exception("The scheduler's tick failed")
                delay = self.tick_seconds
            # Monotonic sleep, at most a tick: a wall-clock jump is seen within one tick.
            handle = self._loop.call_later(delay, self._wake.set)
            await self._wake.wait()
            handle.cancel()

    def _tick(self, now: datetime, mono: float) -> float:
        """Start what is due; return how long to sleep."""
        earliest: datetime | None = None
        for entry in list(self._entries.values()):
            if not entry.ready:
                if not entry.loaded.done():
                    continue
                self._load(entry, now)
            if entry.task.run is None or entry.next_due is None:
                continue
            self._consider(entry, now, mono)
            if entry.next_due is not None and (earliest is None or entry.next_due < earliest):
                earliest = entry.next_due
        if earliest is None:
            return self.tick_seconds
        return min(self.tick_seconds, max(0.0, (earliest - self.clock()).total_seconds()))

    def _load(self, entry: _Entry, now: datetime) -> None:
        entry.ready = True
        try:
            entry.next_due = entry.loaded.result().next_due
        except Exception as error:  # the database failed: schedule from now, in memory
            log.warning("Scheduled task %s: its state could not be read (%s)", entry.task.name, error)
            entry.next_due = None if entry.task.run is None else entry.task.schedule.next_after(now)

    def _consider(self, entry: _Entry, now: datetime, mono: float) -> None:
        due = entry.next_due
        assert due is not None
        cadence = entry.task.schedule
        if (due - now).total_seconds() > cadence.interval_seconds:
            # The clock went back (or was wrong when the due time was set): due again from now.
            moved = self._after_clock_went_back(entry, now, mono)
            if moved != due:
                log.info("Clock went back: task %s is now due at %s", entry.task.name, moved)
                entry.next_due = moved
                self._writer.submit(set_next_due(entry.task.name, moved))
            return
        if due > now + _EARLY:
            return
        self._fire(entry, due, now, mono)

    def _after_clock_went_back(self, entry: _Entry, now: datetime, mono: float) -> datetime:
        cadence = entry.task.schedule
        candidate = cadence.next_after(now)
        if entry.last_fire_mono is None:
            return candidate
        # Measured in real (monotonic) time, a due time within half an interval of the last run
        # is the same run again (the daily 03:00 that just ran, with the clock an hour back).
        half = cadence.interval_seconds / 2
        for _ in range(_MISSED_LIMIT):
            real_gap = mono + (candidate - now).total_seconds() - entry.last_fire_mono
            if real_gap >= half:
                break
            candidate = cadence.next_after(candidate)
        return candidate

    def _fire(self, entry: _Entry, due: datetime, now: datetime, mono: float) -> None:
        task = entry.task
        missed, total = due_times(task.schedule, due, max(now, due), _MISSED_LIMIT)
        entry.next_due = task.schedule.next_after(missed[-1])
        entry.last_fire_mono = mono
        candidates = missed[-1:] if task.coalesce else missed
        grace = task.misfire_grace_seconds
        late = [d for d in candidates if grace is not None and (now - d).total_seconds() > grace]
        on_time = [d for d in candidates if grace is None or (now - d).total_seconds() <= grace]
        skipped_before = total - len(candidates) if not task.coalesce else 0
        if late or skipped_before:
            count = len(late) + skipped_before
            latest = late[-1] if late else missed[0]
            if late and grace is not None:
                late_by = _span((now - latest).total_seconds())
                detail = f"missed by {late_by}; the misfire grace is {grace:g} s"
            else:
                detail = f"more missed runs than can catch up; the latest {_MISSED_LIMIT} come due"
            if count > 1:
                detail += f" ({count} runs skipped)"
            self._skip(entry, latest, now, count, detail, quiet=bool(entry.running))
        folded = total - 1 if task.coalesce else 0
        note = f"{folded} missed run{'s' if folded > 1 else ''} folded into this one; " if folded else ""
        for due_time in on_time:
            if task.heavy and self.paused:
                self._skip(entry, due_time, now, 1, f"paused: {self.paused}", quiet=bool(entry.running))
            elif len(entry.running) >= task.max_instances:
                self._skip(entry, due_time, now, 1, self._busy(entry), quiet=True)
            else:
                self._start(entry, due_time, note)

    # Runs -----------------------------------------------------------------------------------

    def _start(self, entry: _Entry, due: datetime | None, note: str) -> _Active:
        task = entry.task
        assert task.run is not None and self._loop is not None
        # Its own clock reading, not the tick's: the benchmark measures how late this is.
        run = run_row(task.name, due, self.clock(), None, "running", None, "")
        active = _Active(run, RunRecord(), note)
        key = next(self._keys)
        entry.running[key] = active
        self._writer.submit(run_started(dict(run), active.record, entry.next_due))
        active.job = self._loop.create_task(self._execute(entry, key, active, task.run))
        return active

    async def _execute(self, entry: _Entry, key: int, active: _Active, runner: Runner) -> None:
        task = entry.task
        limit = task.timeout_seconds
        inner = asyncio.ensure_future(_call(runner, limit))
        inner.add_done_callback(_retrieve)
        try:
            done, _ = await asyncio.wait({inner}, timeout=limit + _cleanup_margin(limit))
            if not done:
                inner.cancel()  # it may ignore this; it is no longer waited for either way
                outcome, detail = "timeout", f"did not finish within {limit:g} s and was abandoned"
            elif inner.cancelled():
                outcome, detail = "error", "it was cancelled"
            elif isinstance(inner.exception(), TaskTimeout):
                outcome, detail = (
                    "timeout",
                    one_line(inner.exception()) or f"did not finish within {limit:g} s",
                )
            elif isinstance(inner.exception(), TaskSkipped):
                outcome, detail = "skipped", one_line(inner.exception()) or "it chose not to run"
            elif inner.exception() is not None:
                error = inner.exception()
                outcome, detail = "error", one_line(f"{type(error).__name__}: {error}")
            else:
                outcome, detail = "ok", one_line(inner.result()) or "done"
        except asyncio.CancelledError:  # aclose() or remove(): abandon the run, record why
            inner.cancel()
            outcome, detail = "error", active.stop_reason
        self._finish(entry, key, active, outcome, detail)

    def _finish(self, entry: _Entry, key: int, active: _Active, outcome: str, detail: str) -> None:
        if entry.running.pop(key, None) is None:
            return  # already finished (aclose() recorded it while the job was stuck)
        run = active.run
        run["outcome"] = outcome
        run["detail"] = one_line(active.note + detail)
        run["finished_at"] = self.clock()
        run["seconds"] = round(time.monotonic() - active.started, 6)
        still = bool(entry.running)
        active.written = self._writer.submit(run_finished(dict(run), active.record, still))
        # Observers hear of a run once its row is written: it has its id, and a dashboard that
        # reads the table when it hears finds the row there.
        finished = dict(run)
        active.written.add_done_callback(lambda _: self._publish(finished, active.record.id))

    def _publish(self, run: dict[str, Any], run_id: int | None) -> None:
        # On the database thread: building the TaskRun here keeps it off the event loop.
        self._fanout.publish(TaskRun(**run, id=run_id))

    def _skip(
        self, entry: _Entry, due: datetime | None, now: datetime, count: int, detail: str, *, quiet: bool
    ) -> dict[str, Any]:
        run = run_row(entry.task.name, due, now, now, "skipped", 0.0, one_line(detail))
        next_due = entry.next_due if due is not None else None
        written = self._writer.submit(run_skipped(dict(run), count, next_due, quiet))
        written.add_done_callback(lambda done: self._publish(run, _result_or_none(done)))
        return run

    @staticmethod
    def _busy(entry: _Entry) -> str:
        oldest: datetime = min(active.run["started_at"] for active in entry.running.values())
        limit = entry.task.max_instances
        return (
            f"the run started at {oldest.astimezone().strftime('%H:%M:%S')} is still going; "
            f"at most {limit} run{'s' if limit > 1 else ''} at a time"
        )


# Helpers ------------------------------------------------------------------------------------


async def _call(runner: Runner, limit: float) -> str:
    return await runner(limit)


def _retrieve(job: asyncio.Future[Any]) -> None:
    # An abandoned run may still fail later: take its exception so asyncio does not log it.
    if not job.cancelled():
        job.exception()


def _result_or_none(done: Future[Any]) -> Any:
    return None if done.exception() is not None else done.result()


def _cleanup_margin(limit: float) -> float:
    """How long past its limit a run gets to stop itself (kill its process) before it is abandoned.

    Killing a contained process tree and seeing its pipes close took over 0.7 s on a loaded
    2-core CI machine; the run is then correctly a timeout either way, but says less."""
    return min(5.0, 1.5 + 0.1 * limit)


def _span(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
