"""The model zoo: declarative specs (``resources/zoo/*.toml``) of the small models NEXUS trains.

A spec says which base model, which task, which collected dataset and signals feed it, how many
new examples make a training run worth it, whether a gate-approved candidate goes live on its own,
and which held-out suite judges it.

A spec is refused when its gate needs a number its judge cannot measure: a classifier with a
benchmark suite is judged on the suite (accuracy, consistency, latency), anything else on the
trainer's held-out loss (``eval_loss``) only.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from nexus_desktop import paths
from nexus_desktop.training.datasets import (
    DatasetError,
    classification_messages,
    iter_examples,
    read_jsonl,
    to_alpaca,
    to_dpo,
    to_sharegpt,
)
from nexus_desktop.training.examples import IMPORTED
from nexus_desktop.training.gate import ClassifierMargin, GateError, policy_from, required_metrics
from nexus_desktop.training.tables import TrainingExample

TaskType = Literal["chat_persona", "classifier", "tool_dispatch", "evaluator"]
TASKS: tuple[str, ...] = ("chat_persona", "classifier", "tool_dispatch", "evaluator")
LABELLED_TASKS = frozenset({"classifier", "tool_dispatch", "evaluator"})
BASE_ALIASES = {"smollm2-135m"}
SUITE_METRICS = frozenset({"accuracy", "consistency", "latency_ms_p50", "latency_ms_p95", "items"})
"""What a benchmark suite measures (``benchsuite.score_source``)."""
LOSS_METRICS = frozenset({"eval_loss"})
"""What judges a model without a suite: the trainer's held-out loss."""


class ZooError(ValueError):
    """A zoo spec that is missing, unreadable or invalid; str() says which and what to do."""


@dataclass(frozen=True)
class ZooSpec:
    id: str
    name: str
    base_model: str
    task: TaskType
    dataset: str
    train_threshold: int
    signals: tuple[str, ...]
    auto_promote: bool
    priority: int
    benchmark: str | None = None
    seed_dataset: str | None = None
    labels: tuple[str, ...] = ()
    system_prompt: str = ""
    gate: dict[str, Any] = field(default_factory=dict)
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    source: Path | None = None

    @property
    def labelled(self) -> bool:
        return self.task in LABELLED_TASKS

    @property
    def judged_by_suite(self) -> bool:
        """A classifier with a held-out suite is benchmarked on it; anything else by its eval loss."""
        return self.labelled and bool(self.benchmark)

    @property
    def example_kind(self) -> str:
        return "classification" if self.labelled else "sft"

    def base_model_path(self) -> Path:
        """The base model file or folder; an alias like ``smollm2-135m`` names the bundled model."""
        if self.base_model in BASE_ALIASES:
            from nexus_desktop.llm.catalog import default_model_path

            path = default_model_path()
            if path is None:
                raise ZooError(
                    f"{self.id} trains on the bundled SmolLM2 model, which is not installed; "
                    "run installers/setup.sh or set base_model to a GGUF file."
                )
            return path
        path = Path(self.base_model).expanduser()
        if not path.is_absolute():
            path = paths.resources_dir() / path
        if not path.exists():
            raise ZooError(f"{self.id}'s base model {path} does not exist; fix base_model in {self._file}.")
        return path

    def resource(self, relative: str | None) -> Path | None:
        if not relative:
            return None
        path = Path(relative).expanduser()
        return path if path.is_absolute() else paths.resources_dir() / path

    @property
    def benchmark_path(self) -> Path | None:
        return self.resource(self.benchmark)

    @property
    def seed_path(self) -> Path | None:
        return self.resource(self.seed_dataset)

    @property
    def _file(self) -> str:
        return self.source.name if self.source else "its spec"


