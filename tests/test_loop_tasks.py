"""The loop's built-in tasks do their work through the real training path and leave a ledger row:
the training check trains and gates a model past its threshold, the eval sweep rolls back an
adapter that now falls below its gate (and keeps one that passes), the impact assessment counts
live signals before and since a promotion, and the daily cycle writes its report."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from nexus_desktop.control.ledger import read_cycles
from nexus_desktop.control.loop import Loop, LoopError
from nexus_desktop.control.report import latest_daily_report
from nexus_desktop.control.runners import TaskTimeout
from nexus_desktop.db.store import Store
from nexus_desktop.db.tables import Character, Chat, Message
from nexus_desktop.training.gate import Decision, record_decision
from nexus_desktop.training.registry import AdapterRegistry
from nexus_desktop.training.service import TrainingService
from nexus_desktop.training.tables import AdapterEvent, GateDecisionRecord, TrainingExample
from nexus_desktop.training.zoo import load_zoo
from tests.test_training_gate import make_lora_adapter
from tests.training_support import add_examples, make_service


@pytest.fixture
def engine(store: Store) -> Engine:
    return store.engine


@pytest.fixture
def fake_training(engine: Engine, tmp_path: Path) -> Iterator[TrainingService]:
    """The real training service with the fake trainer (a real process speaking its protocol)."""
    service = make_service(engine, tmp_path, steps=6)
    yield service
    asyncio.run(service.aclose())


def make_loop(engine: Engine, training: TrainingService, tmp_path: Path, **options: object) -> Loop:
    return Loop(
        engine,
        training,
        reports_dir=tmp_path / "reports",
        zoo_folder=tmp_path / "zoo",
        poll_seconds=0.05,
        **options,  # type: ignore[arg-type]
    )


# Training check -------------------------------------------------------------------------------


def test_the_training_check_trains_and_gates_a_model_past_its_threshold_then_waits_for_more_data(
    engine: Engine, fake_training: TrainingService, tmp_path: Path
) -> None:
    add_examples(engine, 10)  # persona-test's threshold is 8; router-test's 50 is far off
    loop = make_loop(engine, fake_training, tmp_path)

    detail = asyncio.run(loop.training_check(120))

    assert "Test persona: job 1 (6 steps, best loss 0.500) approved by the gate" in detail
    [cycle] = read_cycles(engine).cycles
    assert (cycle.kind, cycle.outcome) == ("training_check", "ok")
    assert cycle.changes == (detail,)
    assert cycle.detail["models"]["persona-test"]["decision"]["candidate"] == {"eval_loss": 0.5}
    # The job's examples are used up: the next check finds nothing to do and trains nothing.
    again = asyncio.run(loop.training_check(120))
    assert again.startswith("No zoo model is past its threshold (persona-test 0/8, router-test 0/50)")
    assert [job.id for job in asyncio.run(fake_training.jobs())] == [1]


def test_the_training_check_leaves_a_model_alone_while_its_job_is_still_training(
    engine: Engine, tmp_path: Path
) -> None:
    add_examples(engine, 10)
    slow = make_service(engine, tmp_path, steps=400, delay=0.05)
    loop = make_loop(engine, slow, tmp_path)

    async def scenario() -> str:
        job = await slow.train_now("persona-test")
        try:
            return await loop.training_check(60)
        finally:
            await slow.cancel(job.id)
            await slow.aclose()

    detail = asyncio.run(scenario())
    assert detail == "Test persona: job 1 is still training; skipped."
    assert len(read_cycles(engine).cycles) == 1


def test_a_training_check_that_runs_out_of_time_says_which_job_is_still_training(
    engine: Engine, tmp_path: Path
) -> None:
    add_examples(engine, 10)
    slow = make_service(engine, tmp_path, steps=400, delay=0.05)
    loop = make_loop(engine, slow, tmp_path)

    async def scenario() -> None:
        try:
            with pytest.raises(TaskTimeout, match="ran out of its 3 s limit; job 1 is still training"):
                await loop.training_check(3)
        finally:
            await slow.cancel(1)
            await slow.aclose()

    asyncio.run(scenario())
    [cycle] = read_cycles(engine).cycles
    assert cycle.outcome == "failed" and cycle.detail["timed_out"] is True


# Eval sweep -----------------------------------------------------------------------------------


def router_like_zoo(folder: Path) -> None:
    """Two router-shaped models judged on six held-out items: one gated by a margin over the
    base model, one by no regression against it."""
    router = load_zoo()["router"]
    assert router.benchmark_path is not None
    lines = router.benchmark_path.read_text(encoding="utf-8").splitlines()
    by_label = {json.loads(line)["messages"][-1]["content"]: line for line in lines}
    folder.mkdir(parents=True, exist_ok=True)
    suite = folder / "suite.jsonl"
    suite.write_text("\n".join(by_label.values()) + "\n", encoding="utf-8")
    common = (
        f'task = "classifier"\ndataset = "router"\nlabels = {json.dumps(list(router.labels))}\n'
        f'system_prompt = {json.dumps(router.system_prompt)}\nauto_promote = true\nbenchmark = "{suite}"\n'
    )
    (folder / "strict.toml").write_text(
        f'id = "strict"\nname = "Strict router"\n{common}[gate]\npolicy = "classifier_margin"\n',
        encoding="utf-8",
    )
    (folder / "lenient.toml").write_text(
        f'id = "lenient"\nname = "Lenient router"\n{common}[gate]\npolicy = "no_regression"\n'
        "threshold = 1.0\n",
        encoding="utf-8",
    )


def promote_through_gate(engine: Engine, model_id: str, adapter: Path, base: Path, job_id: int) -> None:
    approve = Decision("classifier_margin", True, "it cleared the gate then", {"accuracy": 0.9}, None, None)
    record = record_decision(engine, model_id, str(adapter), approve, job_id)
    assert record.id is not None
    AdapterRegistry(engine).promote_through_gate(model_id, adapter, base, approve, record.id, job_id)


@pytest.mark.model
def test_the_eval_sweep_rolls_back_an_adapter_below_its_gate_and_keeps_one_that_passes(
    engine: Engine, fake_training: TrainingService, tmp_path: Path, smollm2_path: Path
) -> None:
    router_like_zoo(tmp_path / "zoo")
    registry = AdapterRegistry(engine)
    older = make_lora_adapter(smollm2_path, tmp_path / "older.gguf")
    registry.promote("strict", older, smollm2_path, reason="by hand, long ago")
    # Zero-weight adapters answer exactly as the base model does: no margin over it, no regression.
    strict = make_lora_adapter(smollm2_path, tmp_path / "strict.gguf")
    lenient = make_lora_adapter(smollm2_path, tmp_path / "lenient.gguf")
    promote_through_gate(engine, "strict", strict, smollm2_path, job_id=7)
    promote_through_gate(engine, "lenient", lenient, smollm2_path, job_id=8)
    loop = make_loop(engine, fake_training, tmp_path, bench_repeats=0)

    detail = asyncio.run(loop.eval_sweep(600))

    assert (active := registry.active("strict")) is not None and active.adapter_path == older
    kept = registry.active("lenient")
    assert kept is not None and kept.adapter_path == lenient
    rollback = registry.history("strict")[-1]
    assert rollback.action == "rollback" and not rollback.override  # the loop did it, not a person
    assert (
        rollback.reason.startswith("Eval sweep: accuracy")
        and "not 0.1 above the base model" in rollback.reason
    )
    assert [e.action for e in registry.history("lenient")] == ["promote"]
    [cycle] = read_cycles(engine).cycles
    assert cycle.outcome == "ok" and detail == cycle.summary
    [change] = cycle.changes
    assert change.startswith("Strict router: rolled back job 7's adapter, which now falls below its gate")
    assert change.endswith("it now runs on older.gguf.")
    numbers = cycle.detail["models"]["strict"]
    assert (
        numbers["candidate"]["accuracy"] == numbers["base"]["accuracy"] and numbers["action"] == "rolled_back"
    )
    assert cycle.detail["models"]["lenient"]["passes"] is True
    assert "Lenient router: job 8's adapter still passes its gate" in cycle.detail["notes"][0]


def test_an_eval_sweep_whose_benchmark_cannot_run_fails_and_keeps_the_adapter(
    engine: Engine, fake_training: TrainingService, tmp_path: Path, smollm2_path: Path
) -> None:
    router_like_zoo(tmp_path / "zoo")
    (tmp_path / "zoo" / "suite.jsonl").unlink()  # the suite is gone
    adapter = make_lora_adapter(smollm2_path, tmp_path / "strict.gguf")
    promote_through_gate(engine, "strict", adapter, smollm2_path, job_id=7)
    loop = make_loop(engine, fake_training, tmp_path, bench_repeats=0)

    with pytest.raises(
        LoopError, match=r"Strict router: the benchmark failed: The benchmark suite .* does not"
    ):
        asyncio.run(loop.eval_sweep(60))

    assert AdapterRegistry(engine).active("strict") is not None  # never rolled back on a failed check
    assert read_cycles(engine).cycles[0].outcome == "failed"


# Impact assessment ----------------------------------------------------------------------------


def reply(s: Session, chat: Chat, at: datetime, rating: int | None) -> None:
    assert chat.id is not None
    stats = [{"rating": rating}] if rating is not None else [None]
    s.add(
        Message(
            chat_id=chat.id, position=0, role="assistant", swipes=["hi"], swipe_stats=stats, created_at=at
        )
    )


def example(s: Session, dataset: str, kind: str, signal: str, at: datetime, key: str) -> None:
    s.add(
        TrainingExample(
            dataset=dataset, kind=kind, signal=signal, content_hash=key, payload={}, created_at=at
        )
    )


def test_impact_assessment_counts_the_signals_before_and_since_a_promotion(
    engine: Engine, fake_training: TrainingService, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    promoted = now - timedelta(days=2)
    before, since = now - timedelta(days=3), now - timedelta(days=1)
    with Session(engine) as s:
        test, other = Character(name="Test", card={}), Character(name="Other", card={})
        s.add_all([test, other])
        s.flush()
        mine, theirs = Chat(character_id=test.id or 0), Chat(character_id=other.id or 0)
        s.add_all([mine, theirs])
        s.flush()
        for rating in (1, -1, -1, None):  # before: 4 replies, 1 up, 2 down
            reply(s, mine, before, rating)
        for rating in (1, 1, 1, 1, None):  # since: 5 replies, 4 up
            reply(s, mine, since, rating)
        for _ in range(20):  # another character's replies are not this persona's business
            reply(s, theirs, since, -1)
        reply(s, mine, now - timedelta(days=5), -1)  # outside both windows
        example(s, "persona:Test", "sft", "correction", before, "c1")
        example(s, "persona:Test", "preference", "correction", before, "c1p")  # the same correction
        example(s, "persona:Test", "sft", "edit", before, "e1")
        example(s, "persona:Other", "sft", "correction", since, "o1")
        example(s, "router", "classification", "route_confirmed", since, "r1")
        decision = GateDecisionRecord(
            model_id="persona-test",
            job_id=4,
            candidate="a.gguf",
            policy="no_regression",
            promote=True,
            reason="eval_loss 0.5 keeps 1 x the incumbent's 0.6.",
            numbers={"candidate": {"eval_loss": 0.5}, "incumbent": {"eval_loss": 0.6}, "base": None},
        )
        s.add(decision)
        s.flush()
        s.add(
            AdapterEvent(
                model_id="persona-test",
                action="promote",
                adapter_path="a.gguf",
                job_id=4,
                decision_id=decision.id,
                reason="promoted",
                at=promoted,
            )
        )
        s.commit()
    loop = make_loop(engine, fake_training, tmp_path)

    detail = asyncio.run(loop.impact_assessment(60))

    assert detail.startswith("Assessed 1 promotion(s): Test persona")
    assert "thumbs up 25 → 80 per 100 replies" in detail
    [cycle] = read_cycles(engine).cycles
    [found] = cycle.detail["promotions"]
    assert found["scope"] == "Test" and found["job_id"] == 4 and found["still_active"]
    assert found["before"] == {
        "replies": 4,
        "thumbs_up": 1,
        "thumbs_down": 2,
        "corrections": 2,
        "route_confirmations": 0,
        "route_corrections": 0,
    }
    assert found["since"]["replies"] == 5 and found["since"]["thumbs_down"] == 0
    assert found["since"]["corrections"] == 0  # Other's correction is not Test's
    assert found["since"]["route_confirmations"] == 1
    assert found["before_rates"]["thumbs_down"] == 50.0 and found["since_rates"]["thumbs_up"] == 80.0
    assert found["gate"]["incumbent"] == {"eval_loss": 0.6} and found["gate"]["policy"] == "no_regression"


# The daily cycle ------------------------------------------------------------------------------


def test_the_daily_cycle_runs_each_step_as_its_own_ledger_row_and_writes_the_report(
    engine: Engine, fake_training: TrainingService, tmp_path: Path
) -> None:
    add_examples(engine, 10)
    loop = make_loop(engine, fake_training, tmp_path)

    detail = asyncio.run(loop.daily_cycle(600))

    cycles = read_cycles(engine).cycles
    daily = next(c for c in cycles if c.kind == "daily")
    steps = sorted((c for c in cycles if c.parent == daily.id), key=lambda c: c.id)
    assert [s.kind for s in steps] == ["training_check", "eval_sweep", "impact_assessment"]
    assert all(s.outcome == "ok" for s in steps) and daily.outcome == "ok"
    assert daily.changes == steps[0].changes and detail.startswith("Test persona: job 1")
    report = latest_daily_report(tmp_path / "reports")
    assert report is not None and daily.report_path == str(report)
    text = report.read_text(encoding="utf-8")
    assert text.startswith("# Daily improvement report, ")
    assert f"Cycle {daily.id} finished" in text and "Loop health: **healthy**" in text
    assert "## What changed\n\n- Test persona: job 1 (6 steps, best loss 0.500) approved by the gate" in text
    assert "| Test persona | 0/8 | base model |" in text
    assert "No zoo model runs on an adapter; nothing to re-check." in text
    assert "No promotion in the last 30 days to assess." in text
