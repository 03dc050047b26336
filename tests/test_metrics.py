"""Model-call metrics: recording never holds up the caller, rows land, and the Inference queries
compute the right figures; the gate benchmark and the intent router record their own calls."""

from __future__ import annotations

import asyncio
import logging
import math
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from nexus_desktop.chat.routing import IntentRouter
from nexus_desktop.control.metrics import (
    MetricsRecorder,
    adapter_label,
    inference_series,
    inference_summary,
    percentile,
)
from nexus_desktop.control.tables import ModelCall
from nexus_desktop.db.store import Store

NOW = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)


def stored(store: Store) -> list[ModelCall]:
    with Session(store.engine) as s:
        return list(s.exec(select(ModelCall).order_by(ModelCall.id)))  # type: ignore[arg-type]


def call(**fields: object) -> ModelCall:
    values: dict[str, object] = {"model": "smol.gguf", "tokens_in": 10, "tokens_out": 20, "seconds": 1.0}
    values.update(fields)
    return ModelCall(**values)


def insert(store: Store, calls: list[ModelCall]) -> None:
    with Session(store.engine) as s:
        s.add_all(calls)
        s.commit()


# Recording --------------------------------------------------------------------------------------


def test_recording_returns_at_once_while_another_connection_holds_the_write_lock(store: Store) -> None:
    recorder = MetricsRecorder(store.engine, interval=0.01)
    blocker = sqlite3.connect(store.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # nobody else can write until this commits
    try:
        started = time.perf_counter()
        for index in range(200):
            recorder.record(call(tokens_out=index))
        elapsed = time.perf_counter() - started
        # A synchronous insert would have waited out the 5 s busy timeout on the first call.
        assert elapsed < 1.0
        assert blocker.execute("SELECT COUNT(*) FROM model_call").fetchone() == (0,)
    finally:
        blocker.execute("COMMIT")
        blocker.close()
    assert recorder.flush(timeout=30)
    recorder.close()
    rows = stored(store)
    assert [row.tokens_out for row in rows] == list(range(200))
    assert recorder.stored == 200 and recorder.dropped == 0


def test_a_full_queue_drops_and_counts_the_excess_and_warns_once(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = MetricsRecorder(store.engine, max_pending=10, interval=60)
    blocker = sqlite3.connect(store.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # the writer cannot drain the queue meanwhile
    try:
        with caplog.at_level(logging.WARNING, logger="nexus_desktop.control.metrics"):
            for index in range(5):  # half full: wakes the writer, which takes these and waits on the lock
                recorder.record(call(tokens_in=index))
            deadline = time.monotonic() + 10
            while recorder.pending and time.monotonic() < deadline:
                time.sleep(0.005)
            assert recorder.pending == 0, "the writer thread never took the first batch"
            for index in range(5, 20):  # 10 fit in the queue, 5 do not
                recorder.record(call(tokens_in=index))
    finally:
        blocker.execute("COMMIT")
        blocker.close()
    recorder.close()
    assert recorder.dropped == 5
    assert sorted(row.tokens_in for row in stored(store)) == list(range(15))
    warnings = [r for r in caplog.records if "dropping" in r.getMessage()]
    assert len(warnings) == 1


def test_garbage_handed_to_the_recorder_is_dropped_and_later_calls_still_land(store: Store) -> None:
    recorder = MetricsRecorder(store.engine, interval=0.01)
    recorder.record(object())  # type: ignore[arg-type]
    recorder.record(None)  # type: ignore[arg-type]
    recorder.record(call(model="after.gguf"))
    recorder.close()
    assert [row.model for row in stored(store)] == ["after.gguf"]
    assert recorder.dropped == 2


def test_close_stores_every_call_still_queued(store: Store) -> None:
    recorder = MetricsRecorder(store.engine, interval=60)  # the writer would not wake on its own
    for _ in range(50):
        recorder.record(call())
    recorder.close()
    assert len(stored(store)) == 50
    recorder.record(call())  # after close: counted, not stored, no error
    assert recorder.dropped == 1


def test_adapter_labels_name_the_training_job_not_the_shared_file_name() -> None:
    assert adapter_label(Path("/data/training/jobs/00007-router/output/adapter.gguf")) == "00007-router"
    assert adapter_label(Path("/home/me/adapters/pirate.gguf")) == "pirate.gguf"
    assert adapter_label(None) == ""


# Queries ----------------------------------------------------------------------------------------


def test_percentiles_interpolate_between_the_closest_ranks() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.50) == pytest.approx(50.5)
    assert percentile(values, 0.95) == pytest.approx(95.05)
    assert percentile(values, 0.99) == pytest.approx(99.01)
    assert percentile([3.0], 0.95) == 3.0
    assert percentile([], 0.5) is None


def test_the_summary_gives_each_model_source_and_adapter_its_own_figures(store: Store) -> None:
    since = NOW - timedelta(hours=1)
    calls = [
        # 100 successful local calls: latency 0.01..1.00 s, first token at 0.005 s.
        call(at=NOW, seconds=i / 100, first_token_seconds=0.005, tokens_in=5, tokens_out=10)
        for i in range(1, 101)
    ]
    calls += [call(at=NOW, ok=False, seconds=30.0, tokens_out=0)]  # a failure: counted, not timed
    calls += [call(at=NOW, adapter="00003-persona", seconds=2.0, first_token_seconds=1.0, tokens_out=50)]
    calls += [call(at=NOW, source="remote", model="gpt", seconds=4.0, first_token_seconds=None)]
    calls += [call(at=since - timedelta(seconds=1), seconds=99.0)]  # before the window
    insert(store, calls)

    rows = {(r.model, r.source, r.adapter): r for r in inference_summary(store.engine, since)}

    assert set(rows) == {
        ("smol.gguf", "local", ""),
        ("smol.gguf", "local", "00003-persona"),
        ("gpt", "remote", ""),
    }
    base = rows["smol.gguf", "local", ""]
    assert (base.calls, base.errors, base.tokens_in, base.tokens_out) == (101, 1, 510, 1000)
    assert base.latency_p50 == pytest.approx(0.505)
    assert base.latency_p95 == pytest.approx(0.9505)
    assert base.latency_p99 == pytest.approx(0.9901)
    assert base.first_token_p50 == pytest.approx(0.005) and base.first_token_p95 == pytest.approx(0.005)
    generation = sum(i / 100 - 0.005 for i in range(1, 101))
    assert base.tokens_per_second == pytest.approx(1000 / generation)
    persona = rows["smol.gguf", "local", "00003-persona"]
    assert persona.tokens_per_second == pytest.approx(50.0)  # 50 tokens over 2.0 - 1.0 s
    remote = rows["gpt", "remote", ""]
    assert remote.latency_p50 == 4.0 and remote.first_token_p50 is None and remote.tokens_per_second is None


def test_the_summary_can_be_limited_to_some_task_types(store: Store) -> None:
    insert(store, [call(at=NOW, task_type="chat"), call(at=NOW, task_type="routing", model="router.gguf")])
    rows = inference_summary(store.engine, NOW - timedelta(minutes=1), task_types=["routing"])
    assert [row.model for row in rows] == ["router.gguf"]
    assert inference_summary(store.engine, NOW - timedelta(minutes=1), task_types=[]) == []


def test_the_series_puts_calls_in_time_buckets_per_model_with_gaps_as_nan(store: Store) -> None:
    start = NOW.replace(minute=0)
    insert(
        store,
        [
            call(at=start + timedelta(seconds=5), seconds=1.0, first_token_seconds=0.5, tokens_out=10),
            call(at=start + timedelta(seconds=50), seconds=3.0, first_token_seconds=0.5, tokens_out=10),
            call(at=start + timedelta(seconds=70), seconds=2.0, first_token_seconds=None),
            call(at=start + timedelta(seconds=10), model="other.gguf", seconds=1.0),
        ],
    )
    series = {s.model: s for s in inference_series(store.engine, start, 60)}

    smol = series["smol.gguf"]
    assert smol.times == [start.timestamp(), start.timestamp() + 60]
    assert smol.calls == [2, 1]
    assert smol.latency_p50 == [pytest.approx(2.0), pytest.approx(2.0)]
    assert smol.tokens_per_second[0] == pytest.approx(20 / 3.0)  # 20 tokens over 0.5 + 2.5 s
    assert math.isnan(smol.tokens_per_second[1]) and math.isnan(smol.first_token_p50[1])
    assert series["other.gguf"].calls == [1]
    with pytest.raises(ValueError, match="bucket_seconds"):
        inference_series(store.engine, start, 0)


def test_the_summary_reads_a_hundred_thousand_calls(store: Store) -> None:
    # Not a timing test: it shows a realistic window is read in one piece with the right totals.
    with sqlite3.connect(store.path) as raw:
        raw.executemany(
            "INSERT INTO model_call (at, service, task_type, source, model, adapter, character, tokens_in, "
            "tokens_out, first_token_seconds, seconds, ok) VALUES (?, 'chat', 'chat', 'local', ?, '', '', 1, "
            "2, 0.1, ?, 1)",
            [("2026-12-01 12:00:00.000000", f"m{i % 4}", (i % 1000) / 100) for i in range(100_000)],
        )
    rows = inference_summary(store.engine, NOW - timedelta(hours=1))
    assert sorted(row.model for row in rows) == ["m0", "m1", "m2", "m3"]
    assert sum(row.calls for row in rows) == 100_000


# Calls the chat does not make itself -------------------------------------------------------------


@pytest.mark.model
def test_the_intent_router_records_each_routing_call(
    store: Store, smollm2_path: Path, tmp_path: Path
) -> None:
    from tests.test_training_gate import make_lora_adapter

    (tmp_path / "00004-router").mkdir()
    adapter = make_lora_adapter(smollm2_path, tmp_path / "00004-router" / "adapter.gguf")
    recorder = MetricsRecorder(store.engine, interval=0.01)
    labels = ("chat", "roll_dice")
    router = IntentRouter(
        lambda: (smollm2_path, adapter, "Answer with one label: chat or roll_dice.", labels),
        record_call=recorder.record,
    )

    async def route() -> str | None:
        try:
            return await router.route("roll two dice for me")
        finally:
            await router.aclose()

    label = asyncio.run(route())
    recorder.close()

    assert label in labels
    [row] = stored(store)
    assert (row.service, row.task_type, row.source) == ("router", "routing", "local")
    assert row.model == smollm2_path.name and row.adapter == "00004-router"
    assert row.ok and row.tokens_in > 0 and row.tokens_out >= 1
    assert row.first_token_seconds is not None and row.seconds >= row.first_token_seconds


@pytest.mark.model
def test_the_gate_benchmark_records_every_classification(
    store: Store, tmp_path: Path, smollm2_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nexus_desktop.training.pipeline import judge
    from nexus_desktop.training.zoo import get_spec
    from tests.test_training_gate import make_lora_adapter
    from tests.test_training_pipeline import done_job, small_router_zoo

    small_router_zoo(tmp_path, 'policy = "no_regression"\nthreshold = 0.0')
    monkeypatch.setenv("NEXUS_ZOO_DIR", str(tmp_path))
    adapter = make_lora_adapter(smollm2_path, tmp_path / "zero.gguf")
    job = done_job(store, adapter)
    recorder = MetricsRecorder(store.engine, interval=0.01)

    asyncio.run(judge(store.engine, get_spec("router"), job, repeats=0, record_call=recorder.record))
    recorder.close()

    rows = stored(store)
    assert {(r.service, r.task_type, r.model) for r in rows} == {
        ("training", "gate_benchmark", smollm2_path.name)
    }
    # Six held-out items, scored on the base model and on the candidate (no incumbent yet).
    assert sorted(r.adapter for r in rows) == [""] * 6 + ["zero.gguf"] * 6
    assert all(r.ok and r.tokens_out >= 1 for r in rows)


def test_a_failed_call_is_recorded_as_an_error_and_the_error_still_reaches_the_caller(store: Store) -> None:
    from nexus_desktop.control.metrics import CallSite, timed_call
    from nexus_desktop.llm.contract import ChatInput, ChatMessage, RemoteServerError, RunContext
    from nexus_desktop.llm.openai_compat import OpenAICompatSource
    from tests.servers import free_port

    recorder = MetricsRecorder(store.engine, interval=0.01)
    site = CallSite(recorder.record, "chat", "chat", "gpt", source="remote", character="Ava")
    source = OpenAICompatSource(f"http://127.0.0.1:{free_port()}/v1", "gpt", api_key=None)  # no server

    async def ask() -> None:
        try:
            await timed_call(source, ChatInput((ChatMessage("user", "hi"),)), RunContext(), site)
        finally:
            await source.aclose()

    with pytest.raises(RemoteServerError):
        asyncio.run(ask())
    recorder.close()
    [row] = stored(store)
    assert not row.ok and row.source == "remote" and row.character == "Ava"
    assert row.tokens_out == 0 and row.first_token_seconds is None and row.seconds > 0
