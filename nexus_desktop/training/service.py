"""The training loop behind one async facade, for the window (and anything else with an event loop).

Every method is ``async`` and does its blocking work (SQLite, files, the zoo specs, starting the
trainer) on the service's own thread pool, so a caller on the Qt thread never waits.  Results are
plain frozen dataclasses: the UI never holds a database row.  When a job finishes, the service
judges it (benchmark, gate, automatic promotion when the spec allows it) on the same pool, and
appends a ``Notice`` that pollers (the tray) pick up with ``notices(after_id)``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import psutil
from sqlalchemy import Engine

from nexus_desktop import paths
from nexus_desktop.training import pipeline
from nexus_desktop.training.datasets import write_dataset_info, write_jsonl
from nexus_desktop.training.gate import decision_history
from nexus_desktop.training.importer import ImportReport, import_file
from nexus_desktop.training.jobs import FINISHED, JobManager, JobState, default_trainer_command
from nexus_desktop.training.registry import AdapterRegistry
from nexus_desktop.training.tables import AdapterEvent, GateDecisionRecord, TrainingJob
from nexus_desktop.training.zoo import ZooSpec, candidate_count, export_records, load_zoo

log = logging.getLogger(__name__)

T = TypeVar("T")
EXPORT_FORMATS = ("alpaca", "sharegpt", "dpo")
Judge = Callable[[Engine, ZooSpec, TrainingJob], Awaitable[Any]]


@dataclass(frozen=True)
class ZooRow:
    model_id: str
    name: str
    task: str
    new_examples: int
    """Collected since the last finished training run: what the threshold is measured against."""
    total_examples: int
    threshold: int
    auto_promote: bool
    active_adapter: str | None
    """The active adapter's file name, or None when the model runs on its base."""
    active_is_override: bool
    active_job_id: int | None = None
    """The training job that made the active adapter (None: base model, or added by hand)."""

    @property
    def ready(self) -> bool:
        return self.new_examples >= self.threshold

    @property
    def active_label(self) -> str:
        """What answers for this model, in words; every job's file is called adapter.gguf."""
        if self.active_adapter is None:
            return "base model"
        label = self.active_adapter if self.active_job_id is None else f"job #{self.active_job_id}'s adapter"
        return label + (" (by hand)" if self.active_is_override else "")


@dataclass(frozen=True)
class JobView:
    id: int
    model_id: str
    state: str
    step: int
    total: int
    progress: float
    loss: float | None
    best_loss: float | None
    eval_loss: float | None
    device: str
    error: str
    gguf_adapter: str | None
    eta_seconds: float | None
    created_at: datetime
    judging: bool = False

    @property
    def finished(self) -> bool:
        return self.state in FINISHED


@dataclass(frozen=True)
class LossPoint:
    step: int
    loss: float | None
    eval_loss: float | None


@dataclass(frozen=True)
class GateView:
    id: int
    model_id: str
    job_id: int | None
    candidate_adapter: str
    policy: str
    parameters: dict[str, Any]
    approved: bool
    reason: str
    candidate: dict[str, float]
    incumbent: dict[str, float] | None
    base: dict[str, float] | None
    at: datetime
    promoted: bool
    """An adapter event points at this decision (the gate promoted it)."""
    override: str = ""
    """The last manual promotion or rollback that involved this job, in words."""
    baseline: dict[str, float] | None = None
    """The lexical (bag-of-words) baseline's scores; None for chat models and older decisions."""


@dataclass(frozen=True)
class Notice:
    id: int
    kind: str
    """finished, failed, cancelled, promoted, rejected or judge_failed."""
    title: str
    text: str
    job_id: int | None = None


@dataclass
class _Notices:
    items: list[Notice] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, title: str, text: str, job_id: int | None) -> None:
        with self.lock:
            self.items.append(Notice(len(self.items) + 1, kind, title, text, job_id))

    def after(self, notice_id: int) -> list[Notice]:
        with self.lock:
            return self.items[notice_id:]


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _eta(job: TrainingJob) -> float | None:
    started = _aware(job.started_at)
    if job.state != JobState.RUNNING or started is None or job.step <= 0 or job.total <= 0:
        return None
    elapsed = (datetime.now(UTC) - started).total_seconds()
    return max(0.0, elapsed / job.step * (job.total - job.step))


