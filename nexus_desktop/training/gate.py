"""The promotion gate: does a candidate adapter deserve to replace the active one?

A policy compares the candidate's benchmark metrics with the incumbent's (the active adapter, or
the base model when none is active) and the base model's, and for classifiers with the lexical
baseline's (a bag-of-words classifier trained on the same rows, ``training/lexical.py``), and
returns a ``Decision`` that carries every number it used.  Metrics named in ``LOWER_IS_BETTER``
count down (latency, loss); every other metric counts up.
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
    baseline: dict[str, float] | None = None
    """The lexical baseline's scores on the same suite (classifiers), or None."""

    def numbers(self) -> dict[str, Any]:
        """What the decision log keeps; records from before the baseline existed lack "baseline"."""
        return {
            "candidate": self.candidate,
            "incumbent": self.incumbent,
            "base": self.base,
            "baseline": self.baseline,
            "parameters": self.parameters,
        }


class GatePolicy(Protocol):
    @property
    def name(self) -> str: ...

    def parameters(self) -> dict[str, Any]: ...

    def decide(
        self,
        candidate: Metrics,
        incumbent: Metrics | None,
        base: Metrics | None,
        baseline: Metrics | None = None,
    ) -> Decision: ...


class GateError(ValueError):
    """A policy that cannot judge (a metric missing, an unknown policy); str() says what to fix."""


def _metric(metrics: Metrics | None, name: str, who: str) -> float:
    if metrics is None or name not in metrics:
        raise GateError(f"The {who} has no {name!r} metric to compare; run its benchmark suite first.")
    return float(metrics[name])


def _reference(incumbent: Metrics | None, base: Metrics | None) -> tuple[Metrics | None, str]:
    return (incumbent, "incumbent") if incumbent is not None else (base, "base model")


def _decision(
    policy: Any,
    promote: bool,
    reason: str,
    c: Metrics,
    i: Metrics | None,
    b: Metrics | None,
    baseline: Metrics | None = None,
) -> Decision:
    return Decision(
        policy=policy.name,
        promote=promote,
        reason=reason,
        candidate=dict(c),
        incumbent=dict(i) if i is not None else None,
        base=dict(b) if b is not None else None,
        parameters=policy.parameters(),
        baseline=dict(baseline) if baseline is not None else None,
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
    metrics: tuple[Metrics, Metrics | None, Metrics | None, Metrics | None],
    explain: Callable[[bool, float, float, str], str],
) -> Decision:
    """Candidate against the incumbent (or the base model) on one metric; ``explain`` words it.
    The baseline is recorded, not judged."""
    candidate, incumbent, base, baseline = metrics
    reference, who = _reference(incumbent, base)
    c = _metric(candidate, metric, "candidate")
    if reference is None:
        return _decision(policy, True, FIRST_ADAPTER_PASSES, candidate, incumbent, base, baseline)
    r = _metric(reference, metric, who)
    promote = policy.allows(c, r)
    return _decision(policy, promote, explain(promote, c, r, who), candidate, incumbent, base, baseline)


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

    def decide(
        self,
        candidate: Metrics,
        incumbent: Metrics | None,
        base: Metrics | None,
        baseline: Metrics | None = None,
    ) -> Decision:
        def explain(promote: bool, c: float, r: float, who: str) -> str:
            verb = "keeps" if promote else "falls below"
            return f"{self.metric} {c:.4g} {verb} {self.threshold:g} x the {who}'s {r:.4g}."

        return _judge_one_metric(self, self.metric, (candidate, incumbent, base, baseline), explain)


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

    def decide(
        self,
        candidate: Metrics,
        incumbent: Metrics | None,
        base: Metrics | None,
        baseline: Metrics | None = None,
    ) -> Decision:
        def explain(promote: bool, c: float, r: float, who: str) -> str:
            verb = "improves on" if promote else "does not improve on"
            margin = f"needed a margin of {self.min_delta:g}"
            return f"{self.metric} {c:.4g} {verb} the {who}'s {r:.4g} ({margin})."

        return _judge_one_metric(self, self.metric, (candidate, incumbent, base, baseline), explain)


