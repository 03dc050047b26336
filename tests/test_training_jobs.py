"""Training jobs run a real trainer process, report progress, and always end in a clear state."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from sqlalchemy import Engine

from nexus_desktop.db.store import Store
from nexus_desktop.training.hyperparams import default_hyperparameters
from nexus_desktop.training.jobs import CLOSED_WHILE_TRAINING, JobManager, JobState
from nexus_desktop.training.tables import TrainingJob

# A stand-in for training.train: a real process speaking the trainer's JSON-lines protocol.
FAKE_TRAINER = r"""
import json, os, signal, subprocess, sys, time
from pathlib import Path

job = json.load(open(sys.argv[-1]))
hp = job["hyperparameters"]
mode, delay, total = hp.get("fake_mode", "ok"), hp.get("fake_step_seconds", 0.0), hp["max_steps"]
out = Path(job["output_dir"]); out.mkdir(parents=True, exist_ok=True)

def emit(**event):
    print(json.dumps(event), flush=True)

if mode == "slow":
    # A grandchild, like a dataloader worker: cancelling must kill it too.
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    (out / "child.pid").write_text(str(child.pid))
print("loading the base model", file=sys.stderr, flush=True)
emit(event="started", device="cpu", backend="fake", total_steps=total, trainable_params=2440000, examples=8)
for step in range(1, total + 1):
    time.sleep(delay)
    emit(event="step", step=step, total=total, loss=round(3.0 / step, 4), lr=0.001, tokens=512,
         seconds=delay, tokens_per_second=1000.0, rss_mb=100.0, gpu_mem_mb=0)
    if step % hp["checkpoint_every"] == 0:
        path = out / f"checkpoint-{step}"; path.mkdir(exist_ok=True)
        emit(event="checkpoint", step=step, path=str(path))
    if mode == "sigkill" and step == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    if mode == "error" and step == 2:
        emit(event="error", kind="oom", message="CPU RAM ran out at batch size 8; lower the batch size.")
        sys.exit(1)
    if mode == "crash" and step == 2:
        print("RuntimeError: something inside the trainer broke", file=sys.stderr, flush=True)
        sys.exit(3)
emit(event="eval", step=total, eval_loss=0.5)
adapter = out / "adapter.gguf"; adapter.write_bytes(b"GGUF")
emit(event="exported", gguf_adapter=str(adapter))
emit(event="verified", top1_agreement=0.96, prompts=20)
emit(event="done", adapter_dir=str(out / "adapter"), gguf_adapter=str(adapter),
     best_loss=3.0 / total, steps=total)
