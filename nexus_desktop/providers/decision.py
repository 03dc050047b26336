"""The routing decision itself: the candidates' static order per task, then the measured
success rates, as plain functions of plain values (no I/O), so every rule is tested directly.

The static order for code generation and judging: the remote server when one is configured, then
the user's local models that fit this PC (for code, code models first; larger before smaller),
then the bundled default with a warning.  Routing (which model picks a tool) runs on the remote
server or on the chat's own model, which is loaded already.  Chat runs on the model the user
picked.  Among sources with ``MIN_OUTCOMES`` recorded outcomes for the task, one whose success
rate is ``RATE_MARGIN`` better wins over that order; a usual choice that keeps failing lets an
untried local model have a go until it has outcomes of its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

TaskType = Literal["chat", "routing", "codegen", "judging"]
TASK_TYPES: tuple[TaskType, ...] = get_args(TaskType)
SourceKind = Literal["remote", "local", "default"]

MIN_OUTCOMES = 5
"""Outcomes a source needs for a task before its success rate counts."""
RATE_MARGIN = 0.25
"""How much better a measured rate must be to beat the static order."""
FAILING_RATE = 0.5
"""Below this (with enough outcomes) the usual choice lets an untried local model try."""
TOO_LARGE = "too large for this PC"

DEFAULT_CODE_WARNING = (
    "The bundled default model will rarely succeed at writing code: configure a remote provider "
    "in Settings → Remote server, or put a larger GGUF (a 7B coder model) in the models folder."
)
DEFAULT_JUDGE_WARNING = (
    "The bundled default model judges poorly: configure a remote provider in Settings → Remote "
    "server, or put a larger GGUF in the models folder."
)


@dataclass(frozen=True)
class RouteDecision:
    """Which source a task runs on, and why (shown on the build card and by ``nexus providers``)."""

    task: TaskType
    source_name: str
    """``remote: gpt-4o``, ``local: qwen2.5-coder-7b-instruct-q4_k_m.gguf``,
    ``default: SmolLM2-135M-Instruct.Q4_1.gguf``."""
    kind: SourceKind
    reason: str
    """One sentence: why this source."""
    warning: str | None = None
    """What the user should know (the default model rarely succeeds at code), or None."""
    decision_id: int | None = None
    """The persisted ``route_decision`` row; ``record_outcome`` fills in its outcome."""


@dataclass(frozen=True)
class SourceRate:
    """Recorded outcomes of one source on one task type."""

    source_name: str
    task: TaskType
    ok: int
    total: int

    @property
    def rate(self) -> float:
        return self.ok / self.total if self.total else 0.0


@dataclass(frozen=True)
class Candidate:
    """A source the router may pick: how to open it and what ranks it."""

    name: str
    kind: SourceKind
    path: Path | None = None
    """The GGUF file of a local or default source."""
    size_bytes: int = 0
    fit: str = ""
    """``llm.vram_fit.fit_by_size``'s verdict for a local file ("fits on GPU", ...); "" for remote."""
    is_chat: bool = False
    """The chat's own source (the model picker's choice)."""

    @property
    def is_code_model(self) -> bool:
        return self.path is not None and "code" in self.path.name.lower()

    @property
    def fits(self) -> bool:
        return self.fit != TOO_LARGE


class UnknownSourceError(ValueError):
    """A ``--source`` naming no source the router knows; str() lists the names."""

    def __init__(self, wanted: str, names: Sequence[str]) -> None:
        super().__init__(f"No source is called {wanted!r}; choose one of: {', '.join(names)}.")


def find_source(wanted: str, candidates: Sequence[Candidate]) -> Candidate:
    """The candidate ``wanted`` names: its full name, the part after ``kind:``, a file's stem, or
    ``remote`` / ``default`` (there is one of each at most)."""
    key = wanted.strip().lower()
    for candidate in candidates:
        short = candidate.name.split(":", 1)[-1].strip().lower()
        stem = candidate.path.stem.lower() if candidate.path is not None else ""
        kind = candidate.kind if candidate.kind != "local" else ""
        if key in (candidate.name.lower(), short, stem, kind):
            return candidate
    raise UnknownSourceError(wanted, [c.name for c in candidates])


