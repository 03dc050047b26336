"""The whole loop with the real trainer: train a router adapter, convert it, benchmark and gate it.

Slow (minutes on a shared CPU): it needs the trainer's own environment, ``.venv-train``.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from nexus_desktop.db.store import Store
from nexus_desktop.llm.gguf_check import inspect_model, validate_lora_adapter
from nexus_desktop.training.datasets import read_jsonl, write_jsonl
from nexus_desktop.training.gate import decision_history
from nexus_desktop.training.hyperparams import default_hyperparameters
from nexus_desktop.training.jobs import JobManager, JobState, default_trainer_command, repo_root
from nexus_desktop.training.pipeline import judge
from nexus_desktop.training.zoo import get_spec, load_zoo

TRAINER = repo_root() / ".venv-train" / "bin" / "python"

pytestmark = [
    pytest.mark.model,
    pytest.mark.skipif(not TRAINER.exists(), reason="the trainer environment .venv-train is not installed"),
]


@pytest.mark.timeout(3000)
def test_a_real_training_job_produces_a_valid_adapter_that_the_gate_judges(
    tmp_path: Path, smollm2_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    router = load_zoo()["router"]
    assert router.seed_path is not None and router.benchmark_path is not None
    write_jsonl(list(read_jsonl(router.seed_path))[:16], tmp_path / "train.jsonl")
    held_out = router.benchmark_path.read_text(encoding="utf-8").splitlines()
    by_label = {json.loads(line)["messages"][-1]["content"]: line for line in held_out}
    (tmp_path / "suite.jsonl").write_text("\n".join(by_label.values()) + "\n", encoding="utf-8")
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    spec_text = router.source.read_text(encoding="utf-8")  # type: ignore[union-attr]
    spec_text = spec_text.replace(
        'benchmark = "benchmarks/router_heldout.jsonl"', f'benchmark = "{tmp_path / "suite.jsonl"}"'
    )
    (zoo / "router.toml").write_text(spec_text, encoding="utf-8")
    monkeypatch.setenv("NEXUS_ZOO_DIR", str(zoo))

    store = Store(tmp_path / "nexus.db")
    jobs = JobManager(store.engine, trainer_command=default_trainer_command(), jobs_dir=tmp_path / "jobs")
    hyperparameters = {
        **default_hyperparameters(135_000_000, task_is_classifier=True),
        "max_steps": 2,
        "batch_size": 2,
        "checkpoint_every": 1,
    }
    job = jobs.submit("router", smollm2_path, tmp_path / "train.jsonl", hyperparameters, device="cpu")
    assert job.id is not None
    job = jobs.wait(job.id, timeout=2400)
    jobs.close()

    assert job.state == JobState.DONE, job.error
    assert job.device == "cpu" and job.step == 2 and job.checkpoint is not None
    assert job.id is not None and [p.step for p in jobs.loss_curve(job.id)] == [1, 2]
    assert job.gguf_adapter is not None
    validate_lora_adapter(job.gguf_adapter, inspect_model(smollm2_path))
    assert job.verified is not None and job.verified["top1_agreement"] > 0.5

    verdict = asyncio.run(judge(store.engine, get_spec("router"), job, repeats=1, consistency_items=2))
    [record] = decision_history(store.engine, "router")
    assert record.job_id == job.id and record.promote == verdict.decision.promote
    assert set(record.numbers["candidate"]) >= {"accuracy", "latency_ms_p50", "consistency"}
    store.close()
