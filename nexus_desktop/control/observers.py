"""Hand results to observers without ever waiting for one.

Each observer gets a thread of its own and a bounded queue: a slow one falls behind alone and
misses what does not fit (counted), one that raises is logged, and the publisher (the scheduler,
on the event loop) only ever does a ``put_nowait``.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")

BACKLOG = 256
"""Results an observer may fall behind by before it misses some."""


class _Subscription(Generic[T]):
    def __init__(self, observer: Callable[[T], None], name: str) -> None:
        self.observer = observer
        self.name = name
        self.queue: queue.Queue[tuple[T] | None] = queue.Queue(maxsize=BACKLOG)
        self.missed = 0
        self.failures = 0
        self.thread = threading.Thread(target=self._work, name=name, daemon=True)
        self.thread.start()

    def offer(self, item: T) -> None:
        try:
            self.queue.put_nowait((item,))
        except queue.Full:
            self.missed += 1
            if self.missed == 1:
                log.warning("Observer %s is too slow; it misses results until it catches up", self.name)

    def stop(self) -> None:
        try:
            self.queue.put_nowait(None)
        except queue.Full:
            # Full: it is stuck or far behind.  Drop one result to make room for the stop.
            try:
                self.queue.get_nowait()
            except queue.Empty:
                pass
            try:
                self.queue.put_nowait(None)
            except queue.Full:
                pass

    def _work(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            try:
                self.observer(item[0])
            except Exception:  # an observer's bug is its own: log it, keep delivering
                self.failures += 1
                if self.failures <= 3:
                    log.exception("Observer %s failed", self.name)


class Fanout(Generic[T]):
    """Delivers each published item to every subscriber, each on its own thread."""

    def __init__(self) -> None:
        self._subscriptions: list[_Subscription[T]] = []
        self._lock = threading.Lock()

    def subscribe(self, observer: Callable[[T], None]) -> Callable[[], None]:
        name = f"nexus-observer-{getattr(observer, '__qualname__', type(observer).__name__)}"
        subscription = _Subscription(observer, name)
        with self._lock:
            self._subscriptions = [*self._subscriptions, subscription]

        def unsubscribe() -> None:
            with self._lock:
                if subscription not in self._subscriptions:
                    return
                self._subscriptions = [s for s in self._subscriptions if s is not subscription]
            subscription.stop()

        return unsubscribe

    def publish(self, item: T) -> None:
        for subscription in self._subscriptions:  # a copy-on-write list: no lock needed to read
            subscription.offer(item)

    def missed(self) -> int:
        """Results dropped because an observer was behind, over all current subscribers."""
        return sum(subscription.missed for subscription in self._subscriptions)

    def close(self) -> None:
        with self._lock:
            subscriptions, self._subscriptions = self._subscriptions, []
        for subscription in subscriptions:
            subscription.stop()
