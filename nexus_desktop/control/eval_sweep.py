"""The eval sweep: every active adapter whose zoo model has a benchmark suite is benchmarked again,
with the base model beside it, and judged by its zoo gate policy against the base model.  One
that now falls below its gate is rolled back through the registry, the reason recorded on the
rollback.  An adapter a person promoted by hand (an override) is reported but kept: the loop does
not undo a person's explicit choice."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from nexus_desktop.control.cycle import CycleRecord, one_line
from nexus_desktop.control.metrics import RecordCall
from nexus_desktop.training import pipeline
from nexus_desktop.training.gate import policy_from
from nexus_desktop.training.registry import AdapterRegistry
from nexus_desktop.training.zoo import ZooSpec, load_zoo


async def eval_sweep(
    engine: Engine,
    record: CycleRecord,
    *,
    zoo_folder: Path | None = None,
    repeats: int = 2,
    consistency_items: int = 20,
    record_call: RecordCall | None = None,
) -> None:
    registry = AdapterRegistry(engine)
    specs = await asyncio.to_thread(load_zoo, zoo_folder)
    models: dict[str, Any] = {}
    record.detail["models"] = models
    for spec in specs.values():
        active = await asyncio.to_thread(registry.active, spec.id)
        if active is None:
            continue
        label = adapter_label(active.job_id, active.adapter_path)
        if not (spec.benchmark and spec.labelled):
            record.notes.append(f"{spec.name}: {label} has no benchmark suite; not re-checked.")
            continue
        try:
            models[spec.id] = entry = await _judge_again(
                spec, active.adapter_path, repeats, consistency_items, record_call
            )
        except Exception as error:
            record.problems.append(f"{spec.name}: the benchmark failed: {one_line(error)}")
            models[spec.id] = {"error": one_line(error)}
            continue
        entry.update(adapter=str(active.adapter_path), job=active.job_id, by_hand=active.override)
        record.done += 1
        reason = str(entry["reason"]).rstrip(".")
        if entry["passes"]:
            record.notes.append(f"{spec.name}: {label} still passes its gate: {reason}.")
        elif active.override:
            entry["action"] = "kept"
            record.notes.append(
                f"{spec.name}: {label} falls below its gate ({reason}) but was promoted by hand; "
                "kept. Roll it back in Training if you agree."
            )
        else:
            now_on = await asyncio.to_thread(_roll_back, registry, spec, reason)
            entry["action"] = "rolled_back"
            record.changes.append(
                f"{spec.name}: rolled back {label}, which now falls below its gate ({reason}); "
                f"it now runs on {now_on}."
            )
    if not models and not record.notes:
        record.summary = "No zoo model runs on an adapter; nothing to re-check."


async def _judge_again(
    spec: ZooSpec, adapter: Path, repeats: int, consistency_items: int, record_call: RecordCall | None
) -> dict[str, Any]:
    async def score(adapter: Path | None) -> dict[str, float]:
        return await pipeline.benchmark(
            spec, adapter, repeats=repeats, consistency_items=consistency_items, record_call=record_call
        )

    base = await score(None)
    now = await score(adapter)
    # No incumbent: against the base model, is the adapter still worth having at all?
    decision = policy_from(spec.gate).decide(now, None, base)
    return {
        "policy": decision.policy,
        "passes": decision.promote,
        "reason": decision.reason,
        "candidate": decision.candidate,
        "base": decision.base,
        "parameters": decision.parameters,
    }


def _roll_back(registry: AdapterRegistry, spec: ZooSpec, reason: str) -> str:
    registry.rollback(spec.id, reason=f"Eval sweep: {reason}.", override=False)
    active = registry.active(spec.id)
    return adapter_label(active.job_id, active.adapter_path) if active else "its base model"


def adapter_label(job_id: int | None, adapter: Path) -> str:
    return f"job {job_id}'s adapter" if job_id is not None else adapter.name
