"""Game mode pauses heavy work: heavy scheduled tasks skip with "paused: game mode" while light
ones run, and a running trainer (a real subprocess) is suspended, the queue held, and both go on
afterwards.  Real SQLite files, real threads and processes."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from sqlalchemy import Engine

from nexus_desktop.control.scheduler import Scheduler, Task
from nexus_desktop.db.engine import open_engine
from nexus_desktop.training.jobs import JobManager, JobState
from tests.test_scheduler import returns, runs
from tests.test_training_jobs import submit, wait_for, write_fake_trainer
from tests.training_support import add_examples, make_service


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = open_engine(tmp_path / "nexus.db")
    yield engine
    engine.dispose()


def test_heavy_tasks_skip_while_paused_and_light_ones_run(engine: Engine) -> None:
    async def scenario() -> None:
        scheduler = Scheduler(engine, tick_seconds=0.05)
        scheduler.add(Task("benchmark", "every 1s", returns("benchmarked"), heavy=True))
        scheduler.add(Task("report", "every 1s", returns("reported")))
        await scheduler.pause("game mode")
        await scheduler.start()
        await asyncio.sleep(2.5)
        await scheduler.resume()
        await asyncio.sleep(2.0)
        await scheduler.aclose()

    asyncio.run(scenario())
    heavy = runs(engine, "benchmark")
    light = runs(engine, "report")
    paused = [run for run in heavy if run.outcome == "skipped"]
    assert paused and all(run.detail == "paused: game mode" for run in paused)
    assert any(run.outcome == "ok" for run in heavy)  # it ran again once resumed
    assert heavy[-1].outcome == "ok" and heavy[-1].detail == "benchmarked"
    assert light and all(run.outcome == "ok" for run in light)  # light work never paused


@pytest.fixture
def manager(engine: Engine, tmp_path: Path) -> Iterator[JobManager]:
    script = write_fake_trainer(tmp_path)
    jobs = JobManager(engine, trainer_command=[sys.executable, str(script)], jobs_dir=tmp_path / "jobs")
    yield jobs
    jobs.close()


def test_a_running_trainer_is_suspended_and_the_queue_held_until_game_mode_ends(
    manager: JobManager, tmp_path: Path
) -> None:
    first = submit(manager, tmp_path, mode="slow", steps=60, delay=0.05)
    wait_for(lambda: manager.get(first).step >= 2)
    trainer = psutil.Process(manager.get(first).pid)

    assert manager.hold(True) == first
    wait_for(lambda: trainer.status() == psutil.STATUS_STOPPED, timeout=5)
    second = submit(manager, tmp_path, steps=2)
    time.sleep(0.5)  # the watcher reads what the trainer wrote before it stopped
    step = manager.get(first).step
    time.sleep(1.0)
    assert manager.get(first).step == step  # no progress while suspended
    assert manager.get(second).state == JobState.PENDING  # held, not started

    assert manager.hold(False) == first
    assert manager.wait(first, timeout=120).state == JobState.DONE
    assert manager.wait(second, timeout=120).state == JobState.DONE


def test_game_mode_pausing_training_says_so_and_the_job_finishes_afterwards(
    engine: Engine, tmp_path: Path
) -> None:
    add_examples(engine, 12)
    service = make_service(engine, tmp_path, steps=40, delay=0.05)

    async def step_of(job_id: int) -> int:
        return (await service.job(job_id)).step

    async def scenario() -> None:
        job = await service.train_now("persona-test")
        while await step_of(job.id) < 2:
            await asyncio.sleep(0.05)
        await service.pause("game mode")
        (notice,) = [n for n in await service.notices() if n.kind == "paused"]
        assert (notice.title, notice.job_id) == ("Training paused: game mode", job.id)
        await asyncio.sleep(0.5)
        held_at = await step_of(job.id)
        await asyncio.sleep(1.0)
        assert await step_of(job.id) == held_at  # suspended: no progress
        await service.resume()
        while not (await service.job(job.id)).finished:
            await asyncio.sleep(0.05)
        assert (await service.job(job.id)).state == "DONE"
        await service.aclose()

    asyncio.run(scenario())
