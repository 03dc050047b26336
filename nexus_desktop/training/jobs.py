"""The training orchestrator: persisted jobs, one trainer subprocess at a time.

The trainer (``python -m training.train JOB.json``, in its own virtual environment) writes one JSON
event per line.  Its stdout goes straight to ``events.jsonl`` in the job folder and a watcher
thread tails that file, so the event loop never waits on a pipe, and a trainer that outlives a
crashed NEXUS can be re-attached on the next start, or decided from that file once it has exited.
Jobs go PENDING -> RUNNING -> DONE, FAILED or CANCELLED; a job is never left RUNNING without a live
trainer, and a decision is never overwritten (several NEXUS processes may share the database).
"""

from __future__ import annotations

import json
import logging
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, col, select

from nexus_desktop import paths
from nexus_desktop.children.launch import exit_code, launch
from nexus_desktop.db.tables import utcnow
from nexus_desktop.training.tables import TrainingJob, TrainingStep
from nexus_desktop.training.trainer_process import (
    CLOSED_WHILE_TRAINING,
    ERROR_KINDS,
    FINISHED,
    TRAINER_PYTHON_ENV,
    JobState,
    Outcome,
    default_trainer_command,
    describe_exit,
    kill_tree,
    live_process,
    number,
    repo_root,
    trainer_environment,
    trainer_profile,
    verdict,
)

log = logging.getLogger(__name__)

__all__ = [
    "CLOSED_WHILE_TRAINING",
    "ERROR_KINDS",
    "FINISHED",
    "TRAINER_PYTHON_ENV",
    "JobError",
    "JobManager",
    "JobState",
    "default_trainer_command",
    "describe_exit",
    "repo_root",
]

_POLL_SECONDS = 0.1


class JobError(LookupError):
    """A job that does not exist or cannot do what was asked; str() says why."""


@dataclass
class _Running:
    job_id: int
    process: psutil.Process
    popen: subprocess.Popen[bytes] | None
    """None for a trainer re-attached after a restart (not our child: no exit status)."""
    cancel_requested: bool = False
    detached: bool = False
    """NEXUS is closing but the trainer keeps going: stop watching, decide nothing."""
    thread: threading.Thread | None = None


