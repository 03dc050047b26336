"""The gate promotes only what its own rule calls better, and the registry keeps every step."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import gguf
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine
from sqlalchemy.exc import DatabaseError

from nexus_desktop.db.store import Store
from nexus_desktop.llm.contract import ModelFileError
from nexus_desktop.llm.gguf_check import inspect_model
from nexus_desktop.training.gate import (
    ClassifierMargin,
    Custom,
    Decision,
    GateError,
    MustImprove,
    NoRegression,
    ParetoDominant,
    decision_history,
    policy_from,
    record_decision,
)
from nexus_desktop.training.registry import AdapterRegistry, RegistryError


def make_lora_adapter(base: Path, out: Path, *, rank: int = 2, layers: int = 2, scale: float = 0.0) -> Path:
    """A real GGUF LoRA adapter for ``base`` (zero weights by default: the base model's behaviour)."""
    info = inspect_model(base)
    writer = gguf.GGUFWriter(str(out), info.architecture)
    writer.add_type("adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", float(rank))
    for layer in range(layers):
        for name in ("attn_q", "attn_v"):
            rows, cols = info.tensors[f"blk.{layer}.{name}.weight"].shape
            writer.add_tensor(
                f"blk.{layer}.{name}.weight.lora_a", np.full((rank, rows), scale, dtype=np.float32)
            )
            writer.add_tensor(
                f"blk.{layer}.{name}.weight.lora_b", np.full((cols, rank), scale, dtype=np.float32)
            )
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out


# Policies -----------------------------------------------------------------------------------------

rates = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
latencies = st.floats(min_value=1.0, max_value=5000.0, allow_nan=False)
metric_sets = st.fixed_dictionaries({"accuracy": rates, "consistency": rates, "latency_ms_p50": latencies})
maybe_metrics = st.none() | metric_sets


@settings(max_examples=300, deadline=None)
@given(candidate=metric_sets, incumbent=maybe_metrics, base=metric_sets, threshold=st.floats(0.5, 1.0))
def test_no_regression_promotes_exactly_the_candidates_that_keep_its_threshold(
    candidate: dict[str, float], incumbent: dict[str, float] | None, base: dict[str, float], threshold: float
) -> None:
    for metric in ("accuracy", "latency_ms_p50"):
        policy = NoRegression(metric=metric, threshold=threshold)
        decision = policy.decide(candidate, incumbent, base)
        reference = (incumbent or base)[metric]
        # Both directions: a gate that never (or always) promotes fails here.
        if metric == "accuracy":
            assert decision.promote == (candidate[metric] >= threshold * reference)
        else:  # lower is better
            assert decision.promote == (candidate[metric] * threshold <= reference)


@settings(max_examples=300, deadline=None)
@given(candidate=metric_sets, incumbent=maybe_metrics, base=metric_sets, delta=st.floats(0.0, 0.2))
def test_must_improve_promotes_exactly_the_candidates_that_beat_the_reference(
    candidate: dict[str, float], incumbent: dict[str, float] | None, base: dict[str, float], delta: float
) -> None:
    for metric in ("accuracy", "latency_ms_p50"):
        decision = MustImprove(metric=metric, min_delta=delta).decide(candidate, incumbent, base)
        reference = (incumbent or base)[metric]
        if metric == "accuracy":
            assert decision.promote == (candidate[metric] > reference + delta)
        else:
            assert decision.promote == (candidate[metric] < reference - delta)


@settings(max_examples=300, deadline=None)
@given(candidate=metric_sets, incumbent=maybe_metrics, base=metric_sets)
def test_pareto_promotes_exactly_the_candidates_no_worse_on_every_metric(
    candidate: dict[str, float], incumbent: dict[str, float] | None, base: dict[str, float]
) -> None:
    metrics = ("accuracy", "consistency", "latency_ms_p50")
    decision = ParetoDominant(metrics=metrics).decide(candidate, incumbent, base)
    reference = incumbent or base
    assert decision.promote == (
        candidate["accuracy"] >= reference["accuracy"]
        and candidate["consistency"] >= reference["consistency"]
        and candidate["latency_ms_p50"] <= reference["latency_ms_p50"]
    )


@settings(max_examples=300, deadline=None)
@given(candidate=metric_sets, incumbent=maybe_metrics, base=metric_sets)
def test_classifier_margin_promotes_exactly_above_base_plus_margin_and_near_the_incumbent(
    candidate: dict[str, float], incumbent: dict[str, float] | None, base: dict[str, float]
) -> None:
    decision = ClassifierMargin().decide(candidate, incumbent, base)
    near_incumbent = incumbent is None or candidate["accuracy"] >= incumbent["accuracy"] - 0.03
    assert decision.promote == (candidate["accuracy"] >= base["accuracy"] + 0.10 and near_incumbent)


def test_the_measured_shuffled_label_candidate_passes_no_regression_but_not_the_margin_rule() -> None:
    base, shuffled = {"accuracy": 0.206}, {"accuracy": 0.228}
    assert NoRegression(threshold=0.98).decide(shuffled, None, base).promote
    decision = ClassifierMargin().decide(shuffled, None, base)
    assert not decision.promote
    assert "not 0.1 above the base model's 0.206" in decision.reason
    good = ClassifierMargin().decide({"accuracy": 0.85}, {"accuracy": 0.86}, base)
    assert good.promote
    worse = ClassifierMargin().decide({"accuracy": 0.81}, {"accuracy": 0.86}, base)
    assert not worse.promote and "drops more than 0.03" in worse.reason


def test_custom_policies_decide_with_any_callable() -> None:
    def cheaper(candidate: object, incumbent: object, base: object) -> tuple[bool, str]:
        return False, "too slow"

    decision = Custom(cheaper).decide({"accuracy": 1.0}, None, None)
    assert (decision.promote, decision.reason, decision.policy) == (False, "too slow", "custom")


def test_a_missing_metric_is_an_error_that_says_which() -> None:
    with pytest.raises(GateError, match="no 'accuracy' metric"):
        NoRegression().decide({"consistency": 1.0}, {"accuracy": 0.5}, None)


def test_zoo_gate_tables_build_their_policies() -> None:
    assert policy_from({"policy": "classifier_margin", "min_over_base": 0.2}) == ClassifierMargin(
        min_over_base=0.2
    )
    assert policy_from({"policy": "pareto_dominant", "metrics": ["accuracy"]}) == ParetoDominant(
        metrics=("accuracy",)
    )
    with pytest.raises(GateError, match="Unknown gate policy 'magic'"):
        policy_from({"policy": "magic"})


# Decision log and registry ------------------------------------------------------------------------


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    store = Store(tmp_path / "nexus.db")
    yield store.engine
    store.close()


def test_every_decision_is_kept_with_all_its_numbers_and_cannot_be_edited(engine: Engine) -> None:
    decision = ClassifierMargin().decide({"accuracy": 0.85, "latency_ms_p50": 90.0}, None, {"accuracy": 0.2})
    record = record_decision(engine, "router", "/adapters/a.gguf", decision, job_id=7)
    [kept] = decision_history(engine, "router")
    assert kept.promote and kept.job_id == 7 and kept.policy == "classifier_margin"
    assert kept.numbers["candidate"] == {"accuracy": 0.85, "latency_ms_p50": 90.0}
    assert kept.numbers["base"] == {"accuracy": 0.2}
    assert kept.numbers["parameters"]["min_over_base"] == 0.1
    with engine.connect() as conn, pytest.raises(DatabaseError, match="append-only"):
        conn.exec_driver_sql(f"DELETE FROM gate_decision WHERE id = {record.id}")


def test_promotion_and_rollback_history_decides_the_active_adapter(
    engine: Engine, tmp_path: Path, smollm2_path: Path
) -> None:
    first = make_lora_adapter(smollm2_path, tmp_path / "first.gguf")
    second = make_lora_adapter(smollm2_path, tmp_path / "second.gguf")
    registry = AdapterRegistry(engine)
    assert registry.active("router") is None
    registry.promote("router", first, smollm2_path, reason="by hand")
    approve = Decision(
        "classifier_margin", True, "clears the base", {"accuracy": 0.9}, None, {"accuracy": 0.2}
    )
    record = record_decision(engine, "router", str(second), approve)
    assert record.id is not None
    registry.promote_through_gate("router", second, smollm2_path, approve, record.id, job_id=3)
    active = registry.active("router")
    assert active is not None and active.adapter_path == second and not active.override and active.job_id == 3
    registry.rollback("router")
    assert registry.active("router").adapter_path == first  # type: ignore[union-attr]
    registry.rollback("router")
    assert registry.active("router") is None
    with pytest.raises(RegistryError, match="nothing to roll back"):
        registry.rollback("router")
    actions = [(e.action, e.override) for e in registry.history("router")]
    assert actions == [("promote", True), ("promote", False), ("rollback", True), ("rollback", True)]


def test_the_gate_is_the_only_automatic_way_in(engine: Engine, tmp_path: Path, smollm2_path: Path) -> None:
    adapter = make_lora_adapter(smollm2_path, tmp_path / "a.gguf")
    reject = Decision("classifier_margin", False, "near chance", {"accuracy": 0.23}, None, {"accuracy": 0.2})
    record = record_decision(engine, "router", str(adapter), reject)
    assert record.id is not None
    with pytest.raises(RegistryError, match="did not approve"):
        AdapterRegistry(engine).promote_through_gate("router", adapter, smollm2_path, reject, record.id)
    assert AdapterRegistry(engine).active("router") is None


def test_an_adapter_that_does_not_fit_the_base_model_never_becomes_active(
    engine: Engine, tmp_path: Path, smollm2_path: Path
) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\0" * 20)
    registry = AdapterRegistry(engine)
    with pytest.raises(ModelFileError):
        registry.promote("router", broken, smollm2_path, reason="by hand")
    with pytest.raises(ModelFileError):
        registry.promote("router", smollm2_path, smollm2_path, reason="a model is not an adapter")
    assert registry.active("router") is None and registry.history("router") == []
