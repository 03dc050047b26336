"""The one contract every model source satisfies.

A source is an async callable ``await source(input, context) -> ChatOutput`` with a
streaming form ``async for event in source.stream(input, context)``.  The stream yields
``TokenEvent`` items and ends with exactly one ``ChatOutput``.  Because the contract is
plain data in and plain data out, a source can live in this process, in a child process
or behind HTTP without its callers knowing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from nexus_desktop.llm.templates import InstructTemplate

Role = Literal["system", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "cancelled"]


@dataclass(frozen=True)
class ChatMessage:
    role: Role
    content: str


@dataclass(frozen=True)
class SamplingSettings:
    """How a reply is sampled.  Each field means what llama.cpp's sampler of that name does; a
    value that switches a sampler off (``top_k=0``, ``min_p=0``, ``typical_p=1``, the penalties at
    0 or 1, ``dry_multiplier=0``, ``mirostat_mode=0``) leaves it out."""

    temperature: float = 0.8
    top_p: float = 0.95
    repeat_penalty: float = 1.1
    max_tokens: int = 512
    seed: int | None = None
    """None picks a random seed for each reply."""
    stop: tuple[str, ...] = ()
    min_p: float = 0.05
    top_k: int = 40
    typical_p: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    mirostat_mode: int = 0
    """0 off, 1 Mirostat, 2 Mirostat 2.0; when on, it replaces top-k, top-p, min-p and typical-p."""
    mirostat_tau: float = 5.0
    mirostat_eta: float = 0.1
    dry_multiplier: float = 0.0
    dry_base: float = 1.75
    dry_allowed_length: int = 2
    template: InstructTemplate | None = None
    """How a local model's prompt is written; None uses the model's own chat template.  Remote
    servers apply their own and ignore it."""


@dataclass(frozen=True)
class ChatInput:
    messages: tuple[ChatMessage, ...]
    sampling: SamplingSettings = field(default_factory=SamplingSettings)
    # Constrained output, for tool calls and classifiers: the reply must match one of these.
    json_schema: dict[str, Any] | None = None
    """The reply is a JSON value valid against this schema."""
    grammar: str | None = None
    """The reply matches this GBNF grammar (llama.cpp's grammar format)."""
    continue_last: bool = False
    """The last message is an unfinished assistant reply: the model writes on from its last word
    (the prompt ends inside that turn) rather than starting a new one.  A local model gets its
    chat template written out with no end-of-turn after it; a remote server gets it as a trailing
    assistant message, a prefill, which llama.cpp's server and KoboldCpp continue."""


class CancelToken:
    """Cancellation flag shared by the caller and the source, across threads: a bool's write and
    read are atomic, so no lock is needed (and making one costs more than the bus's whole hop)."""

    __slots__ = ("_cancelled",)

    def __init__(self) -> None:
        self._cancelled = False

    def cancel(self) -> None:
        self._cancelled = True

    @property
    def cancelled(self) -> bool:
        return self._cancelled


@dataclass
class RunContext:
    cancel: CancelToken = field(default_factory=CancelToken)


@dataclass(frozen=True)
class TokenEvent:
    text: str


@dataclass(frozen=True)
class ReplyStats:
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    """Wall time from the first generated token to the last (generation only)."""
    first_token_seconds: float
    """Wall time from the request to the first token (prompt processing and latency)."""
    context_size: int | None
    finish_reason: FinishReason

    @property
    def tokens_per_second(self) -> float:
        if self.completion_tokens <= 1 or self.seconds <= 0:
            return 0.0
        # The first token's time is prompt processing; the rate counts the rest.
        return (self.completion_tokens - 1) / self.seconds

    @property
    def context_used(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class ChatOutput:
    text: str
    stats: ReplyStats
    served_by: str = ""
    """The machine that generated it when not this one (a ``nexus worker``'s name), for the
    status line's "answered by"; empty for a local model or a remote server."""


StreamEvent = TokenEvent | ChatOutput


class ModelError(Exception):
    """A failure a user can act on.  ``str(error)`` is one clear sentence with what to do."""


class PartialReplyError(ModelError):
    """A reply that failed part-way (a remote worker lost with no other to continue it):
    ``output`` is what was written and shown, for the chat to keep."""

    def __init__(self, message: str, output: ChatOutput) -> None:
        super().__init__(message)
        self.output = output


class ModelFileError(ModelError):
    """The model file is missing, truncated, not GGUF or otherwise unusable."""


class ModelCrashedError(ModelError):
    """The process serving the model died; the app is fine and the model can be reloaded."""


class RemoteServerError(ModelError):
    """An OpenAI-compatible server is unreachable, refused the key or answered badly."""


@runtime_checkable
class ModelSource(Protocol):
    @property
    def name(self) -> str:
        """A short label for the UI, e.g. the model file's name or ``remote: gpt-4o``."""
        ...

    @property
    def context_size(self) -> int:
        """How many tokens prompt plus reply may use."""
        ...

    def stream(self, request: ChatInput, context: RunContext) -> AsyncIterator[StreamEvent]:
        """Yield ``TokenEvent`` items, then exactly one ``ChatOutput``."""
        ...

    async def __call__(self, request: ChatInput, context: RunContext) -> ChatOutput: ...

    async def count_tokens(self, texts: list[str]) -> list[int]:
        """Token counts of each text, for fitting history into the context."""
        ...

    async def aclose(self) -> None: ...


class StreamingSource:
    """Mixin that derives the one-shot call from ``stream``."""

    def stream(self, request: ChatInput, context: RunContext) -> AsyncIterator[StreamEvent]:
        raise NotImplementedError

    async def __call__(self, request: ChatInput, context: RunContext) -> ChatOutput:
        events = self.stream(request, context)
        try:
            async for event in events:
                if isinstance(event, ChatOutput):
                    return event
        finally:
            # Returning from inside the loop leaves the stream suspended; close it here, in this
            # task, rather than leave it to the garbage collector (which closes it out of context).
            close = getattr(events, "aclose", None)
            if close is not None:
                await close()
        raise ModelError("The model stopped without finishing its reply. Try again.")
