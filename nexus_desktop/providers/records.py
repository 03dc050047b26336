"""Persisted decisions and outcomes: plain blocking functions (the router runs them off the
event loop's thread)."""

from __future__ import annotations

from typing import cast

from sqlalchemy import Engine, func
from sqlmodel import col, select

from nexus_desktop.db.engine import session
from nexus_desktop.db.tables import utcnow
from nexus_desktop.providers.decision import RouteDecision, SourceRate, TaskType
from nexus_desktop.providers.tables import RouteRecord


def save_decision(engine: Engine, decision: RouteDecision) -> int:
    """Store ``decision``; returns its row id."""
    with session(engine) as db:
        row = RouteRecord(
            task=decision.task,
            source_name=decision.source_name,
            kind=decision.kind,
            reason=decision.reason,
            warning=decision.warning,
        )
        db.add(row)
        db.commit()
        assert row.id is not None
        return row.id


def save_outcome(engine: Engine, decision_id: int, ok: bool, detail: str) -> None:
    """Record how the work the decision routed went (the latest call wins)."""
    with session(engine) as db:
        row = db.get(RouteRecord, decision_id)
        if row is None:
            return  # the row went with a deleted data folder: nothing to update
        row.outcome = "ok" if ok else "failed"
        row.detail = detail
        row.finished_at = utcnow()
        db.add(row)
        db.commit()


def load_rates(engine: Engine, task: TaskType | None = None) -> list[SourceRate]:
    """Every source's outcomes per task (only ``task``'s when given), by task then source."""
    ok = func.sum(func.iif(col(RouteRecord.outcome) == "ok", 1, 0))
    query = (
        select(RouteRecord.task, RouteRecord.source_name, ok, func.count())
        .where(col(RouteRecord.outcome).is_not(None))
        .group_by(RouteRecord.task, RouteRecord.source_name)
        .order_by(RouteRecord.task, RouteRecord.source_name)
    )
    if task is not None:
        query = query.where(RouteRecord.task == task)
    with session(engine) as db:
        rows = db.exec(query).all()
    return [
        SourceRate(name, cast(TaskType, kind), int(good or 0), int(total)) for kind, name, good, total in rows
    ]


def latest_decisions(engine: Engine, limit: int = 20) -> list[RouteRecord]:
    """The most recent decisions, newest first."""
    with session(engine) as db:
        return list(db.exec(select(RouteRecord).order_by(col(RouteRecord.id).desc()).limit(limit)).all())


def load_decision(engine: Engine, decision_id: int) -> RouteRecord | None:
    """One decision by its row id (a build card shows where its build ran and why), or None."""
    with session(engine) as db:
        return db.get(RouteRecord, decision_id)
