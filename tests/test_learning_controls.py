"""Positive and negative controls for the loop, with the real SmolLM2 model and the real trainer.

One realistic router run (the zoo spec's own steps and hyperparameters, the whole seed set) and the
same run on shuffled labels, both through the app's job queue and trainer subprocess, both judged
by the real gate on the real held-out suite:
- the correct-label run is promoted: above the base model and above the bag-of-words baseline;
- the shuffled-label run is rejected and never becomes active;
- the promoted adapter changes the model's greedy replies on a fixed prompt set, and rolling it
  back restores them exactly.
Slow: about 15 minutes on 2 CPU cores.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine

from nexus_desktop.db.store import Store
from nexus_desktop.llm.contract import ChatInput, ChatMessage, RunContext, SamplingSettings
from nexus_desktop.llm.local import LocalLlamaSource
from nexus_desktop.training.datasets import read_jsonl, write_jsonl
from nexus_desktop.training.jobs import JobManager, JobState, default_trainer_command, repo_root
from nexus_desktop.training.pipeline import Verdict, judge, prepare
from nexus_desktop.training.registry import AdapterRegistry
from nexus_desktop.training.tables import TrainingJob
from nexus_desktop.training.zoo import ZooSpec, get_spec

TRAINER = repo_root() / ".venv-train" / "bin" / "python"
PROMPTS = [
    "Could you roll 2d6 for my fireball?",
    "Please keep in mind that my bike lock code is 9912.",
    "How much VRAM is free right now?",
    "Hey, how has your week been?",
    "Make a plugin that waters my plants.",
    "What did I note about the bike lock?",
]

pytestmark = [pytest.mark.model, pytest.mark.timeout(3600)]


@dataclass
class Runs:
    engine: Engine
    spec: ZooSpec
    correct: Verdict
    shuffled: Verdict
    shuffled_job: TrainingJob


def train(engine: Engine, spec: ZooSpec, dataset: Path, hyperparameters: dict[str, object]) -> TrainingJob:
    jobs = JobManager(engine, trainer_command=default_trainer_command())
    try:
        job = jobs.submit(spec.id, spec.base_model_path(), dataset, hyperparameters, device="cpu")
        assert job.id is not None
        job = jobs.wait(job.id, timeout=3000)
    finally:
        jobs.close()
    assert job.state == JobState.DONE, job.error
    return job


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    if not TRAINER.exists():
        reason = ".venv-train is missing; create it with: bash installers/setup-trainer.sh"
        pytest.fail(reason) if os.environ.get("CI") else pytest.skip(reason)
    folder = tmp_path_factory.mktemp("controls")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NEXUS_DATA_DIR", str(folder / "data"))
        store = Store(folder / "nexus.db")
        spec = get_spec("router")
        plan = prepare(store.engine, spec, folder / "plan", device="cpu")
        assert plan.train_examples >= 480 and plan.hyperparameters["max_steps"] >= 100  # realistic

        rows = list(read_jsonl(plan.dataset))
        labels = [row["messages"][-1]["content"] for row in rows]
        random.Random(7).shuffle(labels)
        for row, label in zip(rows, labels, strict=True):
            row["messages"][-1]["content"] = label
        write_jsonl(rows, folder / "shuffled.jsonl")

        # Same data, same steps, same seed: the labels are the only difference.
        shuffled_job = train(store.engine, spec, folder / "shuffled.jsonl", plan.hyperparameters)
        shuffled = asyncio.run(judge(store.engine, spec, shuffled_job, repeats=1))
        correct_job = train(store.engine, spec, plan.dataset, plan.hyperparameters)
        correct = asyncio.run(judge(store.engine, spec, correct_job, repeats=1))
        yield Runs(store.engine, spec, correct, shuffled, shuffled_job)
        store.close()


def test_a_correct_label_run_of_realistic_length_is_promoted_above_base_and_baseline(runs: Runs) -> None:
    decision = runs.correct.decision
    assert decision.promote, decision.reason
    assert runs.correct.promotion is not None
    accuracy = decision.candidate["accuracy"]
    assert decision.base is not None and decision.baseline is not None
    assert accuracy >= decision.base["accuracy"] + 0.10
    assert accuracy > decision.baseline["accuracy"]


def test_the_same_run_on_shuffled_labels_is_rejected_and_never_active(runs: Runs) -> None:
    decision = runs.shuffled.decision
    assert not decision.promote, decision.reason
    assert runs.shuffled.promotion is None
    # Measured against the same base: the labels made the difference, not the yardstick.
    assert decision.base is not None and runs.correct.decision.base is not None
    assert decision.base["accuracy"] == runs.correct.decision.base["accuracy"]  # greedy: same answers
    assert decision.candidate["accuracy"] < runs.correct.decision.candidate["accuracy"] - 0.3
    history = AdapterRegistry(runs.engine).history(runs.spec.id)
    assert runs.shuffled_job.gguf_adapter not in {str(event.adapter_path) for event in history}


def greedy_replies(spec: ZooSpec, adapter: Path | None) -> list[str]:
    """Free replies (no grammar) of the app's llama.cpp source to the fixed prompts."""

    async def ask_all() -> list[str]:
        source = LocalLlamaSource(spec.base_model_path(), context_size=1024, threads=1, lora_path=adapter)
        sampling = SamplingSettings(temperature=0.0, max_tokens=12, seed=0, repeat_penalty=1.0)
        try:
            replies = []
            for prompt in PROMPTS:
                messages = (ChatMessage("system", spec.system_prompt), ChatMessage("user", prompt))
                output = await source(ChatInput(messages, sampling), RunContext())
                replies.append(output.text.strip())
            return replies
        finally:
            await source.aclose()

    return asyncio.run(ask_all())


def test_the_promoted_adapter_changes_greedy_replies_and_rollback_restores_them_exactly(runs: Runs) -> None:
    registry = AdapterRegistry(runs.engine)
    before = greedy_replies(runs.spec, None)
    active = registry.active(runs.spec.id)
    assert active is not None
    adapted = greedy_replies(runs.spec, active.adapter_path)
    changed = [prompt for prompt, a, b in zip(PROMPTS, before, adapted, strict=True) if a != b]
    assert len(changed) >= 4, (before, adapted)
    assert sum(reply in runs.spec.labels for reply in adapted) >= 4  # it answers with labels now

    registry.rollback(runs.spec.id)
    restored = registry.active(runs.spec.id)
    assert greedy_replies(runs.spec, restored.adapter_path if restored else None) == before
