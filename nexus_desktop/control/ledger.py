"""The loop's ledger: one ``loop_cycle`` row per cycle of the autonomous loop and per step it ran.

A cycle is opened (``running``) before any work and closed once with its outcome, what changed in
words, and a detail dict.  A row is decided once: a late close of a row already marked
``abandoned`` changes nothing.  Reading never trusts a row: one whose JSON is garbage, whose
outcome is unknown or whose times do not parse is reported as "unreadable row N" and skipped, so
a damaged row can never take down ``nexus loop status`` or the dashboards.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psutil
from sqlalchemy import Engine, insert, text, update

from nexus_desktop.control.tables import LoopCycle

RUNNING = "running"
OUTCOMES = frozenset({RUNNING, "ok", "partial", "failed", "abandoned"})
FINISHED = frozenset({"ok", "partial", "failed"})
"""A cycle that reached its end (whatever it found); abandoned ones did not."""

DAILY = "daily"
TRAINING_CHECK = "training_check"
EVAL_SWEEP = "eval_sweep"
IMPACT = "impact_assessment"
KINDS = (DAILY, TRAINING_CHECK, EVAL_SWEEP, IMPACT)

TASK_NAMES = {
    DAILY: "daily-cycle",
    TRAINING_CHECK: "training-check",
    EVAL_SWEEP: "eval-sweep",
    IMPACT: "impact-assessment",
}
"""The scheduler task that runs each kind of cycle (``app_tasks`` registers them)."""

KIND_WORDS = {
    DAILY: "daily cycle",
    TRAINING_CHECK: "training check",
    EVAL_SWEEP: "eval sweep",
    IMPACT: "impact assessment",
}


def utc_now() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """SQLite gives naive datetimes back; every time NEXUS stores is UTC."""
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def naive_utc(moment: datetime) -> datetime:
    """As SQLite keeps a DATETIME (naive UTC), for comparisons in queries."""
    return as_utc(moment).replace(tzinfo=None)


@dataclass(frozen=True)
class Cycle:
    id: int
    kind: str
    started_at: datetime
    finished_at: datetime | None
    outcome: str
    changes: tuple[str, ...]
    detail: dict[str, Any] = field(default_factory=dict)
    report_path: str | None = None

    @property
    def parent(self) -> int | None:
        """The daily cycle this step ran in (None for a cycle of its own)."""
        parent = self.detail.get("cycle")
        return parent if isinstance(parent, int) else None

    @property
    def summary(self) -> str:
        """One line of what the cycle did (what its task returned, or why it failed)."""
        return str(self.detail.get("summary") or self.detail.get("error") or "")

    @property
    def seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    @property
    def deadline(self) -> datetime | None:
        """When its task's time limit ran out (a running cycle past it is stuck)."""
        seconds = self.detail.get("timeout_seconds")
        if not isinstance(seconds, int | float):
            return None
        return self.started_at + timedelta(seconds=float(seconds))

    @property
    def words(self) -> str:
        return KIND_WORDS.get(self.kind, self.kind.replace("_", " "))


@dataclass(frozen=True)
class UnreadableRow:
    id: int
    why: str

    @property
    def label(self) -> str:
        return f"unreadable row {self.id}"


@dataclass(frozen=True)
class LedgerPage:
    """The newest rows first; unreadable ones are set aside, never guessed at."""

    cycles: tuple[Cycle, ...]
    unreadable: tuple[UnreadableRow, ...] = ()

    def latest(self, kind: str, *, finished: bool = False) -> Cycle | None:
        for cycle in self.cycles:
            if cycle.kind == kind and (not finished or cycle.outcome in FINISHED):
                return cycle
        return None


# Writing ---------------------------------------------------------------------------------------


def _owner() -> dict[str, Any]:
    """Which process runs the cycle, so a later start can tell a live one from a dead one."""
    try:
        started = psutil.Process().create_time()
    except psutil.Error:
        started = None
    return {"pid": os.getpid(), "pid_started": started}


