"""The promotion gate: does a candidate adapter deserve to replace the active one?

A policy compares the candidate's benchmark metrics with the incumbent's (the active adapter, or
the base model when none is active) and the base model's, and returns a ``Decision`` that carries
every number it used.  Metrics named in ``LOWER_IS_BETTER`` count down (latency, loss); every
other metric counts up.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from nexus_desktop.training.tables import GateDecisionRecord

Metrics = Mapping[str, float]
LOWER_IS_BETTER = frozenset({"latency_ms", "latency_ms_p50", "latency_ms_p95", "eval_loss", "loss"})


def better_or_equal(metric: str, a: float, b: float) -> bool:
    return a <= b if metric in LOWER_IS_BETTER else a >= b


def strictly_better(metric: str, a: float, b: float) -> bool:
    return a < b if metric in LOWER_IS_BETTER else a > b


@dataclass(frozen=True)
class Decision:
    policy: str
    promote: bool
    reason: str
    candidate: dict[str, float]
    incumbent: dict[str, float] | None
    base: dict[str, float] | None
    parameters: dict[str, Any] = field(default_factory=dict)

    def numbers(self) -> dict[str, Any]:
        return {
            "candidate": self.candidate,
            "incumbent": self.incumbent,
            "base": self.base,
            "parameters": self.parameters,
        }


class GatePolicy(Protocol):
    @property
    def name(self) -> str: ...

    def parameters(self) -> dict[str, Any]: ...

    def decide(self, candidate: Metrics, incumbent: Metrics | None, base: Metrics | None) -> Decision: ...


class GateError(ValueError):
    """A policy that cannot judge (a metric missing, an unknown policy); str() says what to fix."""


def _metric(metrics: Metrics | None, name: str, who: str) -> float:
    if metrics is None or name not in metrics:
        raise GateError(f"The {who} has no {name!r} metric to compare; run its benchmark suite first.")
    return float(metrics[name])


def _reference(incumbent: Metrics | None, base: Metrics | None) -> tuple[Metrics | None, str]:
    return (incumbent, "incumbent") if incumbent is not None else (base, "base model")


def _decision(
    policy: Any, promote: bool, reason: str, c: Metrics, i: Metrics | None, b: Metrics | None
) -> Decision:
    return Decision(
        policy=policy.name,
        promote=promote,
        reason=reason,
        candidate=dict(c),
        incumbent=dict(i) if i is not None else None,
        base=dict(b) if b is not None else None,
        parameters=policy.parameters(),
    )


FIRST_ADAPTER_PASSES = "Nothing to compare with; the first adapter passes."


class SingleMetricPolicy(Protocol):
    @property
    def name(self) -> str: ...

    def parameters(self) -> dict[str, Any]: ...

    def allows(self, candidate: float, reference: float) -> bool: ...


def _judge_one_metric(
    policy: SingleMetricPolicy,
    metric: str,
    metrics: tuple[Metrics, Metrics | None, Metrics | None],
    explain: Callable[[bool, float, float, str], str],
) -> Decision:
    """Candidate against the incumbent (or the base model) on one metric; ``explain`` words it."""
    candidate, incumbent, base = metrics
    reference, who = _reference(incumbent, base)
    c = _metric(candidate, metric, "candidate")
    if reference is None:
        return _decision(policy, True, FIRST_ADAPTER_PASSES, candidate, incumbent, base)
    r = _metric(reference, metric, who)
    promote = policy.allows(c, r)
    return _decision(policy, promote, explain(promote, c, r, who), candidate, incumbent, base)


@dataclass(frozen=True)
class NoRegression:
    """Promote when the candidate keeps at least ``threshold`` of the incumbent's score."""

    metric: str = "accuracy"
    threshold: float = 0.98
    name: str = "no_regression"

    def parameters(self) -> dict[str, Any]:
        return {"metric": self.metric, "threshold": self.threshold}

    def allows(self, candidate: float, reference: float) -> bool:
        if self.metric in LOWER_IS_BETTER:
            return candidate * self.threshold <= reference
        return candidate >= self.threshold * reference

    def decide(self, candidate: Metrics, incumbent: Metrics | None, base: Metrics | None) -> Decision:
        def explain(promote: bool, c: float, r: float, who: str) -> str:
            verb = "keeps" if promote else "falls below"
            return f"{self.metric} {c:.4g} {verb} {self.threshold:g} x the {who}'s {r:.4g}."

        return _judge_one_metric(self, self.metric, (candidate, incumbent, base), explain)


@dataclass(frozen=True)
class MustImprove:
    """Promote only when the named metric beats the incumbent's by more than ``min_delta``."""

    metric: str = "accuracy"
    min_delta: float = 0.0
    name: str = "must_improve"

    def parameters(self) -> dict[str, Any]:
        return {"metric": self.metric, "min_delta": self.min_delta}

    def allows(self, candidate: float, reference: float) -> bool:
        if self.metric in LOWER_IS_BETTER:
            return candidate < reference - self.min_delta
        return candidate > reference + self.min_delta

    def decide(self, candidate: Metrics, incumbent: Metrics | None, base: Metrics | None) -> Decision:
        def explain(promote: bool, c: float, r: float, who: str) -> str:
            verb = "improves on" if promote else "does not improve on"
            margin = f"needed a margin of {self.min_delta:g}"
            return f"{self.metric} {c:.4g} {verb} the {who}'s {r:.4g} ({margin})."

        return _judge_one_metric(self, self.metric, (candidate, incumbent, base), explain)


