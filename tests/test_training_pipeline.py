"""A finished job is benchmarked through llama.cpp, judged by the gate and promoted only if it passes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from sqlmodel import Session

from nexus_desktop.db.store import Store
from nexus_desktop.training.gate import decision_history
from nexus_desktop.training.jobs import JobState
from nexus_desktop.training.pipeline import judge
from nexus_desktop.training.registry import AdapterRegistry
from nexus_desktop.training.tables import TrainingJob
from nexus_desktop.training.zoo import get_spec, load_zoo
from tests.test_training_gate import make_lora_adapter

pytestmark = pytest.mark.model


def small_router_zoo(folder: Path, gate: str) -> None:
    """The shipped router spec, judged on six held-out items to keep the test short."""
    router = load_zoo()["router"]
    assert router.benchmark_path is not None
    lines = router.benchmark_path.read_text(encoding="utf-8").splitlines()
    by_label = {json.loads(line)["messages"][-1]["content"]: line for line in lines}
    suite = folder / "suite.jsonl"
    suite.write_text("\n".join(by_label.values()) + "\n", encoding="utf-8")
    labels = json.dumps(list(router.labels))
    (folder / "router.toml").write_text(
        f'id = "router"\ntask = "classifier"\ndataset = "router"\nlabels = {labels}\n'
        f"system_prompt = {json.dumps(router.system_prompt)}\nauto_promote = true\n"
        f'benchmark = "{suite}"\n[gate]\n{gate}\n',
        encoding="utf-8",
    )


def done_job(store: Store, adapter: Path) -> TrainingJob:
    with Session(store.engine, expire_on_commit=False) as s:
        job = TrainingJob(
            model_id="router", state=JobState.DONE, job_dir="", log_path="", gguf_adapter=str(adapter)
        )
        s.add(job)
        s.commit()
        return job


def test_a_candidate_no_better_than_the_base_is_rejected_and_the_numbers_are_kept(
    store: Store, tmp_path: Path, smollm2_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    small_router_zoo(tmp_path, 'policy = "classifier_margin"')
    monkeypatch.setenv("NEXUS_ZOO_DIR", str(tmp_path))
    adapter = make_lora_adapter(smollm2_path, tmp_path / "zero.gguf")  # zero weights: the base model
    job = done_job(store, adapter)

    verdict = asyncio.run(judge(store.engine, get_spec("router"), job, repeats=1, consistency_items=2))

    assert not verdict.decision.promote and verdict.promotion is None
    assert "above the base model" in verdict.decision.reason
    [record] = decision_history(store.engine, "router")
    assert record.job_id == job.id and not record.promote
    candidate, base = record.numbers["candidate"], record.numbers["base"]
    assert candidate["accuracy"] == base["accuracy"]
    assert set(candidate) >= {"accuracy", "latency_ms_p50", "latency_ms_p95", "consistency", "items"}
    assert candidate["items"] == 6
    assert AdapterRegistry(store.engine).active("router") is None


def test_an_approved_candidate_of_an_auto_promote_model_goes_live(
    store: Store, tmp_path: Path, smollm2_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    small_router_zoo(tmp_path, 'policy = "no_regression"\nthreshold = 0.0')
    monkeypatch.setenv("NEXUS_ZOO_DIR", str(tmp_path))
    adapter = make_lora_adapter(smollm2_path, tmp_path / "zero.gguf")
    job = done_job(store, adapter)

    verdict = asyncio.run(judge(store.engine, get_spec("router"), job, repeats=0))

    assert verdict.decision.promote and verdict.promotion is not None
    active = AdapterRegistry(store.engine).active("router")
    assert active is not None and active.adapter_path == adapter and not active.override
    assert verdict.promotion.decision_id == verdict.record.id


def test_the_consistency_check_covers_every_label_of_the_suite_not_just_its_first_rows() -> None:
    from nexus_desktop.llm.contract import ChatMessage
    from nexus_desktop.training.benchsuite import SuiteItem, load_suite, spread_across_labels
    from nexus_desktop.training.zoo import get_spec

    spec = get_spec("router")
    assert spec.benchmark_path is not None
    items = load_suite(spec.benchmark_path, spec.system_prompt)
    chosen = spread_across_labels(items, 20)
    assert len(chosen) == 20 == len(set(chosen))
    assert {items[i].expected for i in chosen} == set(spec.labels)
    few = [SuiteItem((ChatMessage("user", str(n)),), "a" if n < 5 else "b") for n in range(7)]
    assert spread_across_labels(few, 3) == [0, 1, 5] and spread_across_labels(few, 50) == list(range(7))