def open_cycle(
    engine: Engine,
    kind: str,
    *,
    parent: int | None = None,
    timeout_seconds: float | None = None,
    now: datetime | None = None,
) -> int:
    """A new ``running`` row; returns its id."""
    detail: dict[str, Any] = {**_owner()}
    if parent is not None:
        detail["cycle"] = parent
    if timeout_seconds is not None:
        detail["timeout_seconds"] = float(timeout_seconds)
    with engine.begin() as conn:
        result = conn.execute(
            insert(LoopCycle).values(
                kind=kind, started_at=_stored(now), outcome=RUNNING, changes=[], detail=detail
            )
        )
        key = result.inserted_primary_key
        assert key is not None
        return int(key[0])


def close_cycle(
    engine: Engine,
    cycle_id: int,
    outcome: str,
    changes: Sequence[str] = (),
    detail: dict[str, Any] | None = None,
    *,
    report_path: str | None = None,
    now: datetime | None = None,
) -> bool:
    """Decide a running row; False when it was already decided (abandoned meanwhile)."""
    if outcome not in FINISHED:
        raise ValueError(f"A cycle ends ok, partial or failed, not {outcome!r}.")
    with engine.begin() as conn:
        current = conn.execute(
            text("SELECT detail FROM loop_cycle WHERE id = :id AND outcome = :running"),
            {"id": cycle_id, "running": RUNNING},
        ).scalar_one_or_none()
        if current is None:
            return False
        merged = {**_json_dict(current), **(detail or {})}
        conn.execute(
            update(LoopCycle)
            .where(LoopCycle.id == cycle_id)  # type: ignore[arg-type]
            .values(
                outcome=outcome,
                finished_at=_stored(now),
                changes=[str(change) for change in changes],
                detail=_plain(merged),
                report_path=report_path,
            )
        )
    return True


def abandon_stale(engine: Engine, *, now: datetime | None = None) -> list[int]:
    """Close as ``abandoned`` every running row whose process is gone (the app was killed
    mid-cycle) or whose time limit ran out (its task was abandoned on timeout).  Returns their ids.

    A row of another live NEXUS process still within its time limit is left alone: the CLI may be
    running a cycle while the window starts."""
    moment = as_utc(now or utc_now())
    abandoned = []
    with engine.begin() as conn:
        rows = conn.execute(
            text("SELECT id, started_at, detail FROM loop_cycle WHERE outcome = :running"),
            {"running": RUNNING},
        ).all()
        for row_id, started_raw, detail_raw in rows:
            detail = _json_dict(detail_raw)
            why = _why_stale(detail, started_raw, moment)
            if why is None:
                continue
            detail["abandoned"] = why
            conn.execute(
                update(LoopCycle)
                .where(LoopCycle.id == row_id)  # type: ignore[arg-type]
                .values(outcome="abandoned", finished_at=_stored(moment), detail=_plain(detail))
            )
            abandoned.append(int(row_id))
    return abandoned


def _why_stale(detail: dict[str, Any], started_raw: Any, now: datetime) -> str | None:
    pid, pid_started = detail.get("pid"), detail.get("pid_started")
    if not isinstance(pid, int) or not _alive(pid, pid_started):
        return "NEXUS stopped while this cycle ran."
    seconds = detail.get("timeout_seconds")
    started = _parse_time(started_raw)
    limit = float(seconds) if isinstance(seconds, int | float) else None
    if limit is not None and started is not None and now > started + timedelta(seconds=limit + 60):
        return f"It ran past its {_duration(limit)} limit and was abandoned."
    return None


def _alive(pid: int, started: Any) -> bool:
    try:
        process = psutil.Process(pid)
        if isinstance(started, int | float) and abs(process.create_time() - started) > 1.0:
            return False  # the pid was recycled by another program
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:g} h"
    if seconds >= 60:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


def _stored(moment: datetime | None) -> datetime:
    """SQLite keeps the wall time and drops the zone: store UTC, always."""
    return as_utc(moment or utc_now())


def _plain(value: Any) -> Any:
    """JSON-safe: what cannot be stored as JSON is stored as its text."""
    return json.loads(json.dumps(value, default=str))


# Reading ---------------------------------------------------------------------------------------