@dataclass(frozen=True)
class ParetoDominant:
    """Promote when the candidate is no worse than the incumbent on every listed metric."""

    metrics: tuple[str, ...] = ("accuracy", "consistency")
    name: str = "pareto_dominant"

    def parameters(self) -> dict[str, Any]:
        return {"metrics": list(self.metrics)}

    def worse_on(self, candidate: Metrics, reference: Metrics) -> list[str]:
        return [m for m in self.metrics if not better_or_equal(m, float(candidate[m]), float(reference[m]))]

    def decide(
        self,
        candidate: Metrics,
        incumbent: Metrics | None,
        base: Metrics | None,
        baseline: Metrics | None = None,
    ) -> Decision:
        reference, who = _reference(incumbent, base)
        for metric in self.metrics:
            _metric(candidate, metric, "candidate")
        if reference is None:
            return _decision(self, True, FIRST_ADAPTER_PASSES, candidate, incumbent, base, baseline)
        for metric in self.metrics:
            _metric(reference, metric, who)
        worse = self.worse_on(candidate, reference)
        promote = not worse
        reason = (
            f"No worse than the {who} on {', '.join(self.metrics)}."
            if promote
            else f"Worse than the {who} on {', '.join(worse)}."
        )
        return _decision(self, promote, reason, candidate, incumbent, base, baseline)


@dataclass(frozen=True)
class ClassifierMargin:
    """The measured rule for small classifiers: clearly above the base model (a shuffled-label
    candidate scores near chance and would pass a plain no-regression gate), above the lexical
    baseline by more than ``min_over_baseline`` (a learned classifier that a bag of words matches
    is not worth a model call), and within noise of the incumbent (180 held-out items have a
    standard error of about 3 points).  Without a baseline (none could be trained) that condition
    is left out."""

    metric: str = "accuracy"
    min_over_base: float = 0.10
    max_drop_vs_incumbent: float = 0.03
    min_over_baseline: float = 0.0
    name: str = "classifier_margin"

    def parameters(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "min_over_base": self.min_over_base,
            "max_drop_vs_incumbent": self.max_drop_vs_incumbent,
            "min_over_baseline": self.min_over_baseline,
        }

    def decide(
        self,
        candidate: Metrics,
        incumbent: Metrics | None,
        base: Metrics | None,
        baseline: Metrics | None = None,
    ) -> Decision:
        metric = self.metric
        c = _metric(candidate, metric, "candidate")
        b = _metric(base, metric, "base model")

        def reject(reason: str) -> Decision:
            return _decision(self, False, reason, candidate, incumbent, base, baseline)

        if c < b + self.min_over_base:
            return reject(f"{metric} {c:.3f} is not {self.min_over_base:g} above the base model's {b:.3f}.")
        if baseline is not None:
            lexical = _metric(baseline, metric, "lexical baseline")
            if lexical >= c:
                as_well = "as well as" if lexical == c else "better than"
                return reject(
                    f"The bag-of-words baseline scores {metric} {lexical:.3f}, {as_well} the candidate's "
                    f"{c:.3f}: a bag-of-words classifier does as well, so a learned model is not "
                    "worth a model call."
                )
            if not c > lexical + self.min_over_baseline:
                return reject(
                    f"{metric} {c:.3f} beats the bag-of-words baseline's {lexical:.3f} by only "
                    f"{c - lexical:.3f}; it needs more than {self.min_over_baseline:g} to be worth a "
                    "model call."
                )
        if incumbent is not None:
            i = _metric(incumbent, metric, "incumbent")
            if c < i - self.max_drop_vs_incumbent:
                return reject(
                    f"{metric} {c:.3f} drops more than {self.max_drop_vs_incumbent:g} below the "
                    f"incumbent's {i:.3f}."
                )
        reason = f"{metric} {c:.3f} clears the base model ({b:.3f}) by {c - b:.3f}"
        if baseline is not None:
            reason += f", beats the bag-of-words baseline ({float(baseline[metric]):.3f})"
        reason += f" and stays within {self.max_drop_vs_incumbent:g} of the incumbent." if incumbent else "."
        return _decision(self, True, reason, candidate, incumbent, base, baseline)


