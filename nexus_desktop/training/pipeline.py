"""One turn of the loop for a zoo model: prepare its data, train, benchmark, gate, promote.

``prepare`` and ``judge`` are plain functions so the CLI, the UI and the tests call the same code;
the training in between is a ``JobManager`` job.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from nexus_desktop.control.metrics import RecordCall
from nexus_desktop.training.benchsuite import load_suite, run_suite
from nexus_desktop.training.datasets import DatasetError, write_jsonl
from nexus_desktop.training.gate import Decision, policy_from, record_decision
from nexus_desktop.training.hyperparams import default_hyperparameters, parameter_count
from nexus_desktop.training.jobs import JobState
from nexus_desktop.training.leakage import find_overlaps, refuse_overlaps
from nexus_desktop.training.lexical import (
    LexicalClassifier,
    Row,
    rows_from_chats,
    rows_from_jsonl,
    saved_path,
)
from nexus_desktop.training.registry import AdapterRegistry
from nexus_desktop.training.tables import AdapterEvent, GateDecisionRecord, TrainingJob
from nexus_desktop.training.zoo import ZooSpec, candidate_count, chat_records, check_label_coverage

EVAL_SHARE = 10
"""One example in ten is held out for the trainer's eval loss (when there are at least 20)."""


@dataclass(frozen=True)
class TrainingPlan:
    spec: ZooSpec
    base_model: Path
    dataset: Path
    eval_dataset: Path | None
    train_examples: int
    eval_examples: int
    hyperparameters: dict[str, Any]
    parameters: int | None
    held_back: tuple[str, ...] = ()
    """Collected messages left out of training because they share wording with the held-out suite."""

    def describe(self) -> dict[str, Any]:
        return {
            "model_id": self.spec.id,
            "base_model": str(self.base_model),
            "parameters": self.parameters,
            "dataset": str(self.dataset),
            "eval_dataset": str(self.eval_dataset) if self.eval_dataset else None,
            "train_examples": self.train_examples,
            "eval_examples": self.eval_examples,
            "hyperparameters": self.hyperparameters,
            "held_back": list(self.held_back),
        }


def last_finished_job(engine: Engine, model_id: str, state: str = JobState.DONE) -> TrainingJob | None:
    with Session(engine) as s:
        query = select(TrainingJob).where(TrainingJob.model_id == model_id, TrainingJob.state == state)
        return s.exec(query.order_by(col(TrainingJob.id).desc())).first()


def new_candidates(engine: Engine, spec: ZooSpec) -> int:
    """Examples collected since the model was last trained: what the threshold is measured against."""
    last = last_finished_job(engine, spec.id)
    since: datetime | None = last.created_at if last is not None else None
    return candidate_count(engine, spec, since)


def _held_out(chat: list[dict[str, str]]) -> bool:
    digest = hashlib.sha256(json.dumps(chat, sort_keys=True).encode("utf-8")).digest()
    return digest[0] % EVAL_SHARE == 0


def _user_text(chat: list[dict[str, str]]) -> str:
    return next((m["content"] for m in reversed(chat) if m["role"] == "user"), "")


def _keep_suite_unseen(engine: Engine, spec: ZooSpec) -> tuple[list[list[dict[str, str]]], tuple[str, ...]]:
    """The spec's training chats, minus collected ones that share wording with its held-out suite.

    A seed set that overlaps the suite is refused (its author must fix one of the files); a
    collected message that does is kept in the database but left out of training, so the suite
    keeps measuring generalisation."""
    chats = chat_records(engine, spec)
    suite = spec.benchmark_path
    if not spec.labelled or suite is None or not suite.exists():
        return chats, ()
    heldout = [item.messages[-1].content for item in load_suite(suite, spec.system_prompt)]
    collected = chat_records(engine, spec, include_seed=False)
    seed = chats[: len(chats) - len(collected)]
    refuse_overlaps(find_overlaps([_user_text(c) for c in seed], heldout), suite.name)
    leaking = {o.row - 1 for o in find_overlaps(heldout, [_user_text(c) for c in collected])}
    kept = [chat for index, chat in enumerate(collected) if index not in leaking]
    return seed + kept, tuple(_user_text(collected[index]) for index in sorted(leaking))


def prepare(engine: Engine, spec: ZooSpec, folder: Path, *, device: str = "auto") -> TrainingPlan:
    """Write the training (and eval) JSONL for a spec and choose its hyperparameters."""
    chats, held_back = _keep_suite_unseen(engine, spec)
    if not chats:
        raise DatasetError(
            f"{spec.id} has no training examples yet; chat, rate replies or add a seed dataset."
        )
    train: list[list[dict[str, str]]] = []
    held: list[list[dict[str, str]]] = []
    for chat in chats:
        (held if len(chats) >= 20 and _held_out(chat) else train).append(chat)
    check_label_coverage(spec, train)
    base_model = spec.base_model_path()
    params = parameter_count(base_model)
    hyperparameters = {
        **default_hyperparameters(params, task_is_classifier=spec.labelled, device=device),
        **spec.hyperparameters,
    }
    dataset = folder / f"{spec.id}-train.jsonl"
    write_jsonl(({"messages": chat} for chat in train), dataset)
    eval_dataset = None
    if held:
        eval_dataset = folder / f"{spec.id}-eval.jsonl"
        write_jsonl(({"messages": chat} for chat in held), eval_dataset)
    return TrainingPlan(
        spec, base_model, dataset, eval_dataset, len(train), len(held), hyperparameters, params, held_back
    )


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    record: GateDecisionRecord
    promotion: AdapterEvent | None