def _spec_from(data: dict[str, Any], source: Path | None) -> ZooSpec:
    where = source.name if source else "a zoo spec"
    try:
        spec = ZooSpec(
            id=str(data["id"]),
            name=str(data.get("name", data["id"])),
            base_model=str(data.get("base_model", "smollm2-135m")),
            task=data["task"],
            dataset=str(data["dataset"]),
            train_threshold=int(data.get("train_threshold", 50)),
            signals=tuple(str(s) for s in data.get("signals", ())),
            auto_promote=bool(data.get("auto_promote", False)),
            priority=int(data.get("priority", 0)),
            benchmark=data.get("benchmark"),
            seed_dataset=data.get("seed_dataset"),
            labels=tuple(str(label) for label in data.get("labels", ())),
            system_prompt=str(data.get("system_prompt", "")),
            gate=dict(data.get("gate") or _default_gate(data)),
            hyperparameters=dict(data.get("hyperparameters", {})),
            source=source,
        )
    except KeyError as error:
        raise ZooError(f"{where} lacks the required key {error.args[0]!r}; add it.") from None
    except (TypeError, ValueError) as error:
        raise ZooError(f"{where} has a value of the wrong type ({error}); fix it.") from None
    if spec.task not in TASKS:
        raise ZooError(f"{where} has task {spec.task!r}; use one of {', '.join(TASKS)}.")
    if spec.labelled and not spec.labels:
        raise ZooError(f"{where} is a {spec.task} but lists no labels; add labels = [...].")
    _check_gate(spec, where)
    return spec


def _default_gate(data: dict[str, Any]) -> dict[str, Any]:
    """Without a [gate] table: no regression on what the model's judge measures."""
    judged_by_suite = data.get("task") in LABELLED_TASKS and bool(data.get("benchmark"))
    return {"policy": "no_regression", "metric": "accuracy" if judged_by_suite else "eval_loss"}


def _check_gate(spec: ZooSpec, where: str) -> None:
    """Refuse a gate that could never decide: one that needs a number the judge cannot measure."""
    try:
        policy = policy_from(spec.gate)
    except GateError as error:
        raise ZooError(f"{where}: {error}") from None
    needed = required_metrics(policy)
    if spec.judged_by_suite:
        missing = sorted(needed - SUITE_METRICS)
        if missing:
            measured = ", ".join(sorted(SUITE_METRICS - {"items"}))
            raise ZooError(
                f"{where} has a {policy.name} gate on {', '.join(missing)}, but its benchmark suite "
                f"measures only {measured}; gate on those in its [gate] table."
            )
        return
    missing = sorted(needed - LOSS_METRICS)
    if not missing and not isinstance(policy, ClassifierMargin):
        return
    what = ", ".join(missing) if missing else "the base model's score"
    if spec.labelled:
        fix = (
            'add benchmark = "benchmarks/<name>.jsonl" (held-out {"text": ..., "label": ...} lines, '
            "worded unlike the training data, under resources/) to judge it on a suite, or gate on "
            'eval_loss (policy = "must_improve", metric = "eval_loss")'
        )
    else:
        fix = f'a {spec.task} is judged by its held-out loss: gate on metric = "eval_loss"'
    raise ZooError(
        f"{where} has a {policy.name} gate that needs {what}, which its judge cannot measure without "
        f"a benchmark suite (only eval_loss): {fix}."
    )


def load_spec(path: Path) -> ZooSpec:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ZooError(f"The zoo spec {path.name} cannot be read ({error}); fix or remove it.") from None
    return _spec_from(data, path)


ZOO_DIR_ENV = "NEXUS_ZOO_DIR"


def zoo_dir() -> Path:
    override = os.environ.get(ZOO_DIR_ENV)
    return Path(override) if override else paths.resources_dir() / "zoo"


def load_zoo(folder: Path | None = None) -> dict[str, ZooSpec]:
    """Every spec in the folder by id, highest priority first."""
    specs = [load_spec(path) for path in sorted((folder or zoo_dir()).glob("*.toml"))]
    specs.sort(key=lambda spec: (-spec.priority, spec.id))
    found: dict[str, ZooSpec] = {}
    for spec in specs:
        if spec.id in found:
            raise ZooError(f"Two zoo specs use the id {spec.id!r}; rename one.")
        found[spec.id] = spec
    return found


