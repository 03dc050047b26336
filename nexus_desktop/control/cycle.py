"""One cycle of the loop: its ledger row around its body.

A body fills a ``CycleRecord`` as it goes (changes, notes, problems); ``run_cycle`` opens the row,
runs the body under a deadline a little short of the task's time limit (``margin``), so the row
can still be closed with how far it got, and closes it: ``ok`` without problems, ``partial`` when
some items were handled, else ``failed``.  Every database call goes to a thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from nexus_desktop.control.ledger import KIND_WORDS, abandon_stale, close_cycle, open_cycle
from nexus_desktop.control.runners import TaskTimeout

log = logging.getLogger(__name__)

MINUTE, HOUR = 60.0, 3600.0


class LoopError(RuntimeError):
    """A cycle that ended partial or failed; str() says which parts and why."""


@dataclass
class CycleRecord:
    """What one cycle found, as it goes."""

    changes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    done: int = 0
    """Items (models, promotions, steps) handled without a problem."""
    detail: dict[str, Any] = field(default_factory=dict)
    summary: str = ""
    cycle_id: int = 0
    deadline: float = 0.0
    """``time.monotonic()`` by which the body must be done."""

    def outcome(self) -> str:
        if not self.problems:
            return "ok"
        return "partial" if self.done else "failed"


@dataclass(frozen=True)
class StepResult:
    kind: str
    cycle_id: int
    outcome: str
    summary: str
    changes: tuple[str, ...]
    notes: tuple[str, ...]
    problems: tuple[str, ...]
    detail: dict[str, Any]
    timed_out: bool = False


Body = Callable[[CycleRecord], Awaitable[None]]


async def run_cycle(
    engine: Engine, kind: str, timeout: float, body: Body, *, parent: int | None = None
) -> StepResult:
    await asyncio.to_thread(abandon_stale, engine)
    cycle_id = await asyncio.to_thread(open_cycle, engine, kind, parent=parent, timeout_seconds=timeout)
    record = CycleRecord(cycle_id=cycle_id)
    record.deadline = time.monotonic() + max(1.0, timeout - margin(timeout))
    timed_out = False
    try:
        await asyncio.wait_for(body(record), max(0.5, record.deadline - time.monotonic()))
    except TimeoutError:
        timed_out = True
        waiting = record.detail.get("waiting_for")
        still = f"; job {waiting} is still training and is judged when it finishes" if waiting else ""
        record.problems.append(f"it ran out of its {duration(timeout)} limit{still}")
    except asyncio.CancelledError:
        record.problems.append("it was stopped before it finished (the app closed, or its time ran out)")
        await asyncio.shield(asyncio.to_thread(_close, engine, kind, record))
        raise
    except Exception as error:
        log.warning("The %s failed", KIND_WORDS[kind], exc_info=True)
        record.problems.append(one_line(error))
    if timed_out:
        record.done = 0  # a cycle cut short did not do its job, whatever it finished first
    return await asyncio.to_thread(_close, engine, kind, record, timed_out)


def _close(engine: Engine, kind: str, record: CycleRecord, timed_out: bool = False) -> StepResult:
    outcome = record.outcome()
    summary = _summary(kind, record, outcome)
    detail = {
        **record.detail,
        "summary": summary,
        "notes": record.notes,
        "problems": record.problems,
        "timed_out": timed_out,
    }
    report_path = detail.pop("report_path", None)
    close_cycle(engine, record.cycle_id, outcome, record.changes, detail, report_path=report_path)
    return StepResult(
        kind,
        record.cycle_id,
        outcome,
        summary,
        tuple(record.changes),
        tuple(record.notes),
        tuple(record.problems),
        detail,
        timed_out,
    )


def verdict(result: StepResult) -> str:
    """What a scheduler runner returns: the summary, or an error the scheduler counts."""
    if result.outcome == "ok":
        return result.summary
    if result.timed_out:
        raise TaskTimeout(result.summary)
    raise LoopError(result.summary)


def _summary(kind: str, record: CycleRecord, outcome: str) -> str:
    if outcome != "ok":
        head = "Partly done" if outcome == "partial" else "Failed"
        return f"{head}: " + "; ".join(record.problems) + "."
    if record.summary:
        return record.summary
    if record.changes:
        return " ".join(record.changes)
    if record.notes:
        return " ".join(record.notes)
    return f"The {KIND_WORDS[kind]} found nothing to do."


def margin(timeout: float) -> float:
    """Time kept back to close the row before the scheduler's own limit strikes."""
    return min(30.0, timeout * 0.05)


def duration(seconds: float) -> str:
    if seconds >= HOUR:
        return f"{seconds / HOUR:g} h"
    if seconds >= MINUTE:
        return f"{seconds / MINUTE:g} min"
    return f"{seconds:g} s"


def one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
