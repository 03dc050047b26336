"""Every zoo model can be judged: the gate of every shipped spec gets the numbers it needs from its
judge (the real model, a real adapter, the real benchmark path), a spec whose gate could never
decide is refused when the zoo loads, and a labelled dataset missing a label is refused before
training."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest
from sqlmodel import Session

from nexus_desktop.db.store import Store
from nexus_desktop.training.datasets import DatasetError
from nexus_desktop.training.gate import decision_history
from nexus_desktop.training.jobs import JobState
from nexus_desktop.training.lexical import LexicalClassifier, saved_path
from nexus_desktop.training.pipeline import judge, prepare
from nexus_desktop.training.tables import TrainingJob
from nexus_desktop.training.zoo import SUITE_METRICS, ZooError, ZooSpec, load_spec, load_zoo
from tests.test_training_gate import make_lora_adapter

SHIPPED = load_zoo()


def small_copy(spec: ZooSpec, folder: Path) -> ZooSpec:
    """The shipped spec as it is, but benchmarked on one suite item per label (a short test)."""
    assert spec.source is not None
    text = spec.source.read_text(encoding="utf-8")
    if spec.benchmark_path is not None:
        lines = spec.benchmark_path.read_text(encoding="utf-8").splitlines()
        by_label: dict[str, str] = {}
        for line in lines:
            record = json.loads(line)
            label = record["messages"][-1]["content"] if "messages" in record else record["label"]
            by_label.setdefault(label, line)
        assert set(by_label) == set(spec.labels), "the suite covers every label"
        suite = folder / f"{spec.id}-suite.jsonl"
        suite.write_text("\n".join(by_label.values()) + "\n", encoding="utf-8")
        text, replaced = re.subn(r"(?m)^benchmark = .*$", f"benchmark = {json.dumps(str(suite))}", text)
        assert replaced == 1
    copy = folder / spec.source.name
    copy.write_text(text, encoding="utf-8")
    return load_spec(copy)


def done_job(store: Store, model_id: str, adapter: Path, eval_loss: float) -> TrainingJob:
    with Session(store.engine, expire_on_commit=False) as s:
        job = TrainingJob(
            model_id=model_id,
            state=JobState.DONE,
            job_dir="",
            log_path="",
            gguf_adapter=str(adapter),
            eval_loss=eval_loss,
            best_loss=eval_loss,
        )
        s.add(job)
        s.commit()
        return job


@pytest.mark.model
@pytest.mark.parametrize("model_id", sorted(SHIPPED))
def test_the_judge_reaches_a_decision_for_every_shipped_zoo_model(
    model_id: str, store: Store, tmp_path: Path, smollm2_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = small_copy(SHIPPED[model_id], tmp_path)
    monkeypatch.setenv("NEXUS_ZOO_DIR", str(tmp_path))
    adapter = make_lora_adapter(smollm2_path, tmp_path / "adapter.gguf", scale=0.001)
    job = done_job(store, spec.id, adapter, eval_loss=0.75)

    verdict = asyncio.run(judge(store.engine, spec, job, repeats=1, consistency_items=2))

    [record] = decision_history(store.engine, spec.id)
    assert record.id == verdict.record.id and record.job_id == job.id
    assert record.policy == verdict.decision.policy == spec.gate["policy"]
    assert verdict.decision.reason
    if spec.judged_by_suite:
        decision = verdict.decision
        assert set(decision.candidate) == SUITE_METRICS  # what zoo.py says a suite measures
        assert decision.base is not None and set(decision.base) == SUITE_METRICS
        assert decision.candidate["items"] == len(spec.labels)
        # The lexical baseline, trained on the spec's rows, scored on the same items, kept.
        assert decision.baseline is not None and decision.baseline["items"] == len(spec.labels)
        assert 0.0 <= decision.baseline["accuracy"] <= 1.0
        assert record.numbers["baseline"] == decision.baseline
        assert LexicalClassifier.load(saved_path(spec.id)).labels == spec.labels
    else:
        assert verdict.decision.candidate == {"eval_loss": 0.75}
        assert verdict.decision.baseline is None


# Specs whose gate could never decide are refused at load ------------------------------------------

CLASSIFIER = 'id = "mood"\ntask = "classifier"\ndataset = "mood"\nlabels = ["happy", "sad"]\n'


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_pareto_gate_without_a_suite_is_refused_naming_the_file_and_what_to_add(tmp_path: Path) -> None:
    gate = '[gate]\npolicy = "pareto_dominant"\nmetrics = ["accuracy", "consistency"]\n'
    refused = write(tmp_path, "mood.toml", CLASSIFIER + gate)
    with pytest.raises(ZooError) as error:
        load_spec(refused)
    message = str(error.value)
    assert message.startswith("mood.toml has a pareto_dominant gate that needs accuracy, consistency")
    assert 'add benchmark = "benchmarks/<name>.jsonl"' in message and "eval_loss" in message
    with pytest.raises(ZooError, match=r"mood\.toml has a pareto_dominant gate"):
        load_zoo(tmp_path)  # the loader the app uses refuses it too

    # Positive control: the same spec with a held-out suite loads.
    suite = write(tmp_path, "suite.jsonl", '{"text": "great day", "label": "happy"}\n')
    accepted = write(tmp_path, "mood.toml", CLASSIFIER + f"benchmark = {json.dumps(str(suite))}\n" + gate)
    assert load_spec(accepted).judged_by_suite
    assert set(load_zoo(tmp_path)) == {"mood"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # A margin over the base model needs the base model's score: only a suite gives one.
        (
            CLASSIFIER + '[gate]\npolicy = "classifier_margin"\nmetric = "eval_loss"\n',
            "the base model's score",
        ),
        # A chat model is judged by its loss; an accuracy gate could never decide.
        (
            'id = "p"\ntask = "chat_persona"\ndataset = "persona:P"\n[gate]\npolicy = "must_improve"\n',
            'a chat_persona is judged by its held-out loss: gate on metric = "eval_loss"',
        ),
        # With a suite, the judge measures the suite's metrics, not a loss.
        (
            CLASSIFIER + 'benchmark = "x.jsonl"\n[gate]\npolicy = "no_regression"\nmetric = "eval_loss"\n',
            "but its benchmark suite measures only accuracy, consistency, latency_ms_p50",
        ),
        (CLASSIFIER + '[gate]\npolicy = "magic"\n', "Unknown gate policy 'magic'"),
    ],
)
def test_other_gates_their_judge_cannot_feed_are_refused(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ZooError, match=re.escape(expected)):
        load_spec(write(tmp_path, "spec.toml", text))


def test_without_a_gate_table_a_spec_gets_a_gate_its_judge_can_feed(tmp_path: Path) -> None:
    plain = load_spec(write(tmp_path, "a.toml", CLASSIFIER))
    assert plain.gate == {"policy": "no_regression", "metric": "eval_loss"}
    suite = write(tmp_path, "suite.jsonl", '{"text": "great day", "label": "happy"}\n')
    judged = load_spec(write(tmp_path, "b.toml", CLASSIFIER + f"benchmark = {json.dumps(str(suite))}\n"))
    assert judged.gate == {"policy": "no_regression", "metric": "accuracy"}


# A labelled dataset where a label has no example ------------------------------------------------


def labelled_zoo(folder: Path, model_id: str, labels: list[str], rows: list[tuple[str, str]]) -> ZooSpec:
    seed = write(
        folder, "seed.jsonl", "".join(json.dumps({"text": t, "label": label}) + "\n" for t, label in rows)
    )
    return load_spec(
        write(
            folder,
            f"{model_id}.toml",
            f'id = "{model_id}"\ntask = "classifier"\ndataset = "{model_id}"\n'
            f"labels = {json.dumps(labels)}\nseed_dataset = {json.dumps(str(seed))}\n"
            '[gate]\npolicy = "must_improve"\nmetric = "eval_loss"\n',
        )
    )


ROWS = [("roll two dice", "roll_dice"), ("hi there", "chat"), ("roll a d6", "roll_dice")]


def test_prepare_refuses_a_dataset_with_a_label_that_has_no_examples(store: Store, tmp_path: Path) -> None:
    spec = labelled_zoo(tmp_path, "router", ["chat", "roll_dice", "recall_note", "system_status"], ROWS)
    with pytest.raises(DatasetError) as error:
        prepare(store.engine, spec, tmp_path / "plan")
    message = str(error.value)
    assert message.startswith("router has no training examples labelled recall_note, system_status")
    assert '`nexus route --correct recall_note "a message that means recall_note"`' in message
    assert "`nexus dataset import router FILE`" in message
    assert not (tmp_path / "plan" / "router-train.jsonl").exists()  # nothing written

    other = labelled_zoo(tmp_path, "mood", ["chat", "roll_dice", "sad"], ROWS)
    with pytest.raises(
        DatasetError, match="mood has no training examples labelled sad, so it could"
    ) as error:
        prepare(store.engine, other, tmp_path / "plan")
    assert "nexus route" not in str(error.value)  # that command trains only the router


def test_prepare_accepts_a_dataset_with_every_label(store: Store, tmp_path: Path) -> None:
    # Positive control for the refusal above: the same data, every label present.
    spec = labelled_zoo(tmp_path, "router", ["chat", "roll_dice"], ROWS)
    plan = prepare(store.engine, spec, tmp_path / "plan")
    assert plan.train_examples == len(ROWS) and plan.dataset.exists()
