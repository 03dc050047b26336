"""``memory://NAME``: the in-process Synapse.

Every MemorySynapse that opens the same NAME on the same event loop shares one bus.  Signals pass
as objects (nothing is encoded).  Subjects match exactly, or by a trailing ``>`` (``a.>`` matches
``a.b`` and ``a.b.c``, as in NATS).  Like NATS, each subscription hears its Signals one at a time,
in the order they were published; a handler that must not hold up the next Signal starts a task.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from dataclasses import dataclass, field

from nexus_desktop.bus.signals import Signal
from nexus_desktop.bus.synapse import (
    BusTimeoutError,
    BusUnavailableError,
    Handler,
    NoRespondersError,
)

log = logging.getLogger(__name__)


class _MemorySubscription:
    __slots__ = ("_bus", "_draining", "_queue", "handler", "subject")

    def __init__(self, bus: _Bus, subject: str, handler: Handler) -> None:
        self._bus = bus
        self.subject = subject
        self.handler = handler
        self._queue: deque[tuple[Signal, str]] = deque()
        self._draining: asyncio.Task[None] | None = None

    def deliver(self, signal: Signal, reply: str) -> None:
        self._queue.append((signal, reply))
        if self._draining is None:
            self._draining = self._bus.loop.create_task(self._drain())

    async def _drain(self) -> None:
        try:
            while self._queue:
                signal, reply = self._queue.popleft()
                try:
                    await self.handler(signal, reply)
                except Exception:
                    log.exception("A bus handler on %s failed on a %s signal", self.subject, signal.kind)
        finally:
            self._draining = None

    async def unsubscribe(self) -> None:
        self._bus.remove(self)
        self._queue.clear()
        if self._draining is not None and self._draining is not asyncio.current_task():
            self._draining.cancel()


@dataclass(eq=False)
class _Bus:
    loop: asyncio.AbstractEventLoop
    exact: dict[str, list[_MemorySubscription]] = field(default_factory=dict)
    wildcard: list[tuple[str, _MemorySubscription]] = field(default_factory=list)
    """(prefix up to and including the dot before ``>``, subscription)"""
    replies: dict[str, asyncio.Future[Signal]] = field(default_factory=dict)
    users: int = 0

    def add(self, subscription: _MemorySubscription) -> None:
        subject = subscription.subject
        if subject == ">" or subject.endswith(".>"):
            self.wildcard.append((subject[:-1], subscription))
        else:
            self.exact.setdefault(subject, []).append(subscription)

    def remove(self, subscription: _MemorySubscription) -> None:
        listeners = self.exact.get(subscription.subject)
        if listeners is not None and subscription in listeners:
            listeners.remove(subscription)
            if not listeners:
                del self.exact[subscription.subject]
        self.wildcard = [(prefix, known) for prefix, known in self.wildcard if known is not subscription]

    def route(self, subject: str, signal: Signal, reply: str) -> int:
        """Hand ``signal`` to everyone listening on ``subject``; how many heard it."""
        waiting = self.replies.pop(subject, None)
        heard = 0
        if waiting is not None:
            if not waiting.done():
                waiting.set_result(signal)
            heard = 1
        for subscription in self.exact.get(subject, ()):
            subscription.deliver(signal, reply)
            heard += 1
        for prefix, subscription in self.wildcard:
            if subject.startswith(prefix) and len(subject) > len(prefix):
                subscription.deliver(signal, reply)
                heard += 1
        return heard


_buses: dict[str, _Bus] = {}
_synapse_ids = itertools.count(1)


class MemorySynapse:
    """The Synapse for ``memory://NAME``."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.name = url.split("://", 1)[-1]
        self._bus: _Bus | None = None
        self._subscriptions: list[_MemorySubscription] = []
        self._inbox_prefix = f"_INBOX.m{next(_synapse_ids)}."
        self._inbox_ids = itertools.count(1)

    async def connect(self) -> None:
        if self._bus is not None:
            return
        loop = asyncio.get_running_loop()
        bus = _buses.get(self.name)
        if bus is None or bus.loop is not loop or bus.loop.is_closed():
            bus = _buses[self.name] = _Bus(loop)
        bus.users += 1
        self._bus = bus

    async def close(self) -> None:
        bus, self._bus = self._bus, None
        if bus is None:
            return
        for subscription in self._subscriptions:
            await subscription.unsubscribe()
        self._subscriptions.clear()
        bus.users -= 1
        if bus.users <= 0 and _buses.get(self.name) is bus:
            del _buses[self.name]

    def _connected(self) -> _Bus:
        if self._bus is None:
            raise BusUnavailableError(f"The bus {self.url} is not connected: connect first.")
        return self._bus

    async def publish(self, subject: str, signal: Signal, reply: str = "") -> None:
        self._connected().route(subject, signal, reply)

    async def subscribe(self, subject: str, handler: Handler) -> _MemorySubscription:
        bus = self._connected()
        subscription = _MemorySubscription(bus, subject, handler)
        bus.add(subscription)
        self._subscriptions.append(subscription)
        return subscription

    async def request(self, subject: str, signal: Signal, timeout: float) -> Signal:
        bus = self._connected()
        inbox = self.inbox()
        answer: asyncio.Future[Signal] = bus.loop.create_future()
        bus.replies[inbox] = answer
        if not bus.route(subject, signal, inbox):
            del bus.replies[inbox]
            raise NoRespondersError(f"Nobody on {self.url} listens on {subject}.")
        try:
            async with asyncio.timeout(timeout):  # awaits the future itself: no helper task or waiter
                return await answer
        except TimeoutError:
            raise BusTimeoutError(f"No answer on {subject} within {timeout:g} s.") from None
        finally:
            bus.replies.pop(inbox, None)

    def inbox(self) -> str:
        return f"{self._inbox_prefix}{next(self._inbox_ids)}"
