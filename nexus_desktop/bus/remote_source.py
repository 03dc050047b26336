"""WorkerSource: a ModelSource whose replies come from a ``nexus worker`` on another PC.

The app's Dendrite picks the least busy worker serving "chat"; tokens stream back as TOKEN
Signals, and the RESULT names the worker (``ChatOutput.served_by``, the status line's "answered
by").  Stop sets the RunContext's cancel token, which the Dendrite turns into CANCEL; the reply
ends with what was written.

When the answering worker dies mid-reply (``WorkerLostError``) and another one serves chat, the
reply fails over at once: the other worker continues the partial reply (``continue_last`` with
the text so far as the last assistant message), so nothing already shown is generated twice and
the task is not run again from the start.  With no other worker, ``PartialReplyError`` carries
the partial reply (kept) and says what to do.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from nexus_desktop.bus.axon import TaskError, WorkerLostError
from nexus_desktop.bus.dendrite import Dendrite, WorkerInfo
from nexus_desktop.bus.neurons import (
    CHAT_NEURON,
    COUNT_TOKENS_NEURON,
    chat_input_to_dict,
    chat_output_from_dict,
    read_capabilities,
)
from nexus_desktop.bus.remote_tools import BusTools
from nexus_desktop.bus.signals import Kind, Signal
from nexus_desktop.bus.synapse import BusError, Connection, Synapse, open_synapse
from nexus_desktop.llm.contract import (
    ChatInput,
    ChatMessage,
    ChatOutput,
    ModelError,
    PartialReplyError,
    ReplyStats,
    RunContext,
    StreamEvent,
    StreamingSource,
    TokenEvent,
)

log = logging.getLogger(__name__)

DEFAULT_CONTEXT = 4096
"""Assumed until a worker says its model's context size."""
LOST_AFTER_SECONDS = 0.5
"""Silence mid-reply after which the answering worker counts as lost (and the reply fails over)."""
FIND_SECONDS = 3.0
"""How long ``connect_worker_source`` waits for a worker serving chat to announce itself."""


def chat_workers(dendrite: Dendrite) -> list[WorkerInfo]:
    return [worker for worker in dendrite.workers() if worker.serves(CHAT_NEURON)]