def _loss_metrics(job: TrainingJob | None) -> dict[str, float] | None:
    if job is None:
        return None
    loss = job.eval_loss if job.eval_loss is not None else job.best_loss
    return {"eval_loss": float(loss)} if loss is not None else None


async def benchmark(
    spec: ZooSpec,
    adapter: Path | None,
    *,
    repeats: int = 2,
    consistency_items: int = 20,
    record_call: RecordCall | None = None,
) -> dict[str, float]:
    """Score the spec's base model (with ``adapter``) on its suite; ``record_call`` records each
    classification as a ``gate_benchmark`` model call."""
    suite = spec.benchmark_path
    if suite is None:
        raise DatasetError(f"{spec.id} has no benchmark suite; add benchmark = ... to its zoo spec.")
    return await run_suite(
        spec.base_model_path(),
        suite,
        spec.labels,
        spec.system_prompt,
        adapter=adapter,
        repeats=repeats,
        consistency_items=consistency_items,
        record_call=record_call,
    )


def _trained_rows(engine: Engine, spec: ZooSpec, job: TrainingJob) -> list[Row]:
    """The rows the job trained on (its job.json names the JSONL ``prepare`` wrote), or, when that
    file is gone, every row the spec would train on now."""
    try:
        if not job.job_dir:
            raise OSError("no job folder")
        job_file = json.loads((Path(job.job_dir) / "job.json").read_text(encoding="utf-8"))
        dataset = Path(job_file["dataset"])
        if dataset.is_file():
            return rows_from_jsonl(dataset)
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return rows_from_chats(chat_records(engine, spec))


def lexical_baseline(
    engine: Engine, spec: ZooSpec, job: TrainingJob
) -> tuple[LexicalClassifier, dict[str, float]] | None:
    """A bag-of-words classifier trained on the job's rows and its score on the spec's suite (the
    same items the model is benchmarked on), or None without rows or suite."""
    suite = spec.benchmark_path
    rows = _trained_rows(engine, spec, job)
    if suite is None or not rows:
        return None
    classifier = LexicalClassifier.fit(rows, spec.labels)
    held = [
        (next(m.content for m in reversed(item.messages) if m.role == "user"), item.expected)
        for item in load_suite(suite, spec.system_prompt)
    ]
    return classifier, {"accuracy": classifier.accuracy(held), "items": float(len(held))}


async def judge(
    engine: Engine,
    spec: ZooSpec,
    job: TrainingJob,
    *,
    repeats: int = 2,
    consistency_items: int = 20,
    record_call: RecordCall | None = None,
) -> Verdict:
    """Benchmark the job's adapter against the active one, the base model and (classifiers) the
    lexical baseline, record the gate's decision, and promote when the spec allows automatic
    promotion and the gate approves."""
    if job.state != JobState.DONE or not job.gguf_adapter:
        raise DatasetError(f"Training job {job.id} has no finished adapter to judge.")
    registry = AdapterRegistry(engine)
    active = registry.active(spec.id)
    candidate_adapter = Path(job.gguf_adapter)
    policy = policy_from(spec.gate)
    lexical = None
    if spec.judged_by_suite:
        lexical = lexical_baseline(engine, spec, job)  # pure Python, milliseconds

        async def score(adapter: Path | None) -> dict[str, float]:
            return await benchmark(
                spec, adapter, repeats=repeats, consistency_items=consistency_items, record_call=record_call
            )

        base = await score(None)
        candidate = await score(candidate_adapter)
        incumbent = await score(active.adapter_path) if active is not None else None
    else:
        # A chat model is judged by its held-out loss against the job that made the active adapter.
        candidate = _loss_metrics(job) or {}
        incumbent_job = None
        if active is not None and active.job_id is not None:
            with Session(engine) as s:
                incumbent_job = s.get(TrainingJob, active.job_id)
        incumbent = _loss_metrics(incumbent_job)
        base = None
    decision = policy.decide(candidate, incumbent, base, lexical[1] if lexical else None)
    record = record_decision(engine, spec.id, str(candidate_adapter), decision, job.id)
    if lexical is not None:  # the baseline the latest decision scored, for the router to fall back on
        lexical[0].save(saved_path(spec.id))
    promotion = None
    if spec.auto_promote and decision.promote:
        assert record.id is not None
        promotion = registry.promote_through_gate(
            spec.id, candidate_adapter, spec.base_model_path(), decision, record.id, job.id
        )
    return Verdict(decision, record, promotion)
