"""The adapter registry: which adapter each zoo model uses, and how it got there.

The history is append-only (``adapter_event``); the active adapter is the result of replaying it:
a promotion pushes an adapter, a rollback pops back to the one before (or to the base model).
Every adapter is checked against its base model before it becomes active, because llama.cpp
crashes on an adapter that does not fit.  The gate is the only way to an automatic promotion;
a person's promotion or rollback is recorded as an override.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from nexus_desktop.llm.gguf_check import inspect_model, validate_lora_adapter
from nexus_desktop.training.gate import Decision
from nexus_desktop.training.tables import AdapterEvent, GateDecisionRecord


class RegistryError(ValueError):
    """A promotion or rollback that cannot happen; str() says why and what to do."""


@dataclass(frozen=True)
class ActiveAdapter:
    model_id: str
    adapter_path: Path
    event_id: int
    job_id: int | None
    override: bool


class AdapterRegistry:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def history(self, model_id: str | None = None) -> list[AdapterEvent]:
        with Session(self.engine) as s:
            query = select(AdapterEvent)
            if model_id is not None:
                query = query.where(AdapterEvent.model_id == model_id)
            return list(s.exec(query.order_by(col(AdapterEvent.id))))

    def _stack(self, model_id: str) -> list[AdapterEvent]:
        stack: list[AdapterEvent] = []
        for event in self.history(model_id):
            if event.action == "promote":
                stack.append(event)
            elif event.action == "rollback" and stack:
                stack.pop()
        return stack

    def active(self, model_id: str) -> ActiveAdapter | None:
        """The adapter in use for a zoo model, or None for the base model alone."""
        stack = self._stack(model_id)
        if not stack or stack[-1].adapter_path is None:
            return None
        top = stack[-1]
        assert top.id is not None and top.adapter_path is not None
        return ActiveAdapter(model_id, Path(top.adapter_path), top.id, top.job_id, top.override)

    def promote(
        self,
        model_id: str,
        adapter: Path,
        base_model: Path,
        *,
        reason: str,
        job_id: int | None = None,
        decision_id: int | None = None,
        override: bool = True,
    ) -> AdapterEvent:
        """Make ``adapter`` active after checking that it fits ``base_model``.

        Without a gate decision this is a person's choice and is recorded as an override."""
        validate_lora_adapter(adapter, inspect_model(base_model))
        return self._append(
            AdapterEvent(
                model_id=model_id,
                action="promote",
                adapter_path=str(adapter),
                job_id=job_id,
                decision_id=decision_id,
                override=override,
                reason=reason,
            )
        )

    def promote_through_gate(
        self,
        model_id: str,
        adapter: Path,
        base_model: Path,
        decision: Decision,
        decision_id: int,
        job_id: int | None = None,
    ) -> AdapterEvent:
        """The automatic path: only a decision that says promote, and that is on record, promotes."""
        with Session(self.engine) as s:
            record = s.get(GateDecisionRecord, decision_id)
        if record is None or not record.promote or not decision.promote:
            raise RegistryError(
                f"The gate did not approve this adapter for {model_id}; promote it by hand to override."
            )
        return self.promote(
            model_id,
            adapter,
            base_model,
            reason=decision.reason,
            job_id=job_id,
            decision_id=decision_id,
            override=False,
        )

    def rollback(
        self, model_id: str, *, reason: str = "Rolled back by hand.", override: bool = True
    ) -> AdapterEvent:
        """Return to the adapter active before the current one (or to the base model).

        ``override=False`` records the loop's own rollback (the eval sweep), not a person's."""
        stack = self._stack(model_id)
        if not stack:
            raise RegistryError(f"{model_id} already runs on its base model; there is nothing to roll back.")
        previous = stack[-2].adapter_path if len(stack) >= 2 else None
        return self._append(
            AdapterEvent(
                model_id=model_id, action="rollback", adapter_path=previous, override=override, reason=reason
            )
        )

    def _append(self, event: AdapterEvent) -> AdapterEvent:
        with Session(self.engine, expire_on_commit=False) as s:
            s.add(event)
            s.commit()
            return event