def get_spec(model_id: str, folder: Path | None = None) -> ZooSpec:
    zoo = load_zoo(folder)
    if model_id not in zoo:
        known = ", ".join(zoo) or "none"
        raise ZooError(f"There is no model {model_id!r} in the zoo; known models: {known}.")
    return zoo[model_id]


# Candidates: collected examples that fit a spec -----------------------------------------------


def candidate_count(engine: Engine, spec: ZooSpec, since: datetime | None = None) -> int:
    """Collected examples that would train this model (only those newer than ``since``, if given)."""
    with Session(engine) as s:
        query = (
            select(func.count())
            .select_from(TrainingExample)
            .where(TrainingExample.dataset == spec.dataset, TrainingExample.kind == spec.example_kind)
        )
        if spec.signals:
            query = query.where(col(TrainingExample.signal).in_([*spec.signals, IMPORTED]))
        if since is not None:
            query = query.where(col(TrainingExample.created_at) > since)
        return int(s.exec(query).one())


def _collected(engine: Engine, spec: ZooSpec, kind: str) -> list[dict[str, Any]]:
    signals = [*spec.signals, IMPORTED] if spec.signals else None
    return [row.payload for row in iter_examples(engine, spec.dataset, kind, signals)]


def chat_records(engine: Engine, spec: ZooSpec, *, include_seed: bool = True) -> list[list[dict[str, str]]]:
    """The spec's training chats: the seed file's, then the collected ones (labels outside the spec
    are dropped, so a renamed label cannot poison the set)."""
    chats: list[list[dict[str, str]]] = []
    seed = spec.seed_path
    if include_seed and seed is not None and seed.exists():
        for record in read_jsonl(seed):
            if "messages" in record:
                chats.append(record["messages"])
            elif "text" in record and "label" in record:
                chats.append(classification_messages(spec.system_prompt, record["text"], record["label"]))
    if spec.labelled:
        for payload in _collected(engine, spec, "classification"):
            if payload["label"] in spec.labels:
                chats.append(classification_messages(spec.system_prompt, payload["text"], payload["label"]))
    else:
        chats.extend(payload["messages"] for payload in _collected(engine, spec, "sft"))
    return chats


def export_records(engine: Engine, spec: ZooSpec, fmt: str) -> list[dict[str, Any]]:
    if fmt == "dpo":
        pairs = [
            payload for row in iter_examples(engine, spec.dataset, "preference") for payload in [row.payload]
        ]
        if not pairs:
            raise DatasetError(
                f"{spec.id} has no preference pairs yet (they come from edits, corrections and swipes); "
                "pick alpaca or sharegpt."
            )
        return [to_dpo(p["prompt"], p["chosen"], p["rejected"]) for p in pairs]
    chats = chat_records(engine, spec)
    if fmt == "alpaca":
        return [to_alpaca(chat) for chat in chats]
    if fmt == "sharegpt":
        return [to_sharegpt(chat) for chat in chats]
    if fmt == "messages":
        return [{"messages": chat} for chat in chats]
    raise DatasetError(f"Unknown export format {fmt!r}; use alpaca, sharegpt, dpo or messages.")


def check_label_coverage(spec: ZooSpec, chats: Sequence[Sequence[Mapping[str, str]]]) -> None:
    """Refuse a labelled spec's training set when a label has no example: the model could never
    learn to answer it (``prepare`` calls this on the rows it is about to train on)."""
    if not spec.labelled:
        return
    seen = {
        chat[-1].get("content", "").strip() for chat in chats if chat and chat[-1].get("role") == "assistant"
    }
    missing = [label for label in spec.labels if label not in seen]
    if not missing:
        return
    names = ", ".join(missing)
    how = f'`nexus dataset import {spec.id} FILE` ({{"text": ..., "label": ...}} lines)'
    if spec.id == "router":
        how = f'`nexus route --correct {missing[0]} "a message that means {missing[0]}"`, or ' + how
    raise DatasetError(
        f"{spec.id} has no training examples labelled {names}, so it could not learn "
        f"{'that label' if len(missing) == 1 else 'those labels'}; add some with {how}, then train again."
    )
