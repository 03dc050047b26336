"""The task router: one place that says which source each kind of work runs on.

Used by the module builder (codegen), the tool choice when the model picks tools (routing), the
intent router when no trained router exists (routing), and whatever judges with a model
(judging).  Every decision is stored with its reason; ``record_outcome`` stores how the work went,
and those outcomes feed the next decision (``decision.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from sqlalchemy import Engine

from nexus_desktop.chat.sources import GameAction, KeyLookup, SourceManager
from nexus_desktop.llm.contract import ModelSource
from nexus_desktop.providers import records
from nexus_desktop.providers.candidates import GpuTotal, list_candidates, read_gpu_total, settings_for
from nexus_desktop.providers.decision import (
    Candidate,
    RouteDecision,
    SourceRate,
    TaskType,
    decide,
    find_source,
)
from nexus_desktop.settings import Settings


class TaskRouter:
    def __init__(
        self,
        engine: Engine,
        get_settings: Callable[[], Settings],
        lookup_key: KeyLookup,
        *,
        gpu_total: GpuTotal = read_gpu_total,
        game_action: Callable[[], GameAction | None] = lambda: None,
    ) -> None:
        """``lookup_key`` reads the remote API key from the keyring (``SecretStore.get``);
        ``gpu_total`` gives this PC's VRAM (tests hand a scripted GPU); ``game_action`` is game
        mode's hold on local models (``SourceManager.game_action``), which sources opened here obey."""
        self._game_action = game_action
        self._engine = engine
        self._get_settings = get_settings
        self._lookup_key = lookup_key
        self._gpu_total = gpu_total

    async def candidates(self) -> list[Candidate]:
        """Every source the router knows now (reads the models folder: off the event loop)."""
        return await asyncio.to_thread(list_candidates, self._get_settings(), self._gpu_total)

    async def choose(self, task: TaskType, *, prefer: str | None = None) -> RouteDecision:
        """The source ``task`` runs on, persisted with its reason (``decision_id``).

        ``prefer`` (``--source NAME``) picks that source; a name no source has raises
        ``UnknownSourceError``, whose text lists the names.  No source at all raises
        ``LookupError`` with what to do."""
        decision = await asyncio.to_thread(self._decide, task, prefer)
        decision_id = await asyncio.to_thread(records.save_decision, self._engine, decision)
        return RouteDecision(
            decision.task, decision.source_name, decision.kind, decision.reason, decision.warning, decision_id
        )

    def _decide(self, task: TaskType, prefer: str | None) -> RouteDecision:
        chat_only = task in ("chat", "routing")  # asked per message: no folder scan, no GPU probe
        candidates = list_candidates(self._get_settings(), self._gpu_total, chat_only=chat_only)
        rates = {rate.source_name: rate for rate in records.load_rates(self._engine, task)}
        return decide(task, candidates, rates, prefer)

    async def preview(self, task: TaskType) -> RouteDecision:
        """The decision ``choose`` would make now, without storing it (``nexus providers``, and the
        intent router asking whether a remote provider routes before it stores a decision)."""
        return await asyncio.to_thread(self._decide, task, None)

    async def open(self, decision: RouteDecision) -> ModelSource:
        """Start the decision's source through the chat's own ``SourceManager`` code (the key read
        off the event loop, a local model's process started).  The caller owns it: use it, then
        ``await source.aclose()``.  Raises ``UnknownSourceError`` when the source has gone since,
        ``GameModeError`` for a local model while game mode keeps models unloaded."""
        settings = self._get_settings()
        quick = list_candidates(settings, chat_only=True)  # the usual case: no folder scan
        known = {c.name for c in quick}
        candidate = find_source(
            decision.source_name, quick if decision.source_name in known else await self.candidates()
        )
        manager = SourceManager(lambda: settings_for(settings, candidate), self._lookup_key)
        manager.game_action = self._game_action()  # game mode: refused, or on the CPU
        return await manager.get()

    def is_chat_source(self, decision: RouteDecision) -> bool:
        """Whether ``decision`` names the model the chat runs on (reuse that one: it is loaded)."""
        return decision.source_name == self.chat_source_name()

    def chat_source_name(self) -> str:
        """The chat's source as the router names it (``remote: gpt-4o``, ``local: x.gguf``); ""
        when there is none."""
        found = list_candidates(self._get_settings(), chat_only=True)
        return next((c.name for c in found if c.is_chat), "")

    async def record_outcome(self, decision: RouteDecision, ok: bool, detail: str = "") -> None:
        """Store how the routed work went (a build passed its tests, a tool choice parsed)."""
        if decision.decision_id is not None:
            await asyncio.to_thread(records.save_outcome, self._engine, decision.decision_id, ok, detail)

    async def success_rates(self) -> list[SourceRate]:
        """Every source's recorded outcomes per task type."""
        return await asyncio.to_thread(records.load_rates, self._engine)