class WorkerSource(StreamingSource):
    """Replies from the workers on ``dendrite``'s bus; owns the Dendrite and its Synapse."""

    def __init__(self, dendrite: Dendrite, synapse: Synapse, url: str) -> None:
        self._dendrite = dendrite
        self._synapse = synapse
        self._url = url
        self._last_worker = ""

    @property
    def dendrite(self) -> Dendrite:
        return self._dendrite

    def remote_tools(self) -> BusTools:
        """The tools the workers on this bus serve, for the chat beside the local ones."""
        return BusTools(self._dendrite)

    def _worker(self) -> WorkerInfo | None:
        workers = chat_workers(self._dendrite)
        named = [worker for worker in workers if worker.name == self._last_worker]
        return (named or workers)[0] if workers else None

    @property
    def name(self) -> str:
        worker = self._worker()
        return f"worker: {worker.name if worker else self._last_worker or self._url}"

    @property
    def context_size(self) -> int:
        worker = self._worker()
        if worker is None:
            return DEFAULT_CONTEXT
        size = read_capabilities(worker.capabilities.get(CHAT_NEURON, ())).get("context_size", "")
        return int(size) if size.isdigit() else DEFAULT_CONTEXT

    @property
    def model_name(self) -> str:
        """The worker's model file, as it announced it ("" before any worker is known)."""
        worker = self._worker()
        return read_capabilities(worker.capabilities.get(CHAT_NEURON, ())).get("model", "") if worker else ""

    async def stream(self, request: ChatInput, context: RunContext) -> AsyncIterator[StreamEvent]:
        started = time.monotonic()
        first_token: float | None = None
        shown = ""  # every token yielded so far, across workers
        carried = ""  # what the previous (lost) workers wrote, which the current one continues
        carried_tokens = 0
        attempt, lost = request, set[str]()
        while True:
            tokens = 0
            try:
                signals = self._dendrite.stream(
                    CHAT_NEURON, chat_input_to_dict(attempt), cancel=context.cancel
                )
                async with contextlib.aclosing(signals):
                    async for signal in signals:
                        if signal.kind is Kind.TOKEN:
                            text = str(signal.payload.get("text", ""))
                            first_token = first_token or time.monotonic()
                            shown, tokens = shown + text, tokens + 1
                            yield TokenEvent(text)
                        elif signal.kind is Kind.RESULT:
                            yield self._finished(signal, carried, carried_tokens, started, first_token)
                            return
            except WorkerLostError as error:
                lost.add(error.worker)
                self._last_worker = error.worker
                partial = self._partial(shown, started, first_token, carried_tokens + tokens, error.worker)
                if context.cancel.cancelled:
                    yield partial  # Stop was pressed as it went: end with what was shown
                    return
                others = [w.name for w in chat_workers(self._dendrite) if w.name not in lost]
                if not others:
                    raise PartialReplyError(
                        f"The worker {error.worker} stopped answering mid-reply and no other worker "
                        "serves chat; the partial reply is kept. Start `nexus worker` on that PC "
                        "again (or another one) and press Continue.",
                        partial,
                    ) from None
                log.warning("Worker %s lost mid-reply; %s continues it", error.worker, others[0])
                carried, carried_tokens = shown, carried_tokens + tokens
                attempt = continuation(request, shown, tokens=carried_tokens)
            except TaskError as error:
                if error.code == "cancelled":
                    yield self._partial(shown, started, first_token, carried_tokens + tokens, error.worker)
                    return
                raise self._model_error(error) from None
            except BusError as error:
                raise ModelError(f"{error} (remote worker on {self._url})") from None

    def _finished(
        self, signal: Signal, carried: str, carried_tokens: int, started: float, first: float | None
    ) -> ChatOutput:
        try:
            output = chat_output_from_dict(signal.payload)
        except ValueError as error:
            raise ModelError(
                f"The worker {signal.sender} answered badly ({error}); update NEXUS there."
            ) from None
        self._last_worker = signal.sender
        stats = output.stats
        if carried:  # a continued reply: the whole text, counted as one
            stats = dataclasses.replace(
                stats,
                completion_tokens=carried_tokens + stats.completion_tokens,
                seconds=time.monotonic() - (first or started),
            )
        stats = dataclasses.replace(stats, first_token_seconds=(first or time.monotonic()) - started)
        return ChatOutput(carried + output.text, stats, served_by=signal.sender)

    def _partial(
        self, text: str, started: float, first: float | None, tokens: int, worker: str
    ) -> ChatOutput:
        now = time.monotonic()
        stats = ReplyStats(
            0, tokens, now - (first or now), (first or now) - started, self.context_size, "cancelled"
        )
        return ChatOutput(text, stats, served_by=worker or self._last_worker)

    def _model_error(self, error: TaskError) -> ModelError:
        if error.code == "unknown_neuron":
            return ModelError(
                f"No worker serves chat on {self._url}. Start `nexus worker --connect {self._url}` "
                "on the second PC (docs/second-pc.md), or pick another model."
            )
        if error.code == "refused":
            return ModelError(f"The worker {error.worker} refused the reply: {error}")
        return ModelError(f"The worker {error.worker or 'on ' + self._url} failed: {error}")

    async def count_tokens(self, texts: list[str]) -> list[int]:
        """The worker's own count; an estimate (4 characters a token) when none can answer."""
        try:
            answer = await self._dendrite.dispatch_and_wait(
                COUNT_TOKENS_NEURON, {"texts": texts}, timeout=10.0
            )
            counts = answer.output.get("counts")
            if (
                isinstance(counts, list)
                and len(counts) == len(texts)
                and all(isinstance(n, int) for n in counts)
            ):
                return counts
        except BusError as error:
            log.info("Estimating token counts: %s", error)
        return [max(1, len(text) // 4) for text in texts]

    async def aclose(self) -> None:
        try:
            await self._dendrite.aclose()
        finally:
            await self._synapse.close()


def continuation(request: ChatInput, partial: str, *, tokens: int) -> ChatInput:
    """``request`` continued from ``partial`` (what was already written and shown), with the
    reply's remaining token allowance."""
    messages = list(request.messages)
    if request.continue_last and messages and messages[-1].role == "assistant":
        messages[-1] = ChatMessage("assistant", messages[-1].content + partial)
    else:
        messages.append(ChatMessage("assistant", partial))
    sampling = dataclasses.replace(request.sampling, max_tokens=max(1, request.sampling.max_tokens - tokens))
    return dataclasses.replace(request, messages=tuple(messages), sampling=sampling, continue_last=True)


async def connect_worker_source(
    connection: Connection, *, find_seconds: float = FIND_SECONDS
) -> WorkerSource:
    """Connect to the bus, start an app Dendrite, and wait up to ``find_seconds`` for a worker
    serving chat.  Raises ``ModelError`` saying what to do (no server, refused credentials, no
    worker)."""
    try:
        synapse = open_synapse(connection)
        await synapse.connect()
    except BusError as error:
        raise ModelError(str(error)) from None
    name = connection.name or f"app-{uuid.uuid4().hex[:8]}"
    # A worker beats every 0.25 s while it answers: half a second of silence is two missed
    # beats, which leaves the other worker the rest of the second to continue the reply.
    dendrite = Dendrite(
        synapse, name=name, role="app", prefix=connection.prefix, silence_seconds=LOST_AFTER_SECONDS
    )
    source = WorkerSource(dendrite, synapse, connection.url)
    try:
        await dendrite.start()
        deadline = time.monotonic() + find_seconds
        while not chat_workers(dendrite) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    except BaseException:
        await source.aclose()
        raise
    if not chat_workers(dendrite):
        await source.aclose()
        raise ModelError(
            f"Connected to {connection.url}, but no worker serves chat there. Start "
            f"`nexus worker --connect {connection.url}` on the second PC (docs/second-pc.md)."
        )
    return source


@dataclass(frozen=True)
class FoundWorker:
    """A worker as Settings → Remote worker lists it."""

    name: str
    host: str
    model: str
    """The model file it serves chat with ("" when it serves tools only)."""
    context_size: int | None
    tools: tuple[str, ...]

    def describe(self) -> str:
        """``gpc2: chat with SmolLM2.gguf (4096 ctx), 3 tools``."""
        parts = []
        if self.model:
            parts.append(
                f"chat with {self.model}" + (f" ({self.context_size} ctx)" if self.context_size else "")
            )
        if self.tools:
            parts.append(f"{len(self.tools)} tool{'s' if len(self.tools) != 1 else ''}")
        return f"{self.name}: {', '.join(parts) or 'nothing NEXUS uses'}"


async def find_workers(connection: Connection, *, listen_seconds: float = 1.0) -> list[FoundWorker]:
    """The workers on the bus and what each serves (Settings' "Find workers"); ``BusError`` says
    why none can be asked (no server, refused credentials)."""
    synapse = open_synapse(connection)
    await synapse.connect()
    try:
        async with Dendrite(
            synapse, name=f"finder-{uuid.uuid4().hex[:8]}", prefix=connection.prefix
        ) as finder:
            await asyncio.sleep(listen_seconds)  # REGISTERs answer the discovery; beats come each second
            found = []
            for worker in sorted(finder.workers(), key=lambda w: w.name):
                chat = read_capabilities(worker.capabilities.get(CHAT_NEURON, ()))
                size = chat.get("context_size", "")
                found.append(
                    FoundWorker(
                        worker.name,
                        worker.host,
                        chat.get("model", "chat" if worker.serves(CHAT_NEURON) else ""),
                        int(size) if size.isdigit() else None,
                        tuple(n.removeprefix("tool.") for n in worker.neurons if n.startswith("tool.")),
                    )
                )
            return found
    finally:
        await synapse.close()