def static_order(task: TaskType, candidates: Sequence[Candidate]) -> list[Candidate]:
    """The usual order for ``task``, best first; sources too large for this PC are left out."""
    remote = [c for c in candidates if c.kind == "remote"]
    if task == "chat":
        return [c for c in candidates if c.is_chat]
    if task == "routing":
        # A second model loaded only to pick a tool costs more memory than the choice is worth.
        return remote + [c for c in candidates if c.is_chat and c.kind != "remote"]
    local = [c for c in candidates if c.kind == "local" and c.fits]
    if task == "codegen":
        local.sort(key=lambda c: (c.is_code_model, c.size_bytes), reverse=True)
    else:
        local.sort(key=lambda c: c.size_bytes, reverse=True)
    default = [c for c in candidates if c.kind == "default"]
    # A model smaller than the bundled one is no better than it.
    floor = default[0].size_bytes if default else 0
    larger = [c for c in local if c.size_bytes >= floor]
    return remote + larger + default + [c for c in local if c.size_bytes < floor]


def decide(
    task: TaskType,
    candidates: Sequence[Candidate],
    rates: Mapping[str, SourceRate],
    prefer: str | None = None,
) -> RouteDecision:
    """The decision for ``task`` (not yet persisted); ``rates`` maps a source name to its outcomes
    on this task.  Raises ``UnknownSourceError`` for a ``prefer`` naming no candidate, and
    ``LookupError`` when there is no source at all."""
    if prefer:
        chosen = find_source(prefer, candidates)
        too_large = f"{chosen.name} may not run here: it is {TOO_LARGE}." if not chosen.fits else None
        warning = too_large or _warning(task, chosen)
        return RouteDecision(task, chosen.name, chosen.kind, f"You asked for {chosen.name}.", warning)
    order = static_order(task, candidates)
    if not order:
        raise LookupError(
            "No model source is available: install the bundled model (see the README), pick a GGUF "
            "file in Settings → Model, or configure a remote provider."
        )
    usual = order[0]
    chosen, reason = _by_rates(task, order, rates) or (usual, _static_reason(task, usual, candidates))
    return RouteDecision(task, chosen.name, chosen.kind, reason, _warning(task, chosen))


def _by_rates(
    task: TaskType, order: list[Candidate], rates: Mapping[str, SourceRate]
) -> tuple[Candidate, str] | None:
    """A measured winner over the usual first choice, with the reason; None to keep the order."""
    usual = order[0]
    usual_rate = rates.get(usual.name)
    if usual_rate is None or usual_rate.total < MIN_OUTCOMES:
        return None  # too little known about the usual choice to overrule it
    measured = [c for c in order[1:] if (r := rates.get(c.name)) is not None and r.total >= MIN_OUTCOMES]
    if measured:
        best = max(measured, key=lambda c: rates[c.name].rate)
        best_rate = rates[best.name]
        if best_rate.rate >= usual_rate.rate + RATE_MARGIN:
            return best, (
                f"{best.name} succeeded in {best_rate.ok} of {best_rate.total} {task} tasks and "
                f"{usual.name} in only {usual_rate.ok} of {usual_rate.total}, so the measured rate "
                "wins over the usual order."
            )
    # Builds and judgements record outcomes on whichever source ran them; routing has none to try.
    if usual_rate.rate < FAILING_RATE and task in ("codegen", "judging"):
        untried = [
            c for c in order[1:] if c.kind == "local" and (rates.get(c.name) or _NONE).total < MIN_OUTCOMES
        ]
        if untried:
            return untried[0], (
                f"{usual.name} succeeded in only {usual_rate.ok} of {usual_rate.total} {task} tasks, "
                f"so {untried[0].name} gets a try until it has {MIN_OUTCOMES} outcomes of its own."
            )
    return None


_NONE = SourceRate("", "chat", 0, 0)


def _static_reason(task: TaskType, chosen: Candidate, candidates: Sequence[Candidate]) -> str:
    too_large = [c.name for c in candidates if not c.fits]
    passed = f" Passed over as {TOO_LARGE}: {', '.join(too_large)}." if too_large else ""
    if task == "chat":
        return f"The chat runs on the model picked in Settings → Model ({chosen.name})."
    if chosen.kind == "remote":
        return "A remote OpenAI-compatible provider is configured: the strongest source."
    if task == "routing":
        return f"No remote provider is configured, so the chat's own model ({chosen.name}) picks tools."
    if chosen.kind == "local":
        code = task == "codegen" and chosen.is_code_model
        what = "the largest local code model" if code else "the largest local model"
        return f"No remote provider is set up; {chosen.name} is {what} that runs here ({chosen.fit}).{passed}"
    return (
        "No remote provider is configured and no larger local model runs here, so the bundled "
        f"default is used.{passed}"
    )


def _warning(task: TaskType, chosen: Candidate) -> str | None:
    if chosen.kind != "default":
        return None
    if task == "codegen":
        return DEFAULT_CODE_WARNING
    return DEFAULT_JUDGE_WARNING if task == "judging" else None