"""


def write_fake_trainer(folder: Path) -> Path:
    script = folder / "fake_trainer.py"
    script.write_text(FAKE_TRAINER, encoding="utf-8")
    return script


def fake_python(folder: Path) -> Path:
    """An executable that behaves like ``<trainer python> -m training.train JOB.json``."""
    script = write_fake_trainer(folder)
    wrapper = folder / "trainer-python"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{script}" "$3"\n', encoding="utf-8")
    wrapper.chmod(0o755)
    return wrapper


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    store = Store(tmp_path / "nexus.db")
    yield store.engine
    store.close()


@pytest.fixture
def manager(engine: Engine, tmp_path: Path) -> Iterator[JobManager]:
    script = write_fake_trainer(tmp_path)
    jobs = JobManager(engine, trainer_command=[sys.executable, str(script)], jobs_dir=tmp_path / "jobs")
    yield jobs
    jobs.close()


def params(mode: str = "ok", steps: int = 10, delay: float = 0.0) -> dict[str, Any]:
    return {
        **default_hyperparameters(135_000_000),
        "max_steps": steps,
        "checkpoint_every": 2,
        "fake_mode": mode,
        "fake_step_seconds": delay,
    }


def submit(manager: JobManager, tmp_path: Path, **kwargs: Any) -> int:
    dataset = tmp_path / "train.jsonl"
    dataset.write_text('{"messages": []}\n', encoding="utf-8")
    job = manager.submit("router", tmp_path / "base.gguf", dataset, params(**kwargs))
    assert job.id is not None
    return job.id


def wait_for(predicate: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_finished_job_is_done_with_its_loss_curve_and_adapter(manager: JobManager, tmp_path: Path) -> None:
    job_id = submit(manager, tmp_path, steps=10)
    job = manager.wait(job_id, timeout=120)
    assert job.state == JobState.DONE, job.error
    assert (job.step, job.total, job.progress) == (10, 10, 1.0)
    assert job.best_loss == pytest.approx(0.3)
    assert job.eval_loss == 0.5
    assert job.device == "cpu"
    assert job.gguf_adapter is not None and job.gguf_adapter.endswith("adapter.gguf")
    assert job.checkpoint is not None and job.checkpoint.endswith("checkpoint-10")
    assert job.verified == {"top1_agreement": 0.96, "prompts": 20}
    curve = manager.loss_curve(job_id)
    assert [p.step for p in curve] == list(range(1, 11))
    assert curve[0].loss == 3.0
    assert [p.step for p in manager.loss_curve(job_id, after_step=8)] == [9, 10]
    spec = json.loads((Path(job.job_dir) / "job.json").read_text())
    assert spec["job_id"] == job_id and spec["export_gguf"] is True
    assert set(spec["hyperparameters"]) >= {
        "lora_r",
        "lora_alpha",
        "learning_rate",
        "max_steps",
        "batch_size",
    }


def test_jobs_run_one_at_a_time_in_order(manager: JobManager, tmp_path: Path) -> None:
    first = submit(manager, tmp_path, steps=20, delay=0.05)
    second = submit(manager, tmp_path, steps=3)
    assert manager.get(second).state == JobState.PENDING
    assert manager.wait(second, timeout=120).state == JobState.DONE
    first_job, second_job = manager.get(first), manager.get(second)
    assert first_job.state == JobState.DONE
    assert first_job.finished_at is not None and second_job.started_at is not None
    assert first_job.finished_at <= second_job.started_at


def test_cancel_kills_the_whole_trainer_tree_and_keeps_the_checkpoint(
    manager: JobManager, tmp_path: Path
) -> None:
    job_id = submit(manager, tmp_path, mode="slow", steps=1000, delay=0.05)
    wait_for(lambda: manager.get(job_id).checkpoint is not None)
    job = manager.get(job_id)
    trainer = psutil.Process(job.pid)
    # The trainer runs inside its sandbox: its pids there are not ours, so collect the tree as
    # this process sees it (the sandbox, the trainer, and the program the trainer started).
    assert (Path(job.job_dir) / "output" / "child.pid").exists()
    family = trainer.children(recursive=True)
    assert any("time.sleep(600)" in " ".join(member.cmdline()) for member in family), family
    manager.cancel(job_id)
    job = manager.wait(job_id, timeout=60)
    assert job.state == JobState.CANCELLED
    assert not trainer.is_running() or trainer.status() == psutil.STATUS_ZOMBIE

    def gone(member: psutil.Process) -> bool:
        return not member.is_running() or member.status() == psutil.STATUS_ZOMBIE

    wait_for(lambda: all(gone(member) for member in family))
    assert job.checkpoint is not None and Path(job.checkpoint).is_dir()


def test_cancelling_a_queued_job_means_it_never_starts(manager: JobManager, tmp_path: Path) -> None:
    running = submit(manager, tmp_path, steps=1000, delay=0.05)
    queued = submit(manager, tmp_path, steps=3)
    assert manager.cancel(queued).state == JobState.CANCELLED
    manager.cancel(running)
    assert manager.wait(running, timeout=60).state == JobState.CANCELLED
    assert manager.get(queued).pid is None


def test_a_trainer_killed_by_a_signal_fails_with_the_signal_named(
    manager: JobManager, tmp_path: Path
) -> None:
    job = manager.wait(submit(manager, tmp_path, mode="sigkill"), timeout=120)
    assert job.state == JobState.FAILED
    assert "SIGKILL" in job.error and "out of memory" in job.error
    assert job.checkpoint is not None  # what was saved before the kill is still named


def test_a_trainer_error_event_becomes_the_failure_in_words(manager: JobManager, tmp_path: Path) -> None:
    job = manager.wait(submit(manager, tmp_path, mode="error"), timeout=120)
    assert job.state == JobState.FAILED
    assert job.error == "Training ran out of memory: CPU RAM ran out at batch size 8; lower the batch size."


def test_a_crashing_trainer_fails_with_its_exit_status_and_last_words(
    manager: JobManager, tmp_path: Path
) -> None:
    job = manager.wait(submit(manager, tmp_path, mode="crash"), timeout=120)
    assert job.state == JobState.FAILED
    assert "exited with code 3" in job.error and "something inside the trainer broke" in job.error


def test_a_missing_trainer_fails_the_job_instead_of_leaving_it_queued(engine: Engine, tmp_path: Path) -> None:
    jobs = JobManager(engine, trainer_command=[str(tmp_path / "no-such-python")], jobs_dir=tmp_path / "jobs")
    job = jobs.get(submit(jobs, tmp_path))
    assert job.state == JobState.FAILED
    assert "could not start" in job.error


def test_after_a_restart_a_job_whose_trainer_is_gone_fails_with_an_explanation(
    engine: Engine, tmp_path: Path
) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    from sqlmodel import Session

    with Session(engine) as s:
        s.add(
            TrainingJob(
                model_id="router", state=JobState.RUNNING, job_dir=str(tmp_path), log_path="", pid=gone.pid
            )
        )
        s.commit()
    jobs = JobManager(engine, trainer_command=[sys.executable, "-c", "pass"], jobs_dir=tmp_path / "jobs")
    [job] = jobs.list_jobs()
    assert job.state == JobState.FAILED
    assert job.error == CLOSED_WHILE_TRAINING


def test_after_a_restart_a_trainer_that_still_runs_is_reattached_and_finishes(
    engine: Engine, tmp_path: Path
) -> None:
    # The first NEXUS started a trainer and vanished without closing anything.
    script = write_fake_trainer(tmp_path)
    first = JobManager(engine, trainer_command=[sys.executable, str(script)], jobs_dir=tmp_path / "jobs")
    job_id = submit(first, tmp_path, steps=40, delay=0.05)
    wait_for(lambda: first.get(job_id).step >= 2)
    first.close(stop_training=False)

    second = JobManager(engine, trainer_command=[sys.executable, str(script)], jobs_dir=tmp_path / "jobs")
    assert second.running_job_id == job_id
    job = second.wait(job_id, timeout=120)
    assert job.state == JobState.DONE
    assert [p.step for p in second.loss_curve(job_id)] == list(range(1, 41))
    second.close()


def test_closing_nexus_stops_the_trainer_and_says_so(engine: Engine, tmp_path: Path) -> None:
    script = write_fake_trainer(tmp_path)
    jobs = JobManager(engine, trainer_command=[sys.executable, str(script)], jobs_dir=tmp_path / "jobs")
    job_id = submit(jobs, tmp_path, steps=1000, delay=0.05)
    wait_for(lambda: jobs.get(job_id).step >= 1)
    pid = jobs.get(job_id).pid
    jobs.close()
    job = jobs.get(job_id)
    assert job.state == JobState.FAILED and job.error == CLOSED_WHILE_TRAINING
    assert pid is not None and (
        not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    )


def test_hyperparameters_shrink_the_learning_rate_and_grow_the_rank_with_model_size() -> None:
    small = default_hyperparameters(135_000_000)
    large = default_hyperparameters(7_000_000_000)
    assert (small["lora_r"], small["learning_rate"], small["batch_size"], small["max_steps"]) == (
        8,
        1e-3,
        8,
        100,
    )
    assert small["max_seq_len"] == 256
    assert large["lora_r"] == 16 and large["learning_rate"] < small["learning_rate"]
    assert large["gradient_accumulation_steps"] > 1
    assert default_hyperparameters(135_000_000, task_is_classifier=True)["max_seq_len"] == 128


def test_a_cancel_from_the_command_line_stops_a_job_the_window_runs(
    manager: JobManager, tmp_path: Path
) -> None:
    job_id = submit(manager, tmp_path, steps=1000, delay=0.05)
    wait_for(lambda: manager.get(job_id).step >= 1)
    command_line = JobManager(manager.engine, recover=False, jobs_dir=tmp_path / "jobs")
    assert command_line.cancel(job_id).state == JobState.CANCELLED
    wait_for(lambda: manager.running_job_id is None)
    assert manager.get(job_id).state == JobState.CANCELLED  # the window's watcher did not overwrite it