Judge = Callable[[Metrics, Metrics | None, Metrics | None], tuple[bool, str]]


@dataclass(frozen=True)
class Custom:
    """Any callable ``(candidate, incumbent, base) -> (promote, reason)``."""

    judge: Judge
    name: str = "custom"

    def parameters(self) -> dict[str, Any]:
        return {"callable": getattr(self.judge, "__qualname__", repr(self.judge))}

    def decide(
        self,
        candidate: Metrics,
        incumbent: Metrics | None,
        base: Metrics | None,
        baseline: Metrics | None = None,
    ) -> Decision:
        promote, reason = self.judge(candidate, incumbent, base)
        return _decision(self, bool(promote), str(reason), candidate, incumbent, base, baseline)


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


def required_metrics(policy: GatePolicy) -> frozenset[str]:
    """The metrics a policy needs from the candidate (none known for a custom one)."""
    if isinstance(policy, NoRegression | MustImprove | ClassifierMargin):
        return frozenset({policy.metric})
    if isinstance(policy, ParetoDominant):
        return frozenset(policy.metrics)
    return frozenset()


SIDES = (("candidate", "candidate"), ("incumbent", "incumbent"), ("base", "base model"))


def figures(numbers: Mapping[str, Any]) -> str:
    """A recorded decision's main metric on every side, in one line: ``accuracy: candidate 0.883,
    incumbent -, base model 0.133, bag of words 0.889`` (chat models and decisions recorded before
    the lexical baseline existed have no bag-of-words figure)."""
    parameters = numbers.get("parameters") or {}
    candidate = numbers.get("candidate") or {}
    metric = parameters.get("metric") or next(iter(parameters.get("metrics") or ()), None)
    metric = metric or ("accuracy" if "accuracy" in candidate else next(iter(candidate), None))
    if metric is None:
        return "no numbers"
    sides = [*SIDES, ("baseline", "bag of words")] if numbers.get("baseline") is not None else SIDES
    shown = []
    for key, name in sides:
        value = (numbers.get(key) or {}).get(metric)
        shown.append(f"{name} {value:.4g}" if isinstance(value, int | float) else f"{name} -")
    return f"{metric}: {', '.join(shown)}"


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


def latest_decision(engine: Engine, model_id: str) -> GateDecisionRecord | None:
    with Session(engine) as s:
        query = select(GateDecisionRecord).where(GateDecisionRecord.model_id == model_id)
        return s.exec(query.order_by(col(GateDecisionRecord.id).desc())).first()


def baseline_as_good(numbers: Mapping[str, Any]) -> bool:
    """Did this recorded decision find the lexical baseline at least as good as the candidate on
    the gate's metric?  False for decisions without a baseline."""
    metric = (numbers.get("parameters") or {}).get("metric") or "accuracy"
    lexical = (numbers.get("baseline") or {}).get(metric)
    learned = (numbers.get("candidate") or {}).get(metric)
    if lexical is None or learned is None:
        return False
    return bool(better_or_equal(metric, float(lexical), float(learned)))


def decision_history(engine: Engine, model_id: str | None = None) -> list[GateDecisionRecord]:
    with Session(engine) as s:
        query = select(GateDecisionRecord)
        if model_id is not None:
            query = query.where(GateDecisionRecord.model_id == model_id)
        return list(s.exec(query.order_by(col(GateDecisionRecord.id))))
