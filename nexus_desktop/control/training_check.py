"""The training check: each zoo model past its threshold, with no job of its own unfinished, is
trained, benchmarked and gated through the training service, exactly as Train now does; the check
waits for the job and the gate's verdict (the service judges every job it finishes)."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from nexus_desktop.control.cycle import CycleRecord, one_line
from nexus_desktop.training.gate import decision_history
from nexus_desktop.training.jobs import JobState
from nexus_desktop.training.service import Notice, TrainingService, ZooRow
from nexus_desktop.training.tables import TrainingJob

VERDICT_KINDS = frozenset({"promoted", "approved", "rejected", "judge_failed", "failed", "cancelled"})
"""The training service's notices that end a job's story (after ``finished`` comes the gate's)."""


async def training_check(
    engine: Engine, training: TrainingService, record: CycleRecord, *, poll_seconds: float = 1.0
) -> None:
    rows = await training.zoo()
    busy = await asyncio.to_thread(_unfinished_jobs, engine)
    ready = [row for row in rows if row.ready]
    record.detail["zoo"] = [
        {"model": row.model_id, "new": row.new_examples, "threshold": row.threshold} for row in rows
    ]
    if not ready:
        counts = ", ".join(f"{row.model_id} {row.new_examples}/{row.threshold}" for row in rows)
        record.summary = f"No zoo model is past its threshold ({counts or 'the zoo is empty'})."
        return
    models: dict[str, Any] = {}
    record.detail["models"] = models
    for row in ready:  # highest priority first, one after the other (one trainer at a time)
        if row.model_id in busy:
            record.notes.append(f"{row.name}: job {busy[row.model_id]} is still training; skipped.")
            record.done += 1
            continue
        models[row.model_id] = await _train_one(engine, training, row, record, poll_seconds)
        record.detail.pop("waiting_for", None)


async def _train_one(
    engine: Engine, training: TrainingService, row: ZooRow, record: CycleRecord, poll_seconds: float
) -> dict[str, Any]:
    mark = len(await training.notices(0))
    try:
        job = await training.train_now(row.model_id)
    except Exception as error:
        record.problems.append(f"{row.name}: training could not start: {one_line(error)}")
        return {"error": one_line(error)}
    record.detail["waiting_for"] = job.id  # named if the check runs out of time
    notice = await _verdict_notice(training, job.id, mark, poll_seconds)
    view = await training.job(job.id)
    entry: dict[str, Any] = {"job": job.id, "verdict": notice.kind, "text": notice.text}
    decision = await asyncio.to_thread(_decision_for, engine, row.model_id, job.id)
    if decision is not None:
        entry["decision"] = decision
    trained = f"job {job.id} ({view.step} steps"
    trained += f", best loss {view.best_loss:.3f})" if view.best_loss is not None else ")"
    reason = notice.text.rstrip(".")
    if notice.kind == "promoted":
        record.changes.append(f"{row.name}: {trained} promoted by the gate: {reason}.")
    elif notice.kind == "approved":
        record.changes.append(
            f"{row.name}: {trained} approved by the gate; auto-promotion is off, so promote it "
            f"in Training: {reason}."
        )
    elif notice.kind == "rejected":
        record.changes.append(f"{row.name}: {trained} rejected by the gate: {reason}.")
    elif notice.kind == "cancelled":
        record.notes.append(f"{row.name}: job {job.id} was cancelled.")
    elif notice.kind == "failed":
        record.problems.append(f"{row.name}: job {job.id} failed: {reason or 'no reason given'}.")
        return entry
    else:
        record.problems.append(f"{row.name}: the gate could not judge job {job.id}: {reason}.")
        return entry
    record.done += 1
    return entry


async def _verdict_notice(training: TrainingService, job_id: int, mark: int, poll_seconds: float) -> Notice:
    """Wait for the job to finish and the gate to judge it (the service does both)."""
    while True:
        for notice in await training.notices(mark):
            if notice.job_id == job_id and notice.kind in VERDICT_KINDS:
                return notice
        await asyncio.sleep(poll_seconds)


def _unfinished_jobs(engine: Engine) -> dict[str, int]:
    with Session(engine) as s:
        query = select(TrainingJob).where(col(TrainingJob.state).in_([JobState.PENDING, JobState.RUNNING]))
        return {job.model_id: job.id for job in s.exec(query) if job.id is not None}


def _decision_for(engine: Engine, model_id: str, job_id: int) -> dict[str, Any] | None:
    records = [r for r in decision_history(engine, model_id) if r.job_id == job_id]
    if not records:
        return None
    last = records[-1]
    return {"id": last.id, "policy": last.policy, "approved": last.promote, **(last.numbers or {})}