class JobManager:
    """Queue, run, watch, cancel and recover training jobs.  Thread-safe; every method is short."""

    def __init__(
        self,
        engine: Engine,
        *,
        trainer_command: list[str] | None = None,
        jobs_dir: Path | None = None,
        on_change: Callable[[int], None] | None = None,
        recover: bool = True,
    ) -> None:
        self.engine = engine
        self.trainer_command = trainer_command or default_trainer_command()
        self.jobs_dir = jobs_dir or paths.data_dir() / "training" / "jobs"
        self.on_change = on_change
        self._lock = threading.RLock()
        self._running: _Running | None = None
        self._closed = False
        self._held = False
        self.decided: list[int] = []
        """The jobs this manager decided, in order (the CLI gates the DONE ones)."""
        if recover:
            self.recover()

    # Queries (what the UI polls) -----------------------------------------------------------

    def get(self, job_id: int) -> TrainingJob:
        with Session(self.engine) as s:
            job = s.get(TrainingJob, job_id)
        if job is None:
            raise JobError(f"Training job {job_id} does not exist; list jobs with: nexus train jobs")
        return job

    def list_jobs(self, model_id: str | None = None) -> list[TrainingJob]:
        with Session(self.engine) as s:
            query = select(TrainingJob)
            if model_id is not None:
                query = query.where(TrainingJob.model_id == model_id)
            return list(s.exec(query.order_by(col(TrainingJob.id).desc())))

    def loss_curve(self, job_id: int, after_step: int = -1) -> list[TrainingStep]:
        """Points of the loss curve after ``after_step``, so a poller fetches only what is new."""
        with Session(self.engine) as s:
            query = select(TrainingStep).where(TrainingStep.job_id == job_id, TrainingStep.step > after_step)
            return list(s.exec(query.order_by(col(TrainingStep.step))))

    @property
    def running_job_id(self) -> int | None:
        running = self._running
        return running.job_id if running else None

    # Commands ------------------------------------------------------------------------------------

    def submit(
        self,
        model_id: str,
        base_model: Path,
        dataset: Path,
        hyperparameters: dict[str, Any],
        *,
        eval_dataset: Path | None = None,
        device: str = "auto",
        export_gguf: bool = True,
        verify: bool = True,
    ) -> TrainingJob:
        """Queue a job; it starts at once when no other job is running."""
        with Session(self.engine, expire_on_commit=False) as s:
            job = TrainingJob(model_id=model_id, state=JobState.PENDING, job_dir="", log_path="")
            s.add(job)
            s.flush()
            job_dir = self.jobs_dir / f"{job.id:05d}-{model_id}"
            job_dir.mkdir(parents=True, exist_ok=True)
            job.job_dir, job.log_path = str(job_dir), str(job_dir / "trainer.log")
            job.total = int(hyperparameters.get("max_steps", 0))
            spec = {
                "job_id": job.id,
                "base_model": str(base_model),
                "dataset": str(dataset),
                "eval_dataset": str(eval_dataset) if eval_dataset else None,
                "output_dir": str(job_dir / "output"),
                "hyperparameters": hyperparameters,
                "device": device,
                "export_gguf": export_gguf,
                "verify": verify,
                "hf_cache_dir": str(paths.data_dir() / "training" / "hf-cache"),
            }
            (job_dir / "job.json").write_text(json.dumps(spec, indent=2), encoding="utf-8")
            s.add(job)
            s.commit()
        assert job.id is not None
        self._changed(job.id)
        self._start_next()
        return self.get(job.id)

    def cancel(self, job_id: int) -> TrainingJob:
        """Stop a job: a queued one never starts, a running one's process tree is killed (its last
        checkpoint stays on disk)."""
        with self._lock:
            running = self._running
            if running is not None and running.job_id == job_id:
                running.cancel_requested = True
                kill_tree(running.process)
                return self.get(job_id)
            job = self.get(job_id)
            if job.state == JobState.PENDING:
                self._finish(job_id, JobState.CANCELLED, "")
            elif job.state == JobState.RUNNING and self._finish(job_id, JobState.CANCELLED, ""):
                # Another NEXUS process (the window, while this is the CLI) runs it.  Decided before
                # the kill, so that process's watcher does not take the kill for a crash; a job that
                # finished in the meantime keeps its result (and is not killed).
                process = live_process(job.pid, job.pid_started)
                if process is not None:
                    kill_tree(process)
        return self.get(job_id)

    def hold(self, held: bool) -> int | None:
        """Game mode: hold queued jobs and suspend the running trainer's processes (``held``), or
        let them go on.  Returns the running job's id, if any."""
        with self._lock:
            self._held = held
            running = self._running
            if running is not None:
                try:
                    family = [running.process, *running.process.children(recursive=True)]
                except psutil.Error:
                    family = [running.process]
                for member in family:
                    try:
                        member.suspend() if held else member.resume()
                    except psutil.Error:
                        pass  # it ended meanwhile
        if not held:
            self._start_next()
        return running.job_id if running is not None else None

    def wait(self, job_id: int, timeout: float = 3600.0) -> TrainingJob:
        deadline = time.monotonic() + timeout
        while True:
            job = self.get(job_id)
            if job.state in FINISHED or time.monotonic() > deadline:
                return job
            time.sleep(0.1)

    def recover(self) -> list[TrainingJob]:
        """After a start: settle jobs whose trainer has exited, re-attach one that still runs and
        start the queue.  Returns the jobs it settled."""
        settled = self.settle()
        for job in self._running_jobs():
            assert job.id is not None
            process = live_process(job.pid, job.pid_started)
            if process is not None and self._running is None:
                log.info("Re-attaching training job %s (pid %s)", job.id, job.pid)
                self._watch(_Running(job.id, process, None))
        self._start_next()
        return settled

    def settle(self) -> list[TrainingJob]:
        """Decide every RUNNING job whose trainer has exited while no NEXUS watched it (NEXUS was
        killed; the trainer, in its own session, went on) from the events it left: a trainer that
        reported ``done`` makes the job DONE as if it had been watched.  Cheap (one query, a file
        read per exited trainer) and safe from any process at any time: it starts and attaches
        nothing, a job whose trainer still runs stays RUNNING, and of two processes settling the
        same job only one decides it.  Returns the jobs this call decided."""
        settled = []
        with self._lock:  # not between _start_next's RUNNING row and its watcher
            for job in self._running_jobs():
                assert job.id is not None
                if job.id == self.running_job_id or live_process(job.pid, job.pid_started) is not None:
                    continue  # watched here (its exit status will tell more), or still training
                outcome = Outcome()
                for line in _read_events(job.job_dir):
                    self._apply(job.id, line, outcome, notify=False)
                checkpoint = self.get(job.id).checkpoint
                state, error = verdict(False, outcome, None, Path(job.log_path), checkpoint)
                if self._finish(job.id, state, error):
                    settled.append(self.get(job.id))
        return settled

    def _running_jobs(self) -> list[TrainingJob]:
        with Session(self.engine) as s:
            return list(s.exec(select(TrainingJob).where(TrainingJob.state == JobState.RUNNING)))

    def close(self, *, stop_training: bool = True) -> None:
        """Stop watching; with ``stop_training`` the trainer this manager started is killed and its
        job FAILED, otherwise it keeps training and the next start re-attaches it."""
        with self._lock:
            self._closed = True
            running = self._running
        if running is None:
            return
        if not stop_training or running.popen is None:
            # A re-attached trainer was started by another NEXUS process: leave it to that one.
            running.detached = True
            if running.thread is not None:
                running.thread.join(timeout=10)
            return
        running.cancel_requested = True
        kill_tree(running.process)
        if running.thread is not None:
            running.thread.join(timeout=10)
        self._finish(running.job_id, JobState.FAILED, CLOSED_WHILE_TRAINING)

    # Running -------------------------------------------------------------------------------------

    def _start_next(self) -> None:
        with self._lock:
            if self._running is not None or self._closed or self._held:
                return
            with Session(self.engine) as s:
                query = select(TrainingJob).where(TrainingJob.state == JobState.PENDING)
                job = s.exec(query.order_by(col(TrainingJob.id))).first()
            if job is None:
                return
            assert job.id is not None
            job_dir = Path(job.job_dir)
            spec = json.loads((job_dir / "job.json").read_text(encoding="utf-8"))
            command = [*self.trainer_command, str(job_dir / "job.json")]
            try:
                with (job_dir / "events.jsonl").open("wb") as events, Path(job.log_path).open("wb") as errors:
                    # Its own session (launch): a terminal's Ctrl+C or a crash of NEXUS does not kill it.
                    popen = launch(
                        command,
                        trainer_profile(command, spec, job_dir),
                        env=trainer_environment(job_dir),
                        cwd=job_dir,
                        stdin=subprocess.DEVNULL,
                        stdout=events,
                        stderr=errors,
                    )
            except OSError as error:
                self._finish(
                    job.id,
                    JobState.FAILED,
                    f"The trainer could not start ({error}); check the trainer setting.",
                )
                self._start_next()
                return
            process = psutil.Process(popen.pid)
            self._update(
                job.id,
                state=JobState.RUNNING,
                pid=popen.pid,
                pid_started=process.create_time(),
                started_at=utcnow(),
            )
            self._watch(_Running(job.id, process, popen))

    def _watch(self, running: _Running) -> None:
        self._running = running
        running.thread = threading.Thread(
            target=self._follow, args=(running,), name=f"nexus-train-{running.job_id}", daemon=True
        )
        running.thread.start()

    def _follow(self, running: _Running) -> None:
        job = self.get(running.job_id)
        outcome = Outcome()
        try:
            self._tail(running, Path(job.job_dir) / "events.jsonl", outcome)
            if running.detached:
                with self._lock:
                    self._running = None
                return
            if running.popen is not None:
                running.popen.wait()
            returncode = exit_code(running.popen) if running.popen is not None else None
            checkpoint = self.get(running.job_id).checkpoint
            state, error = verdict(
                running.cancel_requested, outcome, returncode, Path(job.log_path), checkpoint
            )
        except Exception as problem:  # the watcher must never leave a job RUNNING
            log.exception("Watching training job %s failed", running.job_id)
            kill_tree(running.process)
            state, error = JobState.FAILED, f"NEXUS lost track of the trainer ({problem}); start it again."
        with self._lock:
            # close() decides a trainer it killed; anyone else's decision (a cancel from the CLI, a
            # settle) is kept by _finish.
            if not (self._closed and running.cancel_requested):
                self._finish(running.job_id, state, error)
            self._running = None
        self._start_next()

    def _tail(self, running: _Running, events_path: Path, outcome: Outcome) -> None:
        with events_path.open("rb") as events:
            partial = b""
            while True:
                line = events.readline()
                if line.endswith(b"\n"):
                    self._apply(running.job_id, partial + line, outcome)
                    partial = b""
                    continue
                partial += line
                if running.detached:
                    return
                if not _alive(running):
                    rest = events.read()
                    for last in (partial + rest).splitlines():
                        self._apply(running.job_id, last, outcome)
                    return
                time.sleep(_POLL_SECONDS)

    def _apply(self, job_id: int, raw: bytes, outcome: Outcome, *, notify: bool = True) -> None:
        try:
            event = json.loads(raw)
        except ValueError:
            log.info("[trainer %s] %s", job_id, raw[:300].decode("utf-8", "replace").rstrip())
            return
        stored = isinstance(event, dict) and _retrying(lambda: self._store_event(job_id, event, outcome))
        if stored and notify:
            self._changed(job_id)

    def _store_event(self, job_id: int, event: dict[str, Any], outcome: Outcome) -> bool:
        kind = event.get("event")
        with Session(self.engine, expire_on_commit=False) as s:
            job = s.get(TrainingJob, job_id)
            if job is None:
                return False
            if kind == "started":
                job.device = str(event.get("device", ""))
                job.total = int(event.get("total_steps") or job.total)
            elif kind == "step":
                step, loss = int(event.get("step", 0)), number(event.get("loss"))
                job.step, job.loss = step, loss
                job.total = int(event.get("total") or job.total)
                if loss is not None and (job.best_loss is None or loss < job.best_loss):
                    job.best_loss = loss
                job.progress = min(1.0, step / job.total) if job.total else 0.0
                point = s.exec(
                    select(TrainingStep).where(TrainingStep.job_id == job_id, TrainingStep.step == step)
                ).first()
                point = point or TrainingStep(job_id=job_id, step=step)
                point.loss, point.lr = loss, number(event.get("lr"))
                point.tokens_per_second = number(event.get("tokens_per_second"))
                s.add(point)
            elif kind == "eval":
                step, eval_loss = int(event.get("step", 0)), number(event.get("eval_loss"))
                job.eval_loss = eval_loss
                point = s.exec(
                    select(TrainingStep).where(TrainingStep.job_id == job_id, TrainingStep.step == step)
                ).first()
                point = point or TrainingStep(job_id=job_id, step=step)
                point.eval_loss = eval_loss
                s.add(point)
            elif kind == "checkpoint":
                job.checkpoint = str(event.get("path", ""))
            elif kind == "exported":
                job.gguf_adapter = str(event.get("gguf_adapter", ""))
            elif kind == "verified":
                job.verified = {k: v for k, v in event.items() if k != "event"}
            elif kind == "done":
                outcome.done = True
                job.adapter_dir = event.get("adapter_dir") or job.adapter_dir
                job.gguf_adapter = event.get("gguf_adapter") or job.gguf_adapter
                # The curve's own minimum unless the trainer saw a lower one (e.g. between reports).
                reported = [v for v in (number(event.get("best_loss")), job.best_loss) if v is not None]
                job.best_loss = min(reported) if reported else None
                job.progress = 1.0
            elif kind == "error":
                outcome.error = (str(event.get("kind", "internal")), str(event.get("message", "")))
            else:
                return False
            s.add(job)
            s.commit()
        return True

    # Persistence -------------------------------------------------------------------------------

    def _update(self, job_id: int, **values: Any) -> None:
        def write() -> bool:
            with Session(self.engine) as s:
                job = s.get(TrainingJob, job_id)
                if job is None:
                    return False
                for key, value in values.items():
                    setattr(job, key, value)
                s.add(job)
                s.commit()
            return True

        if _retrying(write):
            self._changed(job_id)

    def _finish(self, job_id: int, state: JobState, error: str) -> bool:
        """Decide a job unless it is decided already, here or by another NEXUS process (one
        transaction: BEGIN IMMEDIATE makes the check and the write atomic).  True when this call
        decided it."""

        def write() -> bool:
            with Session(self.engine) as s:
                job = s.get(TrainingJob, job_id)
                if job is None or job.state in FINISHED:
                    return False
                job.state, job.error, job.finished_at = state, error, utcnow()
                s.add(job)
                s.commit()
            return True

        if not _retrying(write):
            return False
        self.decided.append(job_id)
        self._changed(job_id)
        return True

    def _changed(self, job_id: int) -> None:
        if self.on_change is not None:
            try:
                self.on_change(job_id)
            except Exception:
                log.exception("A training job listener failed")


def _retrying(write: Callable[[], bool], attempts: int = 50) -> bool:
    """Run a read-then-write transaction again when another connection committed in between
    (SQLite's WAL answers that with "database is locked" at once, without waiting)."""
    for attempt in range(attempts):
        try:
            return write()
        except OperationalError as error:
            if "locked" not in str(error) or attempt == attempts - 1:
                raise
            time.sleep(0.02 * (attempt + 1))
    return False


def _read_events(job_dir: str) -> list[bytes]:
    """The lines of a job's events.jsonl; none when the folder or file is gone."""
    if not job_dir:
        return []
    try:
        return (Path(job_dir) / "events.jsonl").read_bytes().splitlines()
    except OSError:
        return []


def _alive(running: _Running) -> bool:
    if running.popen is not None:
        return running.popen.poll() is None
    try:
        return running.process.is_running() and running.process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
