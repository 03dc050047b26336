"""Signals: the only thing that travels on the bus.

A Signal is plain, typed data with a trace id.  In this process (``memory://``) Signals pass as
objects; on the wire (``nats://``) they are JSON, and ``decode`` is the edge: bytes that are too
large, not JSON, of an unknown kind or of the wrong shape are refused there with ``BadSignal``,
before any code of ours acts on them.

What each kind carries in ``payload``:

- TASK: the Neuron's input (``neuron`` names it; ``stream`` asks for TOKENs; ``reply_to`` is where
  the answers go when streaming).
- RESULT: the Neuron's output.  TOKEN: one piece of a streamed output (``seq`` orders them).
- ERROR: ``{"code": ErrorCode, "message": one sentence that says what to do}``.
- REGISTER / HEARTBEAT: a worker's ``{"host", "neurons": [{"id", "capabilities", "streaming"}],
  "load", "capacity", "heartbeat_seconds"}``; DEREGISTER: ``{}``.  A HEARTBEAT on a task's
  ``reply_to`` says the worker is still on it.
- CANCEL: stop ``task_id`` (the user pressed Stop).
- CLARIFICATION: a question for the user (``{"question"}``); PERMISSION: the app's answer to
  one (``{"granted": bool}``).
"""

from __future__ import annotations

import itertools
import json
import os
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

MAX_SIGNAL_BYTES = 1024 * 1024
"""NATS's own default max_payload; a Signal larger than this is refused at the edge."""
MAX_ID_CHARS = 128


class Kind(StrEnum):
    TASK = "task"
    RESULT = "result"
    TOKEN = "token"
    ERROR = "error"
    CLARIFICATION = "clarification"
    PERMISSION = "permission"
    REGISTER = "register"
    HEARTBEAT = "heartbeat"
    DEREGISTER = "deregister"
    CANCEL = "cancel"


ORCHESTRATION = frozenset({Kind.TASK, Kind.CANCEL, Kind.PERMISSION})
"""Kinds that direct other parts of the system; a ``role="worker"`` Dendrite never emits them."""

ErrorCode = Literal[
    "unknown_neuron",  # no worker serves it (answered at once, not after a timeout)
    "bad_input",  # the Axon's validation refused the input
    "failed",  # the Neuron raised; message says why
    "cancelled",  # CANCEL arrived first
    "worker_lost",  # the worker went silent mid-task (the caller may fail over)
    "timeout",  # no answer in the time asked for
    "refused",  # the worker may not do this (not served, not approved, wrong role)
]


class BadSignal(ValueError):
    """Bytes or data that are not a valid Signal; ``str()`` says what was wrong."""


_id_prefix = os.urandom(8).hex()
_id_counter = itertools.count(1)


def _new_id_prefix() -> None:
    global _id_prefix
    _id_prefix = os.urandom(8).hex()


os.register_at_fork(after_in_child=_new_id_prefix)  # a forked child must not repeat its parent's ids


def new_id() -> str:
    """A task or trace id unique across processes: 64 random bits per process, then a counter
    (a tenth of uuid4's cost, which showed in the bus's round trip)."""
    return f"{_id_prefix}{next(_id_counter):x}"


@dataclass(frozen=True, slots=True)
class Signal:
    kind: Kind
    task_id: str = ""
    trace_id: str = field(default_factory=new_id)
    neuron: str = ""
    payload: dict[str, Any] = field(default_factory=dict)
    sender: str = ""
    """The Dendrite that emitted it (a worker's name: the status line's "answered by")."""
    reply_to: str = ""
    stream: bool = False
    seq: int = 0

    def error_code(self) -> str:
        return str(self.payload.get("code", "failed")) if self.kind is Kind.ERROR else ""

    def error_message(self) -> str:
        return str(self.payload.get("message", "")) if self.kind is Kind.ERROR else ""


def error_signal(task: Signal, code: ErrorCode, message: str, *, sender: str = "") -> Signal:
    """The ERROR answering ``task``, with its ids."""
    return Signal(
        Kind.ERROR,
        task_id=task.task_id,
        trace_id=task.trace_id,
        neuron=task.neuron,
        payload={"code": code, "message": message},
        sender=sender,
    )


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
"""Made once: ``json.dumps`` with options builds a new encoder per call (a hot path here)."""


def encode(signal: Signal) -> bytes:
    data = _ENCODER.encode(
        {
            "kind": signal.kind.value,
            "task_id": signal.task_id,
            "trace_id": signal.trace_id,
            "neuron": signal.neuron,
            "payload": signal.payload,
            "sender": signal.sender,
            "reply_to": signal.reply_to,
            "stream": signal.stream,
            "seq": signal.seq,
        }
    ).encode()
    if len(data) > MAX_SIGNAL_BYTES:
        raise BadSignal(f"A signal of {len(data)} bytes is over the bus's limit of {MAX_SIGNAL_BYTES} bytes")
    return data


_TEXT_FIELDS = ("task_id", "trace_id", "neuron", "sender", "reply_to")


def decode(data: bytes, *, max_bytes: int = MAX_SIGNAL_BYTES) -> Signal:
    """The Signal in ``data``, checked field by field; ``BadSignal`` says what is wrong."""
    if len(data) > max_bytes:
        raise BadSignal(f"A signal of {len(data)} bytes is over the limit of {max_bytes} bytes")
    try:
        raw = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BadSignal(f"A signal that is not JSON: {error}") from None
    if not isinstance(raw, dict):
        raise BadSignal("A signal must be a JSON object")
    try:
        kind = Kind(str(raw.get("kind")))
    except ValueError:
        raise BadSignal(f"A signal of unknown kind {str(raw.get('kind'))[:40]!r}") from None
    for name in _TEXT_FIELDS:
        value = raw.get(name, "")
        if not isinstance(value, str):
            raise BadSignal(f"The signal's {name} must be text")
        if name != "reply_to" and len(value) > MAX_ID_CHARS:
            raise BadSignal(f"The signal's {name} is longer than {MAX_ID_CHARS} characters")
    payload = raw.get("payload", {})
    if not isinstance(payload, dict):
        raise BadSignal("The signal's payload must be a JSON object")
    stream, seq = raw.get("stream", False), raw.get("seq", 0)
    if not isinstance(stream, bool) or not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise BadSignal("The signal's stream must be true or false and its seq a whole number")
    return Signal(
        kind,
        task_id=raw.get("task_id", ""),
        trace_id=raw.get("trace_id", "") or new_id(),
        neuron=raw.get("neuron", ""),
        payload=payload,
        sender=raw.get("sender", ""),
        reply_to=raw.get("reply_to", ""),
        stream=stream,
        seq=seq,
    )
