"""The Axon: a Neuron with an id, its capabilities and its input validation.

A Neuron is the existing model-source contract in plain data: ``await neuron(input, context) ->
output`` with ``input`` and ``output`` JSON-shaped dicts.  Its streaming form yields ``Piece``
items (each one a TOKEN on the bus) and then exactly one dict, the output.  The Axon checks the
input before the Neuron sees it (refused input becomes an ERROR ``bad_input`` naming the field),
and a Dendrite serves it: an Axon never touches the bus itself.

A Neuron that wants to fail with a particular code raises ``TaskError(code, message)``; any other
exception becomes ERROR ``failed`` with the exception's text.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from nexus_desktop.bus.signals import ErrorCode
from nexus_desktop.bus.synapse import BusError
from nexus_desktop.llm.contract import CancelToken

JsonDict = dict[str, Any]


@dataclass
class TaskContext:
    """What a Neuron knows about the task it runs."""

    task_id: str
    trace_id: str
    caller: str
    """The name of the Dendrite that sent the task."""
    cancel: CancelToken = field(default_factory=CancelToken)
    """Set when the caller pressed Stop (a CANCEL arrived): stop soon and return what you have."""


@dataclass(frozen=True, slots=True)
class Piece:
    """One piece of a streamed output: a TOKEN on the bus (the chat neuron's is ``{"text"}``)."""

    payload: JsonDict


Neuron = Callable[[JsonDict, TaskContext], Awaitable[JsonDict]]
StreamNeuron = Callable[[JsonDict, TaskContext], AsyncIterator[Piece | JsonDict]]
"""Yields Pieces, then exactly one dict: the output."""
Validator = Callable[[JsonDict], JsonDict]
"""Returns the (possibly normalised) input or raises ValueError naming the bad field."""


class TaskError(BusError):
    """A task that did not produce an output: ``code`` says why, ``worker`` who answered ("" when
    no worker was reached), ``str()`` is one sentence that says what to do."""

    def __init__(self, code: ErrorCode | str, message: str, *, worker: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.worker = worker


class WorkerLostError(TaskError):
    """The worker went silent (no token or heartbeat for ``silence_seconds``) mid-task: it died,
    or the network or server went away.  ``tokens_received`` says how far the stream got, so a
    caller can retry elsewhere when it is 0 or show the partial reply."""

    def __init__(self, message: str, *, worker: str = "", tokens_received: int = 0) -> None:
        super().__init__("worker_lost", message, worker=worker)
        self.tokens_received = tokens_received


def _pydantic_validator(model: type[Any]) -> Validator:
    from pydantic import ValidationError

    def check(data: JsonDict) -> JsonDict:
        try:
            result: JsonDict = model.model_validate(data).model_dump()
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first.get("loc", ())) or "input"
            raise ValueError(f"{where}: {first.get('msg', 'is not valid')}") from None
        return result

    return check


class Axon:
    """Wraps a Neuron so a Dendrite can serve it.

    ``validate`` is a pydantic model class (the input must parse as it; the Neuron gets the
    model's ``model_dump()``) or a callable ``dict -> dict`` raising ValueError that names the
    field.  Without ``stream`` the Neuron is streamed as its single output (no TOKENs)."""

    def __init__(
        self,
        neuron_id: str,
        call: Neuron,
        *,
        stream: StreamNeuron | None = None,
        capabilities: Iterable[str] = (),
        validate: type[Any] | Validator | None = None,
    ) -> None:
        if not neuron_id or any(char.isspace() for char in neuron_id):
            raise ValueError(f"A neuron id must be a word without spaces, not {neuron_id!r}")
        self.neuron_id = neuron_id
        self.call = call
        self.stream_call = stream
        self.capabilities = tuple(capabilities)
        self._validate: Validator | None
        if validate is not None and isinstance(validate, type) and hasattr(validate, "model_validate"):
            self._validate = _pydantic_validator(validate)
        else:
            self._validate = validate

    @property
    def streaming(self) -> bool:
        return self.stream_call is not None

    def describe(self) -> JsonDict:
        """This Axon in a REGISTER/HEARTBEAT payload's ``neurons`` list."""
        return {"id": self.neuron_id, "capabilities": list(self.capabilities), "streaming": self.streaming}

    def check(self, data: JsonDict) -> JsonDict:
        """The input the Neuron gets; raises ``TaskError("bad_input", ...)`` naming the field."""
        if self._validate is None:
            return data
        try:
            return self._validate(data)
        except (ValueError, TypeError) as error:
            raise TaskError(
                "bad_input",
                f"The input of {self.neuron_id!r} was refused: {error}. Fix it and send it again.",
            ) from None

    async def run(self, data: JsonDict, context: TaskContext) -> JsonDict:
        """Check the input and call the Neuron once."""
        return await self.call(self.check(data), context)

    async def run_stream(self, data: JsonDict, context: TaskContext) -> AsyncIterator[Piece | JsonDict]:
        """Check the input and stream the Neuron: Pieces, then the output dict."""
        checked = self.check(data)
        if self.stream_call is None:
            yield await self.call(checked, context)
            return
        async for item in self.stream_call(checked, context):
            yield item
