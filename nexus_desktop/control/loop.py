"""The autonomous loop's built-in tasks: training check, eval sweep, impact assessment, and the
daily cycle that runs the three in order and writes the daily improvement report.

Each public method is a scheduler ``Runner`` (takes its time limit in seconds, returns one line,
raises when the cycle ended partial or failed) and writes its own ledger row (``cycle.run_cycle``);
inside a daily cycle each step is a row too, pointing at the daily one (``detail["cycle"]``).  Every
database read and write goes to a thread: the tasks never block an event loop, whichever runs them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from nexus_desktop.control import impact, report
from nexus_desktop.control.cycle import (
    HOUR,
    MINUTE,
    Body,
    CycleRecord,
    LoopError,
    StepResult,
    run_cycle,
    verdict,
)
from nexus_desktop.control.eval_sweep import eval_sweep
from nexus_desktop.control.health import loop_health
from nexus_desktop.control.ledger import (
    DAILY,
    EVAL_SWEEP,
    IMPACT,
    KIND_WORDS,
    TRAINING_CHECK,
    Cycle,
    abandon_stale,
    utc_now,
)
from nexus_desktop.control.metrics import RecordCall
from nexus_desktop.control.training_check import training_check
from nexus_desktop.training.service import TrainingService
from nexus_desktop.training.zoo import load_zoo

__all__ = ["DAILY_TIMEOUT", "STEP_TIMEOUTS", "Loop", "LoopError", "StepResult"]

log = logging.getLogger(__name__)

STEP_TIMEOUTS = {TRAINING_CHECK: 2 * HOUR, EVAL_SWEEP: 1 * HOUR, IMPACT: 10 * MINUTE}
"""Each step's own limit; a CPU LoRA run of the router is ~5 min, a full benchmark ~2 min."""
DAILY_TIMEOUT = sum(STEP_TIMEOUTS.values()) + 20 * MINUTE


