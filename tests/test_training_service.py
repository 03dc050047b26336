"""The training facade: zoo counts, a real (fake-trainer) job from queue to gate, and the actions."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from nexus_desktop.db.store import Store
from nexus_desktop.training.service import TrainingService
from tests.training_support import add_examples, make_service


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    store = Store(tmp_path / "nexus.db")
    yield store.engine
    store.close()


async def until(predicate, timeout: float = 120.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def test_the_zoo_lists_each_model_with_new_examples_against_its_threshold(
    engine: Engine, tmp_path: Path
) -> None:
    add_examples(engine, 5)
    service = make_service(engine, tmp_path)

    async def scenario() -> None:
        rows = {row.model_id: row for row in await service.zoo()}
        assert list(rows) == ["persona-test", "router-test"]
        persona = rows["persona-test"]
        assert (persona.new_examples, persona.threshold, persona.ready) == (5, 8, False)
        assert persona.task == "chat_persona" and persona.active_adapter is None
        await service.aclose()

    asyncio.run(scenario())


def test_a_job_streams_its_loss_curve_and_is_judged_by_the_gate(engine: Engine, tmp_path: Path) -> None:
    add_examples(engine, 12)
    service = make_service(engine, tmp_path, steps=12, delay=0.05)

    async def scenario() -> None:
        job = await service.train_now("persona-test")
        assert job.state in ("PENDING", "RUNNING") and job.total == 12
        first = await until(lambda: service.loss_curve(job.id))
        rest = await until(lambda: _after(service, job.id, first[-1].step))
        assert rest[0].step > first[-1].step
        done = await until(lambda: _finished(service, job.id))
        assert done.state == "DONE" and done.best_loss == pytest.approx(0.25)
        decisions = await until(lambda: service.gate_history("persona-test"))
        decision = decisions[0]
        assert decision.job_id == job.id and decision.approved and not decision.promoted
        assert decision.candidate == {"eval_loss": 0.5} and decision.policy == "no_regression"
        kinds = [n.kind for n in await until(lambda: _notices(service, 2))]
        assert kinds == ["finished", "approved"]
        rows = {row.model_id: row for row in await service.zoo()}
        assert rows["persona-test"].new_examples == 0
        assert "loading the base model" in "\n".join(await service.log_tail(job.id))
        await service.aclose()

    asyncio.run(scenario())


def test_cancelling_a_running_job_ends_it_cancelled(engine: Engine, tmp_path: Path) -> None:
    add_examples(engine, 12)
    service = make_service(engine, tmp_path, steps=500, delay=0.2)

    async def scenario() -> None:
        job = await service.train_now("persona-test")
        await until(lambda: service.loss_curve(job.id))
        await service.cancel(job.id)
        final = await until(lambda: _finished(service, job.id))
        assert final.state == "CANCELLED"
        assert await service.running() is None
        await service.aclose()

    asyncio.run(scenario())


def test_export_writes_each_format_and_says_how_many(engine: Engine, tmp_path: Path) -> None:
    add_examples(engine, 6, preference=3)
    service = make_service(engine, tmp_path)

    async def scenario() -> None:
        for fmt, count in (("alpaca", 6), ("sharegpt", 6), ("dpo", 3)):
            out = tmp_path / "out" / f"{fmt}.jsonl"
            assert await service.export("persona-test", fmt, out) == count
            lines = out.read_text(encoding="utf-8").splitlines()
            assert len(lines) == count and json.loads(lines[0])
        await service.aclose()

    asyncio.run(scenario())


def test_rolling_back_a_base_model_explains_there_is_nothing_to_undo(engine: Engine, tmp_path: Path) -> None:
    service = make_service(engine, tmp_path)

    async def scenario() -> None:
        with pytest.raises(ValueError, match="nothing to roll back"):
            await service.rollback("persona-test")
        await service.aclose()

    asyncio.run(scenario())


async def _after(service: TrainingService, job_id: int, step: int):  # type: ignore[no-untyped-def]
    return await service.loss_curve(job_id, step)


async def _finished(service: TrainingService, job_id: int):  # type: ignore[no-untyped-def]
    job = await service.job(job_id)
    return job if job.finished else None


async def _notices(service: TrainingService, count: int):  # type: ignore[no-untyped-def]
    notices = await service.notices()
    return notices if len(notices) >= count else None
