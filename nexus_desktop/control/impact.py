"""Impact assessment: did a promotion make the chat better for the person using it?

For each promotion (an ``adapter_event`` that promoted an adapter) in the last ``days`` days:
the gate's numbers (candidate, incumbent and base per metric, when a gate decided it), and live
signals in the window since the promotion (until the model's next promotion or rollback, or now)
against an equally long window just before it:

- replies: the character's replies written in the window;
- thumbs up and thumbs down: ratings kept on those replies (``swipe_stats[i]["rating"]``);
- corrections: collected ``correction`` and ``edit`` examples (one ``sft`` row each);
- route confirmations and corrections: collected ``route_confirmed``/``route_corrected`` rows.

Each count is also given per 100 replies, so windows of different traffic compare.  A persona
model is judged on its own character's replies and corrections; every other model on all of them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from nexus_desktop.control.ledger import as_utc
from nexus_desktop.db.tables import Character, Chat, Message
from nexus_desktop.training.examples import ROUTER_DATASET
from nexus_desktop.training.tables import AdapterEvent, GateDecisionRecord, TrainingExample
from nexus_desktop.training.zoo import ZooSpec

CORRECTION_SIGNALS = ("correction", "edit")
PERSONA_PREFIX = "persona:"


@dataclass(frozen=True)
class Signals:
    replies: int = 0
    thumbs_up: int = 0
    thumbs_down: int = 0
    corrections: int = 0
    route_confirmations: int = 0
    route_corrections: int = 0

    def per_100(self, count: int) -> float | None:
        """``count`` per 100 replies; None when there were no replies to compare against."""
        return round(100.0 * count / self.replies, 1) if self.replies else None

    def rates(self) -> dict[str, float | None]:
        return {
            "thumbs_up": self.per_100(self.thumbs_up),
            "thumbs_down": self.per_100(self.thumbs_down),
            "corrections": self.per_100(self.corrections),
            "route_confirmations": self.per_100(self.route_confirmations),
            "route_corrections": self.per_100(self.route_corrections),
        }


@dataclass(frozen=True)
class Impact:
    model_id: str
    name: str
    event_id: int
    job_id: int | None
    promoted_at: datetime
    by_hand: bool
    still_active: bool
    gate: dict[str, Any] | None
    """policy, reason, and the candidate, incumbent, base and lexical baseline metrics; None:
    promoted by hand with no gate decision on record."""
    window_days: float
    before: Signals
    since: Signals
    scope: str
    """Whose replies were counted: a character's name, or "all characters"."""

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["promoted_at"] = self.promoted_at.isoformat()
        data["before_rates"] = self.before.rates()
        data["since_rates"] = self.since.rates()
        return data


def assess(
    engine: Engine, specs: dict[str, ZooSpec], *, now: datetime | None = None, days: int = 30
) -> list[Impact]:
    """Every promotion of the last ``days`` days, newest first."""
    moment = as_utc(now or datetime.now(UTC))
    with Session(engine) as s:
        events = list(s.exec(select(AdapterEvent).order_by(col(AdapterEvent.id))))
    found = []
    for index, event in enumerate(events):
        promoted_at = as_utc(event.at)
        if event.action != "promote" or promoted_at < moment - timedelta(days=days):
            continue
        later = [e for e in events[index + 1 :] if e.model_id == event.model_id]
        end = min(as_utc(later[0].at), moment) if later else moment
        span = max(end - promoted_at, timedelta(0))
        spec = specs.get(event.model_id)
        character = _character(spec)
        scope = dict(character=character, persona=spec.dataset if character and spec else None)
        assert event.id is not None
        found.append(
            Impact(
                model_id=event.model_id,
                name=spec.name if spec else event.model_id,
                event_id=event.id,
                job_id=event.job_id,
                promoted_at=promoted_at,
                by_hand=event.override,
                still_active=not later,
                gate=_gate_numbers(engine, event),
                window_days=round(span.total_seconds() / 86400, 2),
                before=live_signals(engine, promoted_at - span, promoted_at, **scope),
                since=live_signals(engine, promoted_at, end, **scope),
                scope=character or "all characters",
            )
        )
    found.reverse()
    return found


def _character(spec: ZooSpec | None) -> str | None:
    if spec is None or spec.task != "chat_persona" or not spec.dataset.startswith(PERSONA_PREFIX):
        return None
    return spec.dataset[len(PERSONA_PREFIX) :]


def _gate_numbers(engine: Engine, event: AdapterEvent) -> dict[str, Any] | None:
    with Session(engine) as s:
        record = s.get(GateDecisionRecord, event.decision_id) if event.decision_id is not None else None
        if record is None and event.job_id is not None:
            query = select(GateDecisionRecord).where(GateDecisionRecord.job_id == event.job_id)
            record = s.exec(query.order_by(col(GateDecisionRecord.id).desc())).first()
    if record is None:
        return None
    numbers = record.numbers or {}
    return {
        "decision_id": record.id,
        "policy": record.policy,
        "approved": record.promote,
        "reason": record.reason,
        "candidate": numbers.get("candidate") or {},
        "incumbent": numbers.get("incumbent"),
        "base": numbers.get("base"),
        "baseline": numbers.get("baseline"),
    }


def live_signals(
    engine: Engine,
    start: datetime,
    end: datetime,
    *,
    character: str | None = None,
    persona: str | None = None,
) -> Signals:
    """What the person did in ``[start, end)``: replies, ratings, corrections, route verdicts."""
    lo, hi = as_utc(start), as_utc(end)
    if hi <= lo:
        return Signals()
    with Session(engine) as s:
        replies = select(Message.swipe_stats, Message.swipe_index).where(
            Message.role == "assistant", Message.created_at >= lo, Message.created_at < hi
        )
        if character is not None:
            replies = (
                replies.join(Chat, col(Chat.id) == col(Message.chat_id))
                .join(Character, col(Character.id) == col(Chat.character_id))
                .where(Character.name == character)
            )
        up = down = count = 0
        for stats, index in s.exec(replies):
            count += 1
            rating = _rating(stats, index)
            up += rating == 1
            down += rating == -1

        def examples(signals: tuple[str, ...], dataset: str | None, kind: str | None = None) -> int:
            query = (
                select(func.count())
                .select_from(TrainingExample)
                .where(
                    col(TrainingExample.signal).in_(signals),
                    TrainingExample.created_at >= lo,
                    TrainingExample.created_at < hi,
                )
            )
            if dataset is not None:
                query = query.where(TrainingExample.dataset == dataset)
            if kind is not None:
                query = query.where(TrainingExample.kind == kind)
            return int(s.exec(query).one())

        # A correction is stored as an sft example and a preference pair: count one of them.
        corrections = examples(CORRECTION_SIGNALS, persona, "sft")
        confirmed = examples(("route_confirmed",), ROUTER_DATASET)
        corrected = examples(("route_corrected",), ROUTER_DATASET)
    return Signals(count, up, down, corrections, confirmed, corrected)


def _rating(stats: Any, index: Any) -> int | None:
    """The rating kept on the shown alternative; damaged stats count as unrated."""
    if not isinstance(stats, list) or not isinstance(index, int) or not 0 <= index < len(stats):
        return None
    entry = stats[index]
    rating = entry.get("rating") if isinstance(entry, dict) else None
    return rating if rating in (1, -1) else None
