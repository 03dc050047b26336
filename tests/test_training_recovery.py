"""A `nexus train run` that is killed loses nothing: its trainer (in its own session) goes on, and
the next command decides the job from the events the trainer left and gates a finished adapter.

Real processes throughout: the real CLI in a subprocess, a real trainer process speaking the
trainer's protocol (the fake one of test_training_jobs), a real SQLite file; nothing is mocked.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from nexus_desktop import cli_train, paths
from nexus_desktop.db.engine import open_engine
from nexus_desktop.training.examples import ReplyRated
from nexus_desktop.training.gate import decision_history
from nexus_desktop.training.jobs import CLOSED_WHILE_TRAINING, JobState
from nexus_desktop.training.service import TrainingService
from nexus_desktop.training.tables import TrainingJob, TrainingStep
from nexus_desktop.training.trainer_process import live_process
from tests.test_training_cli import collect
from tests.test_training_jobs import fake_python, wait_for
from tests.test_training_service import _notices, until

SPEC = """
id = "persona-test"
task = "chat_persona"
dataset = "persona:Vega"
base_model = "{base}"
auto_promote = false
train_threshold = 1
signals = ["thumbs_up"]

[gate]
policy = "must_improve"
metric = "eval_loss"

[hyperparameters]
max_steps = {steps}
checkpoint_every = {every}
fake_step_seconds = {delay}
"""


@pytest.fixture
def engine(private_data_dir: Path) -> Iterator[Engine]:
    """The database the CLI processes use (NEXUS_DATA_DIR is this test's own data dir)."""
    engine = open_engine(paths.database_path())
    context = (("system", "You are Vega."), ("user", "Hello?"))
    collect(private_data_dir, ReplyRated("Vega", context, "Bridge is yours, Captain.", thumbs_up=True))
    yield engine
    engine.dispose()


@pytest.fixture
def spawned() -> Iterator[list[psutil.Process]]:
    """What this test started (the CLI, its trainer); any still alive when it ends is killed
    (psutil refuses a pid that was reused meanwhile)."""
    processes: list[psutil.Process] = []
    yield processes
    for process in processes:
        try:
            process.kill()
        except psutil.Error:
            pass


def configure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, steps: int, every: int, delay: float
) -> None:
    """A one-model zoo on a stand-in base model, trained by the fake trainer; set for this process
    (the in-process CLI) and inherited by the `nexus train run` subprocesses."""
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    base = tmp_path / "base.gguf"
    base.write_bytes(b"not a real model")
    (zoo / "persona.toml").write_text(SPEC.format(base=base, steps=steps, every=every, delay=delay))
    monkeypatch.setenv("NEXUS_ZOO_DIR", str(zoo))
    monkeypatch.setenv("NEXUS_TRAINER_PYTHON", str(fake_python(tmp_path)))
    monkeypatch.delenv("NEXUS_DEBUG", raising=False)


def start_train_run(tmp_path: Path, spawned: list[psutil.Process]) -> subprocess.Popen[bytes]:
    with (tmp_path / "run.out").open("wb") as out, (tmp_path / "run.err").open("wb") as err:
        run = subprocess.Popen(
            [sys.executable, "-m", "nexus_desktop.cli_train", "train", "run", "persona-test"],
            stdout=out,
            stderr=err,
            env=dict(os.environ),
        )
    spawned.append(psutil.Process(run.pid))
    return run


def the_job(engine: Engine) -> TrainingJob | None:
    with Session(engine) as s:
        return s.exec(select(TrainingJob)).first()


def running_job(engine: Engine, spawned: list[psutil.Process], *, checkpoint: bool = False) -> TrainingJob:
    """The job once it has trained two steps (and saved a checkpoint, when asked)."""

    def ready() -> bool:
        job = the_job(engine)
        return job is not None and job.step >= 2 and (job.checkpoint is not None or not checkpoint)

    wait_for(ready, timeout=180)
    job = the_job(engine)
    assert job is not None and job.state == JobState.RUNNING and job.pid is not None
    spawned.append(psutil.Process(job.pid))
    return job


