"""The intent router in chat: a promoted router adapter decides reply, tool call or module build.

Without a promoted router, the bag-of-words classifier the gate saved routes instead when the
latest gate decision found it at least as good as the learned router (no model call is worth
making then).  Without either, when the user lets the model pick tools (``tools_by_model``), a
remote provider the task router picks for routing (``providers``) classifies by the labels'
descriptions; otherwise the chat runs tools on typed
commands only (and, if the user opted in, lets the chat model pick): the small base model alone
routes at chance level, so it is never used.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from nexus_desktop.control.metrics import CallSite, RecordCall, adapter_label
from nexus_desktop.llm.contract import ChatMessage, ModelError, ModelSource

if TYPE_CHECKING:
    from nexus_desktop.providers import TaskRouter

log = logging.getLogger(__name__)

# The router's labels and the bundled tool each one means; "chat" and "build_module" use none.
LABEL_TOOLS = {
    "roll_dice": "dice.roll",
    "remember_note": "notes.remember",
    "recall_note": "notes.recall",
    "system_status": "system-monitor.status",
}

# Every label in plain words, for the user correcting a routed call (the zoo's router labels).
ROUTE_CHOICES = {
    "chat": "Just chat, no tool",
    "roll_dice": "Roll dice",
    "remember_note": "Remember a note",
    "recall_note": "Recall notes",
    "system_status": "Check the system",
    "build_module": "Build a module",
}


def _zero_shot_prompt() -> str:
    listing = "\n".join(f"- {label}: {words}" for label, words in ROUTE_CHOICES.items())
    return f"Classify the user's message. Answer with one of these labels and nothing else:\n{listing}"


def label_for_tool(tool: str) -> str | None:
    return next((label for label, name in LABEL_TOOLS.items() if name == tool), None)


RouterLookup = Callable[[], tuple[Path, Path, str, Sequence[str]] | None]
"""-> (base model, active router adapter, system prompt, labels), or None without a promoted router."""


class WordRouter(Protocol):
    """A classifier without a model call (``training.lexical.LexicalClassifier``)."""

    @property
    def labels(self) -> tuple[str, ...]: ...

    def predict(self, text: str) -> str: ...


class IntentRouter:
    """Keeps the promoted router loaded in its own small worker, reloading when it changes."""

    def __init__(
        self,
        lookup: RouterLookup,
        *,
        lexical: Callable[[], WordRouter | None] | None = None,
        threads: int = 1,
        record_call: RecordCall | None = None,
        task_router: TaskRouter | None = None,
        model_may_route: Callable[[], bool] = lambda: False,
    ) -> None:
        """``lexical`` gives the bag-of-words router to use when ``lookup`` finds no promoted one;
        ``record_call`` records every routing call (ok or failed) as a ``routing`` model call;
        ``task_router`` (``providers``) names the source that routes when neither exists: a
        remote provider routes by the label descriptions alone, a small local model does not;
        ``model_may_route`` says whether the user allowed that (``settings.tools_by_model``: it costs
        one more remote call per message)."""
        self._task_router = task_router
        self._model_may_route = model_may_route
        self._lookup = lookup
        self._lexical = lexical
        self._threads = threads
        self._record_call = record_call
        self._source: ModelSource | None = None
        self._adapter: Path | None = None
        self._lock = asyncio.Lock()

    async def route(self, text: str) -> str | None:
        """The label for ``text``, or None when no router is promoted or it failed."""
        from nexus_desktop.training.benchsuite import classify

        async with self._lock:
            found = await asyncio.to_thread(self._lookup)
            if found is None:
                await self._close_locked()
                words = await asyncio.to_thread(self._lexical) if self._lexical is not None else None
                if words is not None:
                    return words.predict(text)
                return await self._route_by_provider(text)
            base, adapter, system_prompt, labels = found
            try:
                source = await self._source_for(base, adapter)
                messages = [ChatMessage("system", system_prompt), ChatMessage("user", text)]
                label = await classify(source, messages, labels, site=self._site(base, adapter))
            except ModelError as error:
                log.warning("The intent router failed; replying without it: %s", error)
                await self._close_locked()
                return None
            return label if label in labels else None

    async def _route_by_provider(self, text: str) -> str | None:
        """Without a trained router: the routed source (only a remote one; a small local model
        routes at chance level) picks a label from their descriptions; the outcome is recorded."""
        from nexus_desktop.training.benchsuite import classify

        router = self._task_router
        if router is None or not self._model_may_route():
            return None
        if (await router.preview("routing")).kind != "remote":
            return None
        decision = await router.choose("routing")
        labels = list(ROUTE_CHOICES)
        site = None
        if self._record_call is not None:
            site = CallSite(self._record_call, "router", "routing", decision.source_name, source="remote")
        messages = [ChatMessage("system", _zero_shot_prompt()), ChatMessage("user", text)]
        label: str | None = None
        try:
            source = await router.open(decision)
            try:
                label = await classify(source, messages, labels, site=site)
            finally:
                await source.aclose()
        except ModelError as error:
            log.warning("Routing with %s failed; replying without it: %s", decision.source_name, error)
            await router.record_outcome(decision, False, str(error))
            return None
        ok = label in labels
        await router.record_outcome(decision, ok, "" if ok else f"answered {label!r}, not a label")
        return label if ok else None

    def _site(self, base: Path, adapter: Path) -> CallSite | None:
        if self._record_call is None:
            return None
        return CallSite(self._record_call, "router", "routing", base.name, adapter_label(adapter))

    async def _source_for(self, base: Path, adapter: Path) -> ModelSource:
        if self._source is not None and adapter == self._adapter:
            return self._source
        await self._close_locked()
        from nexus_desktop.llm.local import LocalLlamaSource

        source = LocalLlamaSource(base, context_size=1024, threads=self._threads, lora_path=adapter)
        await source.start()
        self._source, self._adapter = source, adapter
        return source

    async def _close_locked(self) -> None:
        source, self._source, self._adapter = self._source, None, None
        if source is not None:
            await source.aclose()

    async def aclose(self) -> None:
        async with self._lock:
            await self._close_locked()