class Loop:
    def __init__(
        self,
        engine: Engine,
        training: TrainingService,
        *,
        reports_dir: Path,
        zoo_folder: Path | None = None,
        bench_repeats: int = 2,
        bench_consistency_items: int = 20,
        poll_seconds: float = 1.0,
        step_timeouts: dict[str, float] | None = None,
        impact_days: int = 30,
        record_call: RecordCall | None = None,
    ) -> None:
        """``bench_*``: the eval sweep's benchmark settings (the gate's own by default);
        ``record_call`` records its benchmark calls (the Inference dashboard)."""
        self.engine = engine
        self.training = training
        self.reports_dir = reports_dir
        self.zoo_folder = zoo_folder
        self.bench_repeats = bench_repeats
        self.bench_consistency_items = bench_consistency_items
        self.poll_seconds = poll_seconds
        self.step_timeouts = {**STEP_TIMEOUTS, **(step_timeouts or {})}
        self.impact_days = impact_days
        self.record_call = record_call
        # One run of each kind at a time, across threads and event loops (the daily cycle's
        # training check and the half-hourly one must not both train the same model).
        self._locks = {kind: threading.Lock() for kind in (TRAINING_CHECK, EVAL_SWEEP, IMPACT, DAILY)}

    # The scheduler's runners ---------------------------------------------------------------------

    async def training_check(self, timeout: float) -> str:
        return verdict(await self._cycle(TRAINING_CHECK, timeout, self._training_check))

    async def eval_sweep(self, timeout: float) -> str:
        return verdict(await self._cycle(EVAL_SWEEP, timeout, self._eval_sweep))

    async def impact_assessment(self, timeout: float) -> str:
        return verdict(await self._cycle(IMPACT, timeout, self._impact))

    async def daily_cycle(self, timeout: float) -> str:
        return verdict(await self._cycle(DAILY, timeout, self._daily))

    async def abandon_stale(self) -> list[int]:
        """Close the rows a killed app left running (call once at start)."""
        return await asyncio.to_thread(abandon_stale, self.engine)

    async def _cycle(self, kind: str, timeout: float, body: Body, *, parent: int | None = None) -> StepResult:
        lock = self._locks[kind]
        if not lock.acquire(blocking=False):
            busy = f"Another {KIND_WORDS[kind]} is running; left to it."
            return StepResult(kind, 0, "ok", busy, (), (), (), {})
        try:
            return await run_cycle(self.engine, kind, timeout, body, parent=parent)
        finally:
            lock.release()

    # The steps -----------------------------------------------------------------------------------

    async def _training_check(self, record: CycleRecord) -> None:
        await training_check(self.engine, self.training, record, poll_seconds=self.poll_seconds)

    async def _eval_sweep(self, record: CycleRecord) -> None:
        await eval_sweep(
            self.engine,
            record,
            zoo_folder=self.zoo_folder,
            repeats=self.bench_repeats,
            consistency_items=self.bench_consistency_items,
            record_call=self.record_call,
        )

    async def _impact(self, record: CycleRecord) -> None:
        specs = await asyncio.to_thread(load_zoo, self.zoo_folder)
        found = await asyncio.to_thread(impact.assess, self.engine, specs, days=self.impact_days)
        record.detail["promotions"] = [item.as_dict() for item in found]
        record.done = len(found)
        if not found:
            record.summary = f"No promotion in the last {self.impact_days} days to assess."
            return
        parts = []
        for item in found[:3]:
            before, since = item.before.rates(), item.since.rates()
            parts.append(
                f"{item.name} (promoted {item.promoted_at:%Y-%m-%d}): thumbs up "
                f"{_rate(before['thumbs_up'])} → {_rate(since['thumbs_up'])} per 100 replies"
            )
        more = f" and {len(found) - 3} more" if len(found) > 3 else ""
        record.summary = f"Assessed {len(found)} promotion(s): " + "; ".join(parts) + more + "."

    # The daily cycle -----------------------------------------------------------------------------

    async def _daily(self, record: CycleRecord) -> None:
        steps: list[StepResult] = []
        plan: list[tuple[str, Body]] = [
            (TRAINING_CHECK, self._training_check),
            (EVAL_SWEEP, self._eval_sweep),
            (IMPACT, self._impact),
        ]
        reserve = 2 * MINUTE  # for the report
        for index, (kind, body) in enumerate(plan):
            # Each step gets its own limit, less what the later steps need, but never less than
            # half of what is left: a late start squeezes every step rather than skipping the last.
            later = sum(self.step_timeouts[k] for k, _ in plan[index + 1 :])
            left = record.deadline - time.monotonic() - reserve
            budget = min(self.step_timeouts[kind], max(left - later, left / 2))
            if budget < 5:
                record.problems.append(f"the {KIND_WORDS[kind]} did not run: no time was left")
                continue
            step = await self._cycle(kind, budget, body, parent=record.cycle_id)
            steps.append(step)
            record.changes.extend(step.changes)
            if step.outcome == "ok":
                record.done += 1
            else:
                record.problems.append(f"the {KIND_WORDS[kind]} was {step.outcome}: {step.summary}")
        if not record.changes:
            record.summary = f"Nothing changed; {len(steps)} of {len(plan)} steps ran."
        record.detail["steps"] = [
            {"kind": s.kind, "cycle": s.cycle_id, "outcome": s.outcome, "summary": s.summary} for s in steps
        ]
        zoo = await _zoo_rows(self.training)
        await asyncio.to_thread(self._write_report, record, steps, zoo)

    def _write_report(
        self, record: CycleRecord, steps: list[StepResult], zoo: tuple[dict[str, Any], ...]
    ) -> None:
        outcome = record.outcome()
        now = utc_now()
        # The label as it will read once this cycle is closed (it is still running now).
        finished = Cycle(record.cycle_id, DAILY, now, now, outcome, tuple(record.changes), {})
        health = loop_health(self.engine, now, assume=finished)
        try:
            path = report.write_daily_report(
                self.reports_dir,
                report.DailyReport(
                    cycle_id=record.cycle_id,
                    finished_at=now,
                    outcome=outcome,
                    changes=tuple(record.changes),
                    problems=tuple(record.problems),
                    steps=tuple(dataclasses.asdict(step) for step in steps),
                    health=health,
                    zoo=zoo,
                    tasks=report.task_counts(self.engine, since=now - report.DAY),
                ),
            )
        except OSError as error:
            record.problems.append(f"the report could not be written: {error}")
            return
        record.detail["report_path"] = str(path)


async def _zoo_rows(training: TrainingService) -> tuple[dict[str, Any], ...]:
    try:
        rows = await training.zoo()
    except Exception as error:  # the report still says everything else
        log.warning("The zoo could not be read for the daily report: %s", error)
        return ()
    return tuple(
        {
            "model": row.model_id,
            "name": row.name,
            "new": row.new_examples,
            "threshold": row.threshold,
            "active": row.active_label,
        }
        for row in rows
    )


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"
