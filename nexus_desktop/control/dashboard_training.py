"""The Training dashboard's data: the loss curves of the most recent jobs, read without Qt.

Only the steps after the last one read come back each time (the last one again: an eval loss may
be added to a step already read), and a finished job's curve is read once; a job whose curve did
not move keeps its ``JobCurve`` object, so the window redraws only the jobs that moved.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from sqlalchemy import Engine

from nexus_desktop.control.dashboard_data import parse_time
from nexus_desktop.control.dashboard_series import Floats
from nexus_desktop.control.metrics import read_rows


@dataclass(frozen=True)
class JobCurve:
    id: int
    model_id: str
    state: str
    step: int
    total: int
    loss: float | None
    best_loss: float | None
    created_at: datetime
    steps: Floats
    losses: Floats
    eval_steps: Floats
    eval_losses: Floats


@dataclass(frozen=True)
class TrainingSnapshot:
    version: int
    jobs: tuple[JobCurve, ...]
    """Newest first."""


_JOBS = (
    "SELECT id, model_id, state, step, total, loss, best_loss, created_at FROM training_job "
    "ORDER BY id DESC LIMIT :limit"
)
_STEPS = "SELECT step, loss, eval_loss FROM training_step WHERE job_id = :job AND step > :after ORDER BY step"


@dataclass(frozen=True)
class _Job:
    id: int
    model_id: str
    state: str
    step: int
    total: int
    loss: float | None
    best_loss: float | None
    created_at: str | None


class TrainingReader:
    """The loss curves of the ``jobs`` most recent jobs; a finished job's curve is read once."""

    def __init__(self, engine: Engine, *, jobs: int = 6) -> None:
        self.engine = engine
        self.jobs = jobs
        self._points: dict[int, dict[int, tuple[float | None, float | None]]] = {}
        self._done: set[int] = set()
        self._snapshot = TrainingSnapshot(0, ())

    def read(self) -> TrainingSnapshot:
        from nexus_desktop.training.trainer_process import FINISHED

        jobs = [_Job(*row) for row in read_rows(self.engine, _JOBS, {"limit": self.jobs})]
        grown: set[int] = set()
        for job in jobs:
            if job.id in self._done:
                continue
            points = self._points.setdefault(job.id, {})
            # The last step again: an eval loss may be added to a step already read.
            after = max(points) - 1 if points else -1
            for step, loss, eval_loss in read_rows(self.engine, _STEPS, {"job": job.id, "after": after}):
                if points.get(step) != (loss, eval_loss):
                    points[step] = (loss, eval_loss)
                    grown.add(job.id)
            if job.state in FINISHED:
                self._done.add(job.id)
        for stale in set(self._points) - {job.id for job in jobs}:
            self._points.pop(stale)
            self._done.discard(stale)
        # A job whose curve and figures are as before keeps its JobCurve (and its arrays): the
        # window redraws only the jobs that moved.
        before = {curve.id: curve for curve in self._snapshot.jobs}
        curves = []
        for job in jobs:
            old = before.get(job.id)
            figures = (job.state, job.step, job.total, job.loss, job.best_loss)
            same = old is not None and (old.state, old.step, old.total, old.loss, old.best_loss) == figures
            curves.append(old if same and job.id not in grown and old is not None else self._curve(job))
        if [id(c) for c in curves] != [id(c) for c in self._snapshot.jobs]:
            self._snapshot = TrainingSnapshot(self._snapshot.version + 1, tuple(curves))
        return self._snapshot

    def _curve(self, job: _Job) -> JobCurve:
        points = sorted(self._points.get(job.id, {}).items())
        steps, losses = _arrays([(step, loss) for step, (loss, _) in points if loss is not None])
        eval_steps, eval_losses = _arrays([(step, value) for step, (_, value) in points if value is not None])
        return JobCurve(
            id=job.id,
            model_id=job.model_id,
            state=job.state,
            step=job.step,
            total=job.total,
            loss=job.loss,
            best_loss=job.best_loss,
            created_at=parse_time(job.created_at) or datetime.now(UTC),
            steps=steps,
            losses=losses,
            eval_steps=eval_steps,
            eval_losses=eval_losses,
        )


def _arrays(pairs: list[tuple[int, float]]) -> tuple[Floats, Floats]:
    table = np.array(pairs, dtype=np.float64).reshape(-1, 2)
    return table[:, 0].copy(), table[:, 1].copy()