def sigkill(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


def trainer_gone(job: TrainingJob) -> bool:
    return live_process(job.pid, job.pid_started) is None


def nexus_train_jobs(capsys: pytest.CaptureFixture[str]) -> list[str]:
    """`nexus train jobs` through the real CLI entry point; the job's row, split into words."""
    capsys.readouterr()
    assert cli_train.main(["train", "jobs"]) == 0
    [row] = capsys.readouterr().out.splitlines()
    return row.split()


def test_a_job_whose_run_was_killed_finishes_and_is_gated_by_the_next_command(
    engine: Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    spawned: list[psutil.Process],
) -> None:
    configure(tmp_path, monkeypatch, steps=30, every=10, delay=0.2)
    run = start_train_run(tmp_path, spawned)
    job = running_job(engine, spawned)
    trainer = psutil.Process(job.pid)
    sigkill(run)  # `nexus train run` dies mid-job; the trainer, in its own session, trains on

    # While the trainer still runs, the job is RUNNING, and listing it judges nothing.
    assert nexus_train_jobs(capsys)[:3] == [str(job.id), "persona-test", "RUNNING"]
    assert trainer.is_running() and trainer.status() != psutil.STATUS_ZOMBIE
    assert decision_history(engine) == []

    wait_for(lambda: trainer_gone(job), timeout=120)
    assert nexus_train_jobs(capsys)[:3] == [str(job.id), "persona-test", "DONE"]
    done = the_job(engine)
    assert done is not None and done.state == JobState.DONE and done.error == ""
    assert done.gguf_adapter is not None and Path(done.gguf_adapter).is_file()
    assert done.verified == {"top1_agreement": 0.96, "prompts": 20}  # the trainer's own export check
    with Session(engine) as s:  # the loss curve has the steps trained after the run was killed
        assert len(s.exec(select(TrainingStep).where(TrainingStep.job_id == job.id)).all()) == 30
    [decision] = decision_history(engine, "persona-test")
    assert decision.job_id == job.id and decision.candidate == done.gguf_adapter
    assert decision.promote and decision.policy == "must_improve"
    assert decision.numbers["candidate"] == {"eval_loss": 0.5}

    # Settling is done once: the next command neither changes the job nor gates it again.
    assert nexus_train_jobs(capsys)[:3] == [str(job.id), "persona-test", "DONE"]
    assert len(decision_history(engine)) == 1


@pytest.mark.parametrize(
    ("run_alive", "checkpoint"),
    [(True, "kept"), (True, "never"), (False, "kept"), (False, "deleted")],
    ids=[
        "run-watching-checkpoint",
        "run-watching-no-checkpoint",
        "run-killed-checkpoint",
        "run-killed-deleted",
    ],
)
def test_a_killed_trainer_fails_the_job_naming_a_checkpoint_only_when_one_is_on_disk(
    engine: Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    spawned: list[psutil.Process],
    run_alive: bool,
    checkpoint: str,
) -> None:
    configure(tmp_path, monkeypatch, steps=1000, every=1000 if checkpoint == "never" else 2, delay=0.1)
    run = start_train_run(tmp_path, spawned)
    job = running_job(engine, spawned, checkpoint=checkpoint != "never")
    if not run_alive:
        sigkill(run)
    assert job.pid is not None
    os.kill(job.pid, signal.SIGKILL)  # the trainer itself dies (the kernel's OOM killer, say)
    wait_for(lambda: trainer_gone(job), timeout=60)
    if run_alive:
        assert run.wait(timeout=60) == 1  # its own watcher decides, with the exit signal
    else:
        if checkpoint == "deleted":
            shutil.rmtree(Path(job.job_dir) / "output")
        assert nexus_train_jobs(capsys)[:3] == [str(job.id), "persona-test", "FAILED"]

    failed = the_job(engine)
    assert failed is not None and failed.state == JobState.FAILED
    if run_alive:
        assert failed.error.startswith("The trainer was killed (SIGKILL")
    else:
        assert failed.error.startswith(CLOSED_WHILE_TRAINING)
    if checkpoint == "kept":
        assert failed.checkpoint is not None and Path(failed.checkpoint).is_dir()
        assert f"The last checkpoint is kept in {failed.checkpoint}." in failed.error
    else:
        assert "checkpoint" not in failed.error, failed.error
    assert decision_history(engine) == []


def test_the_window_opened_after_a_killed_run_gates_the_job_its_trainer_finished(
    engine: Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    spawned: list[psutil.Process],
) -> None:
    configure(tmp_path, monkeypatch, steps=10, every=5, delay=0.1)
    run = start_train_run(tmp_path, spawned)
    job = running_job(engine, spawned)
    sigkill(run)
    wait_for(lambda: trainer_gone(job), timeout=120)

    async def scenario() -> None:
        service = TrainingService(engine, jobs_dir=tmp_path / "jobs", datasets_dir=tmp_path / "datasets")
        try:
            [view] = await service.jobs()
            assert view.state == "DONE" and view.gguf_adapter
            notices = [n.kind for n in await until(lambda: _notices(service, 2), timeout=30)]
            assert notices == ["finished", "approved"]  # the path a job the window watched takes
        finally:
            await service.aclose()

    asyncio.run(scenario())
    [decision] = decision_history(engine, "persona-test")
    assert decision.job_id == job.id and decision.promote