def read_cycles(
    engine: Engine,
    *,
    limit: int = 50,
    kind: str | None = None,
    since: datetime | None = None,
    parent: int | None = None,
) -> LedgerPage:
    """The newest ``limit`` rows (of one kind, since a moment, or the steps of one daily cycle)."""
    clauses, params = [], {"limit": limit}
    if kind is not None:
        clauses.append("kind = :kind")
        params["kind"] = kind  # type: ignore[assignment]
    if since is not None:
        clauses.append("started_at >= :since")
        params["since"] = _sql_time(since)  # type: ignore[assignment]
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    query = (
        "SELECT id, kind, started_at, finished_at, outcome, changes, detail, report_path "
        f"FROM loop_cycle {where} ORDER BY id DESC LIMIT :limit"
    )
    with engine.connect() as conn:
        rows = conn.execute(text(query), params).all()
    cycles, unreadable = [], []
    for row in rows:
        parsed = parse_row(tuple(row))
        if isinstance(parsed, UnreadableRow):
            unreadable.append(parsed)
        elif parent is None or parsed.parent == parent:
            cycles.append(parsed)
    return LedgerPage(tuple(cycles), tuple(unreadable))


def get_cycle(engine: Engine, cycle_id: int) -> Cycle | UnreadableRow | None:
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT id, kind, started_at, finished_at, outcome, changes, detail, report_path "
                "FROM loop_cycle WHERE id = :id"
            ),
            {"id": cycle_id},
        ).first()
    return parse_row(tuple(row)) if row is not None else None


def parse_row(row: tuple[Any, ...]) -> Cycle | UnreadableRow:
    """A raw ``loop_cycle`` row as a Cycle, or why it cannot be read."""
    row_id, kind, started_raw, finished_raw, outcome, changes_raw, detail_raw, report_path = row
    try:
        changes = json.loads(changes_raw) if isinstance(changes_raw, str) else changes_raw
        detail = json.loads(detail_raw) if isinstance(detail_raw, str) else detail_raw
    except (TypeError, ValueError):
        return UnreadableRow(int(row_id), "its changes or detail are not valid JSON")
    if not isinstance(changes, list) or not isinstance(detail, dict):
        return UnreadableRow(int(row_id), "its changes or detail have the wrong shape")
    if outcome not in OUTCOMES:
        return UnreadableRow(int(row_id), f"its outcome {str(outcome)[:40]!r} is unknown")
    if not isinstance(kind, str) or not kind:
        return UnreadableRow(int(row_id), "it has no kind")
    started = _parse_time(started_raw)
    finished = _parse_time(finished_raw) if finished_raw is not None else None
    if started is None or (finished_raw is not None and finished is None):
        return UnreadableRow(int(row_id), "its times cannot be read")
    return Cycle(
        id=int(row_id),
        kind=kind,
        started_at=started,
        finished_at=finished,
        outcome=outcome,
        changes=tuple(str(change) for change in changes),
        detail=detail,
        report_path=report_path if isinstance(report_path, str) else None,
    )


def _json_dict(raw: Any) -> dict[str, Any]:
    try:
        value = json.loads(raw) if isinstance(raw, str) else raw
    except (TypeError, ValueError):
        return {}
    return dict(value) if isinstance(value, dict) else {}


def _parse_time(raw: Any) -> datetime | None:
    if isinstance(raw, datetime):
        return as_utc(raw)
    if not isinstance(raw, str):
        return None
    try:
        return as_utc(datetime.fromisoformat(raw))
    except ValueError:
        return None


def _sql_time(moment: datetime) -> str:
    """How SQLAlchemy writes a DATETIME on SQLite (naive UTC text), so comparisons line up."""
    return naive_utc(moment).strftime("%Y-%m-%d %H:%M:%S.%f")


def latest_report(engine: Engine) -> tuple[str, datetime | None] | None:
    """The newest daily report path on record and when its cycle finished (reads no JSON, so a
    damaged row elsewhere cannot break it)."""
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT report_path, finished_at FROM loop_cycle "
                "WHERE report_path IS NOT NULL AND report_path != '' ORDER BY id DESC LIMIT 1"
            )
        ).first()
    if row is None:
        return None
    return str(row[0]), _parse_time(row[1])
