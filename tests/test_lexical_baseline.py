"""The lexical baseline: a bag-of-words classifier that learns from the rows the trainer gets, is
scored on the same held-out suite, saves and loads, and routes when the gate found it as good as
the learned router."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from nexus_desktop.chat.routing import IntentRouter
from nexus_desktop.db.store import Store
from nexus_desktop.training.benchsuite import load_suite
from nexus_desktop.training.gate import ClassifierMargin, record_decision
from nexus_desktop.training.in_use import lexical_router
from nexus_desktop.training.lexical import (
    LexicalClassifier,
    LexicalError,
    features,
    rows_from_jsonl,
    saved_path,
)
from nexus_desktop.training.pipeline import prepare
from nexus_desktop.training.registry import AdapterRegistry
from nexus_desktop.training.zoo import get_spec
from tests.test_training_cli import nexus
from tests.test_training_gate import make_lora_adapter

ROWS = [
    ("roll two dice", "roll_dice"),
    ("roll a d20 please", "roll_dice"),
    ("throw the dice for me", "roll_dice"),
    ("how is my cpu doing", "system_status"),
    ("check the memory use", "system_status"),
    ("hello there, how are you", "chat"),
    ("tell me a story", "chat"),
]
LABELS = ("chat", "roll_dice", "system_status")


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    store = Store(tmp_path / "nexus.db")
    yield store.engine
    store.close()


def router_rows() -> tuple[list[tuple[str, str]], list[tuple[str, str]], tuple[str, ...]]:
    spec = get_spec("router")
    assert spec.seed_path is not None and spec.benchmark_path is not None
    held = [
        (item.messages[-1].content, item.expected)
        for item in load_suite(spec.benchmark_path, spec.system_prompt)
    ]
    return rows_from_jsonl(spec.seed_path), held, spec.labels


# The classifier ------------------------------------------------------------------------------------


def test_features_are_lowercased_words_and_their_bigrams() -> None:
    assert features("Roll TWO dice!") == ["roll", "two", "dice", "roll two", "two dice"]
    assert features("Roll TWO dice!", bigrams=False) == ["roll", "two", "dice"]
    assert features("") == []


def test_it_learns_from_words_and_breaks_ties_by_label_order() -> None:
    classifier = LexicalClassifier.fit(ROWS, LABELS)
    assert classifier.predict("could you roll some dice") == "roll_dice"
    assert classifier.predict("what is the cpu load") == "system_status"
    assert classifier.predict("hello, tell me something") == "chat"
    # No known word: only the priors speak; two labels with equal priors tie, and the earlier wins.
    even = LexicalClassifier.fit([("a b", "x"), ("c d", "y")], ("y", "x"))
    assert even.predict("zzz") == "y"
    assert LexicalClassifier.fit([("a b", "x"), ("c d", "y")], ("x", "y")).predict("zzz") == "x"
    # Rows with a label outside the spec are left out, as the learned model cannot answer them.
    other = LexicalClassifier.fit([*ROWS, ("roll roll roll", "unknown")], LABELS)
    assert other.examples == len(ROWS) and other.labels == LABELS


def test_on_the_router_suite_it_scores_far_above_chance_and_shuffled_labels_do_not() -> None:
    train, held, labels = router_rows()
    real = LexicalClassifier.fit(train, labels).accuracy(held)
    texts, answers = [t for t, _ in train], [label for _, label in train]
    random.Random(7).shuffle(answers)
    shuffled = LexicalClassifier.fit(list(zip(texts, answers, strict=True)), labels).accuracy(held)
    chance = 1 / len(labels)
    assert real > chance + 0.3, real  # positive control: it learns from words
    assert shuffled < chance + 0.15, shuffled  # negative control: nothing to learn, near chance


def test_it_saves_and_loads_as_json_and_a_damaged_file_is_refused(tmp_path: Path) -> None:
    train, held, labels = router_rows()
    classifier = LexicalClassifier.fit(train, labels)
    path = classifier.save(tmp_path / "sub" / "router.json")
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["format"] == "nexus-lexical-nb" and data["labels"] == list(labels)
    loaded = LexicalClassifier.load(path)
    assert loaded == classifier
    assert [loaded.predict(t) for t, _ in held] == [classifier.predict(t) for t, _ in held]

    path.write_text('{"format": "nexus-lexical-nb", "version": 1, "labels": ["a"]}', encoding="utf-8")
    with pytest.raises(LexicalError, match=r"is damaged .* judge the model again"):
        LexicalClassifier.load(path)
    path.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(LexicalError, match="not a JSON object"):
        LexicalClassifier.load(path)
    with pytest.raises(LexicalError, match="cannot be read"):
        LexicalClassifier.load(tmp_path / "missing.json")


def test_it_trains_on_exactly_the_rows_prepare_writes_for_the_trainer(engine: Engine, tmp_path: Path) -> None:
    spec = get_spec("router")
    plan = prepare(engine, spec, tmp_path / "plan")
    rows = rows_from_jsonl(plan.dataset)
    assert len(rows) == plan.train_examples > 0
    written = [json.loads(line)["messages"] for line in plan.dataset.read_text(encoding="utf-8").splitlines()]
    assert rows == [(chat[-2]["content"], chat[-1]["content"]) for chat in written]
    assert {label for _, label in rows} == set(spec.labels)


# Routing with the bag of words ------------------------------------------------------------------------


def record(engine: Engine, candidate: float, lexical: float | None) -> None:
    baseline = {"accuracy": lexical} if lexical is not None else None
    decision = ClassifierMargin().decide({"accuracy": candidate}, None, {"accuracy": 0.15}, baseline)
    record_decision(engine, "router", "/adapters/candidate.gguf", decision, job_id=1)


def saved_router() -> LexicalClassifier:
    train, _, labels = router_rows()
    classifier = LexicalClassifier.fit(train, labels)
    classifier.save(saved_path("router"))
    return classifier


def test_the_bag_of_words_routes_only_when_the_latest_decision_found_it_as_good(
    engine: Engine, tmp_path: Path, smollm2_path: Path
) -> None:
    saved = saved_router()
    assert lexical_router(engine) is None  # no decision yet
    record(engine, 0.90, 0.80)  # the learned router was better: no bag of words
    assert lexical_router(engine) is None
    record(engine, 0.85, 0.85)  # as good: the cheaper one routes
    words = lexical_router(engine)
    assert words is not None and words == saved
    record(engine, 0.80, None)  # a later decision without a baseline says nothing for it
    assert lexical_router(engine) is None
    record(engine, 0.80, 0.86)
    assert lexical_router(engine) == saved
    # A learned router promoted (by hand here) wins over the bag of words.
    registry = AdapterRegistry(engine)
    registry.promote("router", make_lora_adapter(smollm2_path, tmp_path / "a.gguf"), smollm2_path, reason="x")
    assert lexical_router(engine) is None
    registry.rollback("router")
    assert lexical_router(engine) == saved
    saved_path("router").unlink()
    assert lexical_router(engine) is None  # nothing saved: nothing to route with


def test_the_intent_router_uses_the_bag_of_words_without_a_model_call(engine: Engine) -> None:
    saved_router()
    record(engine, 0.80, 0.86)
    router = IntentRouter(lambda: None, lexical=lambda: lexical_router(engine))

    async def route(text: str) -> str | None:
        try:
            return await router.route(text)
        finally:
            await router.aclose()

    assert asyncio.run(route("roll three dice for me")) == "roll_dice"
    assert router._source is None  # no model was loaded
    assert asyncio.run(IntentRouter(lambda: None).route("roll three dice for me")) is None


def test_nexus_route_uses_the_bag_of_words_when_the_gate_found_it_as_good(private_data_dir: Path) -> None:
    store = Store(private_data_dir / "nexus.db")
    try:
        saved = saved_router()
        record(store.engine, 0.80, 0.86)
    finally:
        store.close()
    text = "roll three dice for me"
    result = nexus("route", text, data_dir=private_data_dir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == saved.predict(text) == "roll_dice"
    assert "bag-of-words router" in result.stderr
    history = nexus("gate", "history", "router", data_dir=private_data_dir)
    assert "accuracy: candidate 0.8, incumbent -, base model 0.15, bag of words 0.86" in history.stdout
