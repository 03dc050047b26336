"""The gate promotes only what its own rule calls better, and the registry keeps every step."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
    baseline_as_good,
    decision_history,
    figures,
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


@settings(max_examples=400, deadline=None)
@given(
    candidate=metric_sets,
    incumbent=maybe_metrics,
    base=metric_sets,
    baseline=st.none() | st.fixed_dictionaries({"accuracy": rates}),
    over_baseline=st.sampled_from([0.0, 0.02, 0.08]),
)
def test_classifier_margin_also_promotes_exactly_the_candidates_above_the_lexical_baseline(
    candidate: dict[str, float],
    incumbent: dict[str, float] | None,
    base: dict[str, float],
    baseline: dict[str, float] | None,
    over_baseline: float,
) -> None:
    policy = ClassifierMargin(min_over_baseline=over_baseline)
    decision = policy.decide(candidate, incumbent, base, baseline)
    c = candidate["accuracy"]
    above_base = c >= base["accuracy"] + 0.10
    above_baseline = baseline is None or c > baseline["accuracy"] + over_baseline
    near_incumbent = incumbent is None or c >= incumbent["accuracy"] - 0.03
    assert decision.promote == (above_base and above_baseline and near_incumbent)
    assert decision.baseline == baseline
    if above_base and baseline is not None and baseline["accuracy"] >= c:
        assert "a bag-of-words classifier does as well" in decision.reason
        assert not decision.promote


# Both directions, by construction: random floats rarely land near a rule's edge, so each policy
# also meets candidates built to be just better (must pass) and just worse (must fail) than its rule.

step = st.floats(min_value=0.001, max_value=0.2)


@settings(max_examples=200, deadline=None)
@given(reference=st.floats(0.05, 0.6), gap=step, delta=st.floats(0.0, 0.1))
def test_every_policy_promotes_a_candidate_its_rule_calls_better_and_rejects_one_it_calls_worse(
    reference: float, gap: float, delta: float
) -> None:
    ref = {"accuracy": reference, "consistency": reference, "latency_ms_p50": 100.0}
    better = {"accuracy": reference + delta + gap, "consistency": reference + gap, "latency_ms_p50": 90.0}
    worse = {"accuracy": reference - gap, "consistency": reference - gap, "latency_ms_p50": 110.0}
    for policy in (
        NoRegression(threshold=1.0),
        MustImprove(min_delta=delta),
        ParetoDominant(metrics=("accuracy", "consistency", "latency_ms_p50")),
    ):
        assert policy.decide(better, ref, None).promote, policy
        assert not policy.decide(worse, ref, None).promote, policy
        assert policy.decide(better, None, ref).promote, policy  # no incumbent: the base model
        assert not policy.decide(worse, None, ref).promote, policy


@settings(max_examples=300, deadline=None)
@given(
    base=st.floats(0.0, 0.5),
    lexical=st.floats(0.0, 0.8),
    over_baseline=st.floats(0.0, 0.1),
    gap=step,
    incumbent_gap=st.floats(-0.03, 0.03),
)
def test_classifier_margin_promotes_what_clears_base_and_baseline_and_rejects_what_does_not(
    base: float, lexical: float, over_baseline: float, gap: float, incumbent_gap: float
) -> None:
    policy = ClassifierMargin(min_over_baseline=over_baseline)
    needed = max(base + 0.10, lexical + over_baseline) + gap
    incumbent = {"accuracy": needed + incumbent_gap}  # within 0.03 of the candidate: no drop
    b, bl = {"accuracy": base}, {"accuracy": lexical}
    assert policy.decide({"accuracy": needed}, incumbent, b, bl).promote
    assert policy.decide({"accuracy": needed}, None, b, bl).promote
    # Just worse on one condition each, all else as good as above:
    below_base = {"accuracy": base + 0.10 - gap}
    assert not policy.decide(below_base, None, b, None).promote
    matched = {"accuracy": lexical + over_baseline}  # equal is not better: strictly greater needed
    if matched["accuracy"] >= base + 0.10:
        decision = policy.decide(matched, None, b, bl)
        assert not decision.promote
        reason = decision.reason
        assert (
            ("does as well" in reason)
            if over_baseline == 0
            else ("does as well" in reason or "by only" in reason)
        )
    beaten = {"accuracy": lexical - gap}
    if beaten["accuracy"] >= base + 0.10:
        decision = policy.decide(beaten, None, b, bl)
        assert not decision.promote and "a bag-of-words classifier does as well" in decision.reason
    dropped = {"accuracy": needed}
    assert not policy.decide(dropped, {"accuracy": needed + 0.03 + gap}, b, bl).promote


def test_a_candidate_the_bag_of_words_matches_is_rejected_in_plain_words() -> None:
    base, lexical = {"accuracy": 0.133}, {"accuracy": 0.889}
    decision = ClassifierMargin().decide({"accuracy": 0.883}, None, base, lexical)
    assert not decision.promote
    assert decision.reason == (
        "The bag-of-words baseline scores accuracy 0.889, better than the candidate's 0.883: a "
        "bag-of-words classifier does as well, so a learned model is not worth a model call."
    )
    tie = ClassifierMargin().decide({"accuracy": 0.889}, None, base, lexical)
    assert not tie.promote and "0.889, as well as the candidate's 0.889" in tie.reason
    # Positive control: the same candidate a little better than the bag of words passes.
    good = ClassifierMargin().decide({"accuracy": 0.95}, None, base, lexical)
    assert good.promote and "beats the bag-of-words baseline (0.889)" in good.reason
    short = ClassifierMargin(min_over_baseline=0.08).decide({"accuracy": 0.95}, None, base, lexical)
    assert not short.promote and "by only 0.061; it needs more than 0.08" in short.reason


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
    assert policy_from({"policy": "classifier_margin", "min_over_baseline": 0.08}) == ClassifierMargin(
        min_over_baseline=0.08
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
    assert kept.numbers["parameters"]["min_over_baseline"] == 0.0
    assert kept.numbers["baseline"] is None
    with engine.connect() as conn, pytest.raises(DatabaseError, match="append-only"):
        conn.exec_driver_sql(f"DELETE FROM gate_decision WHERE id = {record.id}")


def test_the_baseline_is_kept_and_shown_and_old_records_without_it_still_read(engine: Engine) -> None:
    from nexus_desktop.training.service import TrainingService

    decision = ClassifierMargin().decide({"accuracy": 0.8}, None, {"accuracy": 0.2}, {"accuracy": 0.85})
    record_decision(engine, "router", "/adapters/new.gguf", decision, job_id=2)
    # A decision recorded before the baseline existed: its numbers have no "baseline" key.
    old = {"candidate": {"accuracy": 0.9}, "incumbent": None, "base": {"accuracy": 0.2}, "parameters": {}}
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO gate_decision (model_id, job_id, candidate, policy, promote, reason, numbers, at) "
            "VALUES ('router', 1, '/adapters/old.gguf', 'classifier_margin', 1, 'old', ?, "
            "'2026-01-01 00:00:00')",
            (json.dumps(old),),
        )
    new, older = decision_history(engine, "router")
    assert new.numbers["baseline"] == {"accuracy": 0.85} and "baseline" not in older.numbers
    new_view = TrainingService._gate_view(new, False, [])
    old_view = TrainingService._gate_view(older, True, [])
    assert new_view.baseline == {"accuracy": 0.85} and old_view.baseline is None
    assert figures(new.numbers) == ("accuracy: candidate 0.8, incumbent -, base model 0.2, bag of words 0.85")
    assert figures(older.numbers) == "accuracy: candidate 0.9, incumbent -, base model 0.2"
    assert baseline_as_good(new.numbers) and not baseline_as_good(older.numbers)
    from nexus_desktop.control.report import _gate_rows  # the daily report's impact table

    assert _gate_rows(new.numbers) == [["accuracy", "0.8", "-", "0.2", "0.85"]]
    assert _gate_rows(older.numbers) == [["accuracy", "0.9", "-", "0.2", "-"]]


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
    assert registry.active("router").adapter_path == first
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


def test_the_training_page_and_the_dashboard_show_the_bag_of_words_beside_the_others(
    qtbot: Any, engine: Engine
) -> None:
    from nexus_desktop.control.dashboard_data import GateReader
    from nexus_desktop.ui.dashboards.gates_view import GatesView
    from nexus_desktop.ui.gate_view import GateDecisionView

    old = {"candidate": {"accuracy": 0.7}, "incumbent": None, "base": {"accuracy": 0.2}, "parameters": {}}
    with engine.begin() as conn:  # recorded before the baseline existed
        conn.exec_driver_sql(
            "INSERT INTO gate_decision (model_id, job_id, candidate, policy, promote, reason, numbers, at) "
            "VALUES ('router', 1, 'old.gguf', 'classifier_margin', 1, 'old', ?, '2026-01-01 00:00:00')",
            (json.dumps(old),),
        )
    decision = ClassifierMargin().decide({"accuracy": 0.8}, None, {"accuracy": 0.2}, {"accuracy": 0.85})
    record_decision(engine, "router", "new.gguf", decision, job_id=2)
    snapshot = GateReader(engine).read()
    older, newer = snapshot.decisions["router"]

    page = GateDecisionView()
    qtbot.addWidget(page)
    page.show_decision(newer)
    table = page.table
    assert [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())] == [
        "Metric",
        "Candidate",
        "Incumbent",
        "Base model",
        "Bag of words",
    ]
    row = next(r for r in range(table.rowCount()) if table.item(r, 0).text().startswith("accuracy"))
    assert [table.item(row, c).text() for c in range(1, 5)] == ["0.800", "—", "0.200", "0.850"]
    assert "a bag-of-words classifier does as well" in page.reason.text()
    page.show_decision(older)  # an old record reads, with a dash for the baseline
    row = next(r for r in range(table.rowCount()) if table.item(r, 0).text().startswith("accuracy"))
    assert [table.item(row, c).text() for c in range(1, 5)] == ["0.700", "—", "0.200", "—"]

    dashboard = GatesView()
    qtbot.addWidget(dashboard)
    dashboard.show_snapshot(snapshot)
    dashboard.metric_picker.setCurrentText("accuracy")
    _, baseline = dashboard.curves["baseline"].getData()
    assert np.isnan(baseline[0]) and baseline[1] == 0.85
    assert dashboard.decision.table.columnCount() == 5
