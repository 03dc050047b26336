"""Every model call a reply makes, measured and paid for.

``MeteredSource`` wraps the reply's source for the length of one reply:

- each call becomes a ``ModelCall`` row (task type chat, tool_choice or tool_arguments) handed
  to ``record`` (``control.metrics.MetricsRecorder.record``: never blocks, never raises);
- the one-shot calls that pick a tool and fill its arguments reserve their tokens from the
  character's budget first, like the reply itself (the pipeline reserves the reply's own tokens,
  since it also has to set the reply's cap).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nexus_desktop.chat.prompt import PER_MESSAGE_OVERHEAD
from nexus_desktop.control.governor import Governor
from nexus_desktop.control.policy import Policy
from nexus_desktop.control.tables import ModelCall
from nexus_desktop.llm.contract import ChatInput, ChatOutput, ModelSource, RunContext, StreamEvent

log = logging.getLogger(__name__)

RecordCall = Callable[[ModelCall], None]
Counter = Callable[[list[str]], Awaitable[list[int]]]
InDb = Callable[..., Awaitable[Any]]
"""Runs a governor call off the event loop (``AsyncStore.call``: the app's database thread)."""


def source_kind(source: ModelSource) -> str:
    """``remote`` for a server reached over HTTP, ``local`` for the app's own model worker."""
    remote = "OpenAI" in type(source).__name__ or source.name.startswith("remote")
    return "remote" if remote else "local"


def adapter_of(source: ModelSource) -> str:
    """The LoRA adapter the source applies, as ``<folder>/<file>`` (a bounded label), or ""."""
    path = getattr(source, "lora_path", None)
    return f"{path.parent.name}/{path.name}" if isinstance(path, Path) else ""


def task_type(request: ChatInput) -> str:
    if request.grammar is not None:
        return "tool_choice"
    return "tool_arguments" if request.json_schema is not None else "chat"


class MeteredSource:
    """``inner`` as the model contract, with each call recorded and the tool calls budgeted.

    Closing it leaves ``inner`` open: the source belongs to the source manager.
    """

    def __init__(
        self,
        inner: ModelSource,
        *,
        character: str,
        governor: Governor,
        policy: Policy,
        count: Counter,
        record: RecordCall | None,
        in_db: InDb,
        service: str = "chat",
    ) -> None:
        self.service = service  # the ModelCall's service: "chat", or "gateway" for other apps
        self.inner = inner
        self.character = character
        self.governor = governor
        self.policy = policy
        self._count = count
        self._in_db = in_db
        self._record = record
        self._kind = source_kind(inner)
        self._adapter = adapter_of(inner)

    def metering(self, inner: ModelSource) -> MeteredSource:
        """``inner`` recorded and budgeted as this source is (a tool choice routed to another
        source still counts against the character's budget)."""
        return MeteredSource(
            inner,
            character=self.character,
            governor=self.governor,
            policy=self.policy,
            count=inner.count_tokens,
            record=self._record,
            in_db=self._in_db,
        )

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def context_size(self) -> int:
        return self.inner.context_size

    async def count_tokens(self, texts: list[str]) -> list[int]:
        return await self._count(texts)

    async def aclose(self) -> None:
        pass

    async def stream(self, request: ChatInput, context: RunContext) -> AsyncIterator[StreamEvent]:
        started = time.perf_counter()
        output: ChatOutput | None = None
        try:
            async for event in self.inner.stream(request, context):
                if isinstance(event, ChatOutput):
                    output = event
                yield event
        finally:
            self.record(task_type(request), started, output)

    async def __call__(self, request: ChatInput, context: RunContext) -> ChatOutput:
        """A one-shot call (a tool's choice or arguments), paid from the budget like a reply."""
        prompt = 0
        if self.policy.daily_token_budget is not None:  # counting costs a trip to a local model
            counts = await self._count([m.content for m in request.messages])
            prompt = sum(counts) + PER_MESSAGE_OVERHEAD * len(counts)
        grant = await self._in_db(
            self.governor.reserve_tokens, self.character, self.policy, prompt, request.sampling.max_tokens
        )
        started = time.perf_counter()
        output: ChatOutput | None = None
        try:
            output = await self.inner(request, context)
            used = output.stats.prompt_tokens + output.stats.completion_tokens
            await self._in_db(self.governor.settle_tokens, grant, used, reply=False)
            return output
        finally:
            if output is None:
                await self._in_db(self.governor.release, grant)
            self.record(task_type(request), started, output)

    def record(self, task: str, started: float, output: ChatOutput | None) -> None:
        """Hand one ``ModelCall`` to the recorder; ``output`` None means the call failed."""
        if self._record is None:
            return
        stats = output.stats if output is not None else None
        call = ModelCall(
            at=datetime.now(UTC),
            service=self.service,
            task_type=task,
            source=self._kind,
            model=self.inner.name,
            adapter=self._adapter,
            character=self.character,
            tokens_in=stats.prompt_tokens if stats else 0,
            tokens_out=stats.completion_tokens if stats else 0,
            first_token_seconds=stats.first_token_seconds if stats and stats.completion_tokens else None,
            seconds=time.perf_counter() - started,
            ok=output is not None,
        )
        try:
            self._record(call)
        except Exception:  # the recorder promises not to raise; a reply must not depend on it
            log.exception("Recording a model call failed")