@dataclass(frozen=True)
class ParetoDominant:
    """Promote when the candidate is no worse than the incumbent on every listed metric."""

    metrics: tuple[str, ...] = ("accuracy", "consistency")
    name: str = "pareto_dominant"

    def parameters(self) -> dict[str, Any]:
        return {"metrics": list(self.metrics)}

    def worse_on(self, candidate: Metrics, reference: Metrics) -> list[str]:
        return [m for m in self.metrics if not better_or_equal(m, float(candidate[m]), float(reference[m]))]

    def decide(self, candidate: Metrics, incumbent: Metrics | None, base: Metrics | None) -> Decision:
        reference, who = _reference(incumbent, base)
        for metric in self.metrics:
            _metric(candidate, metric, "candidate")
        if reference is None:
            return _decision(self, True, FIRST_ADAPTER_PASSES, candidate, incumbent, base)
        for metric in self.metrics:
            _metric(reference, metric, who)
        worse = self.worse_on(candidate, reference)
        promote = not worse
        reason = (
            f"No worse than the {who} on {', '.join(self.metrics)}."
            if promote
            else f"Worse than the {who} on {', '.join(worse)}."
        )
        return _decision(self, promote, reason, candidate, incumbent, base)


@dataclass(frozen=True)
class ClassifierMargin:
    """The measured rule for small classifiers: clearly above the base model (a shuffled-label
    candidate scores near chance and would pass a plain no-regression gate) and within noise of the
    incumbent (180 held-out items have a standard error of about 3 points)."""

    metric: str = "accuracy"
    min_over_base: float = 0.10
    max_drop_vs_incumbent: float = 0.03
    name: str = "classifier_margin"

    def parameters(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "min_over_base": self.min_over_base,
            "max_drop_vs_incumbent": self.max_drop_vs_incumbent,
        }

    def decide(self, candidate: Metrics, incumbent: Metrics | None, base: Metrics | None) -> Decision:
        c = _metric(candidate, self.metric, "candidate")
        b = _metric(base, self.metric, "base model")
        if c < b + self.min_over_base:
            reason = f"{self.metric} {c:.3f} is not {self.min_over_base:g} above the base model's {b:.3f}."
            return _decision(self, False, reason, candidate, incumbent, base)
        if incumbent is not None:
            i = _metric(incumbent, self.metric, "incumbent")
            if c < i - self.max_drop_vs_incumbent:
                reason = (
                    f"{self.metric} {c:.3f} drops more than {self.max_drop_vs_incumbent:g} below the "
                    f"incumbent's {i:.3f}."
                )
                return _decision(self, False, reason, candidate, incumbent, base)
        reason = f"{self.metric} {c:.3f} clears the base model ({b:.3f}) by {c - b:.3f}"
        reason += f" and stays within {self.max_drop_vs_incumbent:g} of the incumbent." if incumbent else "."
        return _decision(self, True, reason, candidate, incumbent, base)


Judge = Callable[[Metrics, Metrics | None, Metrics | None], tuple[bool, str]]


@dataclass(frozen=True)
class Custom:
    """Any callable ``(candidate, incumbent, base) -> (promote, reason)``."""

    judge: Judge
    name: str = "custom"

    def parameters(self) -> dict[str, Any]:
        return {"callable": getattr(self.judge, "__qualname__", repr(self.judge))}

    def decide(self, candidate: Metrics, incumbent: Metrics | None, base: Metrics | None) -> Decision:
        promote, reason = self.judge(candidate, incumbent, base)
        return _decision(self, bool(promote), str(reason), candidate, incumbent, base)


def policy_from(config: Mapping[str, Any]) -> GatePolicy:
    """A policy from a zoo spec's ``[gate]`` table."""
    kind = str(config.get("policy", "no_regression"))
    options = {k: v for k, v in config.items() if k != "policy"}
    try:
        if kind == "no_regression":
            return NoRegression(**options)
        if kind == "must_improve":
            return MustImprove(**options)
        if kind == "pareto_dominant":
            return ParetoDominant(metrics=tuple(options.get("metrics", ParetoDominant.metrics)))
        if kind == "classifier_margin":
            return ClassifierMargin(**options)
    except TypeError as error:
        raise GateError(
            f"The gate settings for {kind} are invalid ({error}); fix the [gate] table."
        ) from None
    raise GateError(
        f"Unknown gate policy {kind!r}; use no_regression, must_improve, pareto_dominant "
        "or classifier_margin."
    )


# The decision log ------------------------------------------------------------------------------


def record_decision(
    engine: Engine, model_id: str, candidate: str, decision: Decision, job_id: int | None = None
) -> GateDecisionRecord:
    with Session(engine, expire_on_commit=False) as s:
        record = GateDecisionRecord(
            model_id=model_id,
            job_id=job_id,
            candidate=candidate,
            policy=decision.policy,
            promote=decision.promote,
            reason=decision.reason,
            numbers=decision.numbers(),
        )
        s.add(record)
        s.commit()
        return record


def decision_history(engine: Engine, model_id: str | None = None) -> list[GateDecisionRecord]:
    with Session(engine) as s:
        query = select(GateDecisionRecord)
        if model_id is not None:
            query = query.where(GateDecisionRecord.model_id == model_id)
        return list(s.exec(query.order_by(col(GateDecisionRecord.id))))