def tail_lines(path: Path, lines: int) -> list[str]:
    """The last lines of a (possibly large, still growing) log file, read from its end."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - 16_384))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return []
    return text.splitlines()[-lines:]


class TrainingService:
    def __init__(
        self,
        engine: Engine,
        *,
        trainer_python: Callable[[], str] | None = None,
        trainer_command: list[str] | None = None,
        zoo_folder: Path | None = None,
        jobs_dir: Path | None = None,
        datasets_dir: Path | None = None,
        judge: Judge | None = pipeline.judge,
        trainer_niceness: int = 10,
    ) -> None:
        """``trainer_python`` is read at each submit (the setting may change); a fixed
        ``trainer_command`` wins over it (tests use a fake trainer).  ``judge=None`` skips the gate."""
        self.engine = engine
        self._trainer_python = trainer_python
        self._trainer_command = trainer_command
        self._zoo_folder = zoo_folder
        self._jobs_dir = jobs_dir
        self._datasets_dir = datasets_dir or paths.data_dir() / "training" / "datasets"
        self._judge = judge
        self._niceness = trainer_niceness
        self._reniced: set[int] = set()
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="nexus-training")
        # Judging (a benchmark through llama.cpp) can take minutes: it never holds up the queries.
        self._judge_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nexus-gate")
        self._manager: JobManager | None = None
        self._manager_lock = threading.Lock()
        self._judging: set[int] = set()
        self._announced: set[int] = set()
        self._notices = _Notices()
        self.registry = AdapterRegistry(engine)

    # Plumbing ----------------------------------------------------------------------------------

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, partial(fn, *args, **kwargs))

    def _jobs(self) -> JobManager:
        # Created on first use, on the pool: recovering a trainer left running touches the disk.
        with self._manager_lock:
            if self._manager is None:
                self._manager = JobManager(
                    self.engine,
                    trainer_command=self._command(),
                    jobs_dir=self._jobs_dir,
                    on_change=self._on_change,
                )
            return self._manager

    def _command(self) -> list[str]:
        if self._trainer_command is not None:
            return list(self._trainer_command)
        python = self._trainer_python() if self._trainer_python is not None else ""
        return default_trainer_command(python or None)

    def _spec(self, model_id: str) -> ZooSpec:
        zoo = load_zoo(self._zoo_folder)
        if model_id not in zoo:
            raise LookupError(f"There is no model {model_id!r} in the zoo; check resources/zoo.")
        return zoo[model_id]

    # Queries -------------------------------------------------------------------------------------

    async def zoo(self) -> list[ZooRow]:
        return await self._call(self._zoo_rows)

    def _zoo_rows(self) -> list[ZooRow]:
        rows = []
        for spec in load_zoo(self._zoo_folder).values():
            active = self.registry.active(spec.id)
            rows.append(
                ZooRow(
                    model_id=spec.id,
                    name=spec.name,
                    task=spec.task,
                    new_examples=pipeline.new_candidates(self.engine, spec),
                    total_examples=candidate_count(self.engine, spec),
                    threshold=spec.train_threshold,
                    auto_promote=spec.auto_promote,
                    active_adapter=active.adapter_path.name if active else None,
                    active_is_override=bool(active and active.override),
                    active_job_id=active.job_id if active else None,
                )
            )
        return rows

    async def jobs(self, limit: int = 30) -> list[JobView]:
        def jobs() -> list[JobView]:
            manager = self._jobs()
            # A job another NEXUS process left training (a killed `nexus train run`) is decided
            # once its trainer exits; a finished one then reaches _after_change like our own.
            manager.settle()
            return [self._view(job) for job in manager.list_jobs()[:limit]]

        return await self._call(jobs)

    async def job(self, job_id: int) -> JobView:
        return await self._call(lambda: self._view(self._jobs().get(job_id)))

    async def running(self) -> JobView | None:
        """The job training now, if any (what the tray shows)."""

        def find() -> JobView | None:
            manager = self._jobs()
            job_id = manager.running_job_id
            return self._view(manager.get(job_id)) if job_id is not None else None

        return await self._call(find)

    def _view(self, job: TrainingJob) -> JobView:
        assert job.id is not None
        return JobView(
            id=job.id,
            model_id=job.model_id,
            state=str(job.state),
            step=job.step,
            total=job.total,
            progress=job.progress,
            loss=job.loss,
            best_loss=job.best_loss,
            eval_loss=job.eval_loss,
            device=job.device,
            error=job.error,
            gguf_adapter=job.gguf_adapter,
            eta_seconds=_eta(job),
            created_at=_aware(job.created_at) or datetime.now(UTC),
            judging=job.id in self._judging,
        )

    async def loss_curve(self, job_id: int, after_step: int = -1) -> list[LossPoint]:
        """Only the points after ``after_step``: a poller appends what is new."""

        def points() -> list[LossPoint]:
            return [
                LossPoint(p.step, p.loss, p.eval_loss) for p in self._jobs().loss_curve(job_id, after_step)
            ]

        return await self._call(points)

    async def log_tail(self, job_id: int, lines: int = 12) -> list[str]:
        return await self._call(lambda: tail_lines(Path(self._jobs().get(job_id).log_path), lines))

    async def gate_history(self, model_id: str | None = None) -> list[GateView]:
        return await self._call(self._gate_views, model_id)

    def _gate_views(self, model_id: str | None) -> list[GateView]:
        events = self.registry.history(model_id)
        promoted = {event.decision_id for event in events if event.decision_id is not None}
        views = []
        for record in reversed(decision_history(self.engine, model_id)):
            assert record.id is not None
            views.append(self._gate_view(record, record.id in promoted, events))
        return views

    @staticmethod
    def _gate_view(record: GateDecisionRecord, promoted: bool, events: list[AdapterEvent]) -> GateView:
        numbers = record.numbers or {}
        override = ""
        for event in events:
            if not event.override or event.model_id != record.model_id:
                continue
            if event.action == "promote" and event.job_id is not None and event.job_id == record.job_id:
                override = f"Promoted by hand: {event.reason}"
            elif event.action == "rollback" and override:
                override = f"Rolled back by hand: {event.reason}"
        return GateView(
            id=record.id or 0,
            model_id=record.model_id,
            job_id=record.job_id,
            candidate_adapter=record.candidate,
            policy=record.policy,
            parameters=dict(numbers.get("parameters") or {}),
            approved=record.promote,
            reason=record.reason,
            candidate=dict(numbers.get("candidate") or {}),
            incumbent=numbers.get("incumbent"),
            base=numbers.get("base"),
            baseline=numbers.get("baseline"),
            at=_aware(record.at) or datetime.now(UTC),
            promoted=promoted,
            override=override,
        )

    async def notices(self, after_id: int = 0) -> list[Notice]:
        """What happened since notice ``after_id`` (jobs finishing, gate decisions, promotions)."""
        return self._notices.after(after_id)

    # Commands ------------------------------------------------------------------------------------

    async def train_now(
        self, model_id: str, *, max_steps: int | None = None, device: str = "auto"
    ) -> JobView:
        """Write the model's dataset, choose its hyperparameters and queue a job."""

        def submit() -> JobView:
            spec = self._spec(model_id)
            plan = pipeline.prepare(self.engine, spec, self._datasets_dir, device=device)
            if max_steps:
                plan.hyperparameters["max_steps"] = max_steps
            manager = self._jobs()
            manager.trainer_command = self._command()
            job = manager.submit(
                spec.id,
                plan.base_model,
                plan.dataset,
                plan.hyperparameters,
                eval_dataset=plan.eval_dataset,
                device=device,
            )
            return self._view(job)

        return await self._call(submit)

    async def cancel(self, job_id: int) -> JobView:
        return await self._call(lambda: self._view(self._jobs().cancel(job_id)))

    async def promote(self, job_id: int, reason: str = "Promoted by hand.") -> None:
        """Make a finished job's adapter active, whatever the gate said (recorded as an override)."""

        def promote() -> None:
            job = self._jobs().get(job_id)
            if job.state != JobState.DONE or not job.gguf_adapter:
                raise ValueError(
                    f"Job {job_id} has no finished adapter; only a finished job can be promoted."
                )
            spec = self._spec(job.model_id)
            self.registry.promote(
                spec.id, Path(job.gguf_adapter), spec.base_model_path(), reason=reason, job_id=job_id
            )
            self._notices.add(
                "promoted", f"{spec.name} promoted", f"Job {job_id}'s adapter is active.", job_id
            )

        await self._call(promote)

    async def rollback(self, model_id: str, reason: str = "Rolled back by hand.") -> str | None:
        """Go back to the previous adapter; returns the adapter now active (None: the base model)."""

        def rollback() -> str | None:
            self.registry.rollback(model_id, reason=reason)
            active = self.registry.active(model_id)
            return active.adapter_path.name if active else None

        return await self._call(rollback)

    async def export(self, model_id: str, fmt: str, path: Path) -> int:
        """Write the model's dataset as JSONL in ``fmt`` (alpaca, sharegpt or dpo); returns the count."""

        def export() -> int:
            spec = self._spec(model_id)
            count = write_jsonl(export_records(self.engine, spec, fmt), path)
            write_dataset_info(path, fmt, f"nexus_{spec.id}_{fmt}".replace("-", "_"))
            return count

        return await self._call(export)

    async def import_dataset(self, model_id: str, path: Path) -> ImportReport:
        """Add the good rows of a JSONL file (Alpaca, ShareGPT or text/label) as the model's examples."""
        return await self._call(lambda: import_file(self.engine, self._spec(model_id), path))

    async def pause(self, reason: str) -> None:
        """Suspend a running trainer and hold the queue (game mode) until ``resume``."""
        job_id = await self._call(lambda: self._jobs().hold(True))
        if job_id is not None:
            self._notices.add("paused", f"Training paused: {reason}", "It goes on afterwards.", job_id)

    async def resume(self) -> None:
        await self._call(lambda: self._jobs().hold(False))

    async def aclose(self, *, stop_training: bool = True) -> None:
        manager = self._manager
        if manager is not None:
            await self._call(manager.close, stop_training=stop_training)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._judge_pool.shutdown(wait=False, cancel_futures=True)

    # Judging finished jobs -----------------------------------------------------------------------

    def _on_change(self, job_id: int) -> None:
        # Called on the job watcher thread, sometimes under the manager's lock: hand work off at once.
        if job_id in self._announced:
            return
        try:
            self._judge_pool.submit(self._after_change, job_id)
        except RuntimeError:  # the pool is shut down: NEXUS is closing
            pass

    def _after_change(self, job_id: int) -> None:
        # The manager's constructor (holding the lock) recovers jobs and reports them before it is
        # assigned: wait for it, or a job that finished while NEXUS was closed would go unjudged.
        with self._manager_lock:
            manager = self._manager
        if manager is None or job_id in self._announced:
            return
        job = manager.get(job_id)
        if job.state == JobState.RUNNING:
            self._lower_priority(job)
        if job.state not in FINISHED:
            return
        self._announced.add(job_id)
        if job.state == JobState.CANCELLED:
            self._notices.add("cancelled", f"Training {job.model_id} cancelled", "", job_id)
            return
        if job.state == JobState.FAILED:
            self._notices.add("failed", f"Training {job.model_id} failed", job.error, job_id)
            return
        best = f"best loss {job.best_loss:.3f}" if job.best_loss is not None else "no loss reported"
        self._notices.add(
            "finished", f"Training {job.model_id} finished", f"{job.step} steps, {best}.", job_id
        )
        if self._judge is not None:
            self._judging.add(job_id)
            try:
                self._run_judge(job)
            finally:
                self._judging.discard(job_id)

    def _lower_priority(self, job: TrainingJob) -> None:
        """The trainer (and the llama.cpp check it starts later) yields the CPU to the window: on a
        small machine a trainer at normal priority makes the UI stutter."""
        if job.id in self._reniced or not job.pid or os.name != "posix" or not self._niceness:
            return
        assert job.id is not None
        self._reniced.add(job.id)
        try:
            sandbox = psutil.Process(job.pid)  # the trainer runs inside it (children.launch)
            for process in [sandbox, *sandbox.children(recursive=True)]:
                process.nice(max(process.nice(), self._niceness))
        except psutil.Error:
            log.debug("Could not lower the trainer's priority", exc_info=True)

    def _run_judge(self, job: TrainingJob) -> None:
        assert self._judge is not None
        try:
            spec = self._spec(job.model_id)
            verdict = asyncio.run(_coroutine(self._judge(self.engine, spec, job)))
        except Exception as error:
            log.warning("Judging training job %s failed", job.id, exc_info=True)
            self._notices.add("judge_failed", f"{job.model_id}: the gate could not judge", str(error), job.id)
            return
        decision = verdict.decision
        if verdict.promotion is not None:
            self._notices.add("promoted", f"{spec.name} promoted", decision.reason, job.id)
        elif decision.promote:
            self._notices.add("approved", f"{spec.name}: the gate approves", decision.reason, job.id)
        else:
            self._notices.add("rejected", f"{spec.name}: the gate rejects", decision.reason, job.id)


async def _coroutine(awaitable: Awaitable[Any]) -> Any:
    return await awaitable
