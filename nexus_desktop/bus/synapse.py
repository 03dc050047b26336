"""The Synapse: one interface, two transports.

``memory://NAME`` is in-process asyncio: Dendrites that open the same name share one bus, and
Signals pass as objects (nothing is encoded).  ``nats://HOST:PORT`` and ``tls://HOST:PORT`` use
nats-py against a real nats-server; Signals are encoded at the edge and decoded (checked) when
they arrive.  Only a Dendrite uses a Synapse.

Subjects (``prefix`` is "nexus" unless the user picks another, to share one server):

- ``{prefix}.directory``: REGISTER, HEARTBEAT and DEREGISTER from every worker.
- ``{prefix}.discover``: a request a Dendrite sends on start; every worker answers with REGISTER.
- ``{prefix}.worker.{name}.task``: TASK and CANCEL for one worker.  The caller picks the worker
  (the least busy), so a task never goes to two workers at once.
- inboxes (``Synapse.inbox()``): where one task's TOKEN, HEARTBEAT, RESULT and ERROR go.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from nexus_desktop.bus.signals import Signal

Handler = Callable[[Signal, str], Awaitable[None]]
"""Called with each Signal and the subject to answer on ("" when no answer is expected)."""


class BusError(Exception):
    """A failure a user can act on: ``str()`` is one sentence that says what to do."""


class BusUnavailableError(BusError):
    """The NATS server cannot be reached (or went away and has not come back)."""


class BusAuthError(BusError):
    """The server refused the credentials."""


class NoRespondersError(BusError):
    """Nobody listens on the subject (a worker that went away): answered at once."""


class BusTimeoutError(BusError):
    """No answer within the time asked for."""


class Subscription(Protocol):
    async def unsubscribe(self) -> None: ...


class Synapse(Protocol):
    url: str

    async def connect(self) -> None:
        """Connect (raises ``BusUnavailableError`` or ``BusAuthError`` with what to do)."""
        ...

    async def close(self) -> None:
        """Drain and disconnect; safe to call twice."""
        ...

    async def publish(self, subject: str, signal: Signal, reply: str = "") -> None: ...

    async def subscribe(self, subject: str, handler: Handler) -> Subscription:
        """``handler`` gets every Signal on ``subject`` (a trailing ``>`` matches the rest).  A
        message that is not a valid Signal is dropped and logged at the edge, never handed on."""
        ...

    async def request(self, subject: str, signal: Signal, timeout: float) -> Signal:
        """Publish and wait for one answer; ``NoRespondersError`` at once when nobody listens,
        ``BusTimeoutError`` after ``timeout``."""
        ...

    def inbox(self) -> str:
        """A new subject nobody else uses, for one task's answers."""
        ...


@dataclass(frozen=True)
class Connection:
    """How to reach a bus: what ``nexus worker --connect/--credentials`` and Settings → Remote
    worker name.  Credentials are a file's path; its contents are read at connect time only."""

    url: str
    credentials: Path | None = None
    tls_ca: Path | None = None
    prefix: str = "nexus"
    name: str = ""
    """This end's name as the server and the other ends see it (a worker's host name)."""


def open_synapse(connection: Connection) -> Synapse:
    """The Synapse for ``connection.url``'s scheme (not yet connected)."""
    scheme = connection.url.split("://", 1)[0].lower() if "://" in connection.url else ""
    if scheme == "memory":
        from nexus_desktop.bus.memory_synapse import MemorySynapse

        return MemorySynapse(connection.url)
    if scheme in ("nats", "tls"):
        from nexus_desktop.bus.nats_synapse import NatsSynapse

        return NatsSynapse(connection)
    raise BusError(
        f"{connection.url!r} is not a bus address: use nats://HOST:4222 (or tls://HOST:4222), "
        "or memory://NAME within one process"
    )


def subjects(prefix: str) -> SubjectNames:
    return SubjectNames(prefix)


@dataclass(frozen=True)
class SubjectNames:
    prefix: str

    @property
    def directory(self) -> str:
        return f"{self.prefix}.directory"

    @property
    def discover(self) -> str:
        return f"{self.prefix}.discover"

    def worker_tasks(self, worker: str) -> str:
        return f"{self.prefix}.worker.{worker}.task"
