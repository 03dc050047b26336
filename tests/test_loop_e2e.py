"""The self-improvement loop end to end, with the real model, the real trainer and llama.cpp.

rated chats → export → a real LoRA job in a subprocess → GGUF adapter → gate → promote →
a chat reply served by llama.cpp with the adapter → rollback restores the base replies exactly.
This checks the wiring with a two-step run; that training changes what a model says, and that the
gate tells a good run from a shuffled one, is shown by tests/test_learning_controls.py.
Slow: minutes on a shared CPU.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from nexus_desktop.chat.service import ReplySaved
from nexus_desktop.core import AppCore
from nexus_desktop.training.gate import decision_history
from nexus_desktop.training.jobs import JobManager, JobState, default_trainer_command, repo_root
from nexus_desktop.training.pipeline import judge, prepare
from nexus_desktop.training.registry import AdapterRegistry
from nexus_desktop.training.zoo import export_records, get_spec

TRAINER = repo_root() / ".venv-train" / "bin" / "python"
QUESTIONS = [
    "What is our heading?",
    "How are the engines?",
    "Any news from the crew?",
    "What should I play tonight?",
    "Can you check the reactor?",
    "Tell me about the Marrow Lantern.",
]
SHORT_RUN = {"max_steps": 2, "batch_size": 2, "checkpoint_every": 1}

pytestmark = [pytest.mark.model, pytest.mark.timeout(3000)]


@pytest.fixture(autouse=True)
def trainer_available() -> None:
    if not TRAINER.exists():
        reason = ".venv-train is missing; create it with: bash installers/setup-trainer.sh"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


def greedy_core() -> AppCore:
    core = AppCore()
    core.settings = core.settings.model_copy(
        update={"threads": 1, "max_tokens": 24, "temperature": 0.0, "context_size": 2048}
    )
    return core


async def ask(core: AppCore, text: str) -> ReplySaved:
    """One message in a fresh chat with Vega; returns the saved reply."""
    vega = core.store.find_character("Vega")
    assert vega is not None and vega.id is not None
    chat, _ = await core.chat.new_chat(vega.id)
    assert chat.id is not None
    events = [event async for event in core.chat.send(chat.id, text)]
    saved = events[-1]
    assert isinstance(saved, ReplySaved)
    return saved


def train(
    core: AppCore, model_id: str, base: Path, dataset: Path, eval_dataset: Path | None, hyper: dict[str, Any]
):  # type: ignore[no-untyped-def]
    jobs = JobManager(core.store.engine, trainer_command=default_trainer_command())
    try:
        job = jobs.submit(
            model_id, base, dataset, {**hyper, **SHORT_RUN}, eval_dataset=eval_dataset, device="cpu"
        )
        assert job.id is not None
        job = jobs.wait(job.id, timeout=2400)
    finally:
        jobs.close()
    assert job.state == JobState.DONE, job.error
    assert job.gguf_adapter is not None
    return job


def test_rated_chats_train_a_persona_adapter_that_chat_uses_and_rollback_removes(
    private_data_dir: Path, tmp_path: Path
) -> None:
    core = greedy_core()
    spec = get_spec("persona-vega")
    registry = AdapterRegistry(core.store.engine)

    async def rate_chats() -> str:
        for question in QUESTIONS:
            saved = await ask(core, question)
            assert saved.message.id is not None
            await core.chat.rate_message(saved.message.id, True)
        return (await ask(core, QUESTIONS[0])).message.content

    base_reply = asyncio.run(rate_chats())
    assert core.collector.flush(30)

    exported = export_records(core.store.engine, spec, "sharegpt")
    assert len(exported) >= len(QUESTIONS)
    assert all(r["conversations"][-1]["from"] == "gpt" for r in exported)

    plan = prepare(core.store.engine, spec, tmp_path, device="cpu")
    job = train(core, spec.id, plan.base_model, plan.dataset, plan.eval_dataset, plan.hyperparameters)

    verdict = asyncio.run(judge(core.store.engine, spec, job))
    [decision] = decision_history(core.store.engine, spec.id)
    assert decision.job_id == job.id and decision.promote == verdict.decision.promote
    assert verdict.decision.promote, verdict.decision.reason  # the first adapter has nothing to beat
    assert decision.id is not None
    registry.promote_through_gate(
        spec.id, Path(job.gguf_adapter), plan.base_model, verdict.decision, decision.id, job.id
    )

    adapted = asyncio.run(ask(core, QUESTIONS[0]))
    source = core.sources.current
    assert source is not None and getattr(source, "_lora_path", None) == Path(job.gguf_adapter)
    assert adapted.message.content  # llama.cpp answered with the adapter applied

    registry.rollback(spec.id)
    restored = asyncio.run(ask(core, QUESTIONS[0]))
    assert getattr(core.sources.current, "_lora_path", "unset") is None
    assert restored.message.content == base_reply  # greedy decoding: exactly the base model's reply
    assert [e.action for e in registry.history(spec.id)] == ["promote", "rollback"]
    asyncio.run(core.aclose())
