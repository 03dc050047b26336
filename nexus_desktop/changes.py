"""Change events: who wrote what, so every view showing it can refresh (the Anki "ops" pattern).

A writer (a service, the CLI, the database watcher) calls ``core.changes.emit(Change(...))`` after
its write has landed; views subscribe and reload what they show.  Listeners run in order on the
emitter's thread, so a view that must redraw on the Qt thread is handed its change there by
whoever emits on that thread (the services emit from the event loop, which is the Qt thread).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

log = logging.getLogger(__name__)

ChangeKind = Literal["characters", "chats", "messages", "settings", "personas", "groups", "memories"]


@dataclass(frozen=True)
class Change:
    kind: ChangeKind
    chat_id: int | None = None
    """None with kind "messages"/"chats": any chat may have changed."""
    character_id: int | None = None
    origin: object | None = None
    """Who made it, so a view may skip its own echo."""


T = TypeVar("T")


class Listeners(Generic[T]):
    """Who wants to hear about something: subscribe to hear, emit to tell them all."""

    def __init__(self) -> None:
        self._listeners: list[Callable[[T], object]] = []
        self._lock = threading.Lock()

    def subscribe(self, listener: Callable[[T], object]) -> Callable[[], None]:
        """Call ``listener`` with everything emitted from now on; returns the function that stops it."""
        with self._lock:
            self._listeners = [*self._listeners, listener]

        def unsubscribe() -> None:
            with self._lock:
                self._listeners = [known for known in self._listeners if known is not listener]

        return unsubscribe

    def emit(self, item: T) -> None:
        """Call every listener, in the order they subscribed, on this thread.

        A listener that raises is logged and the others still hear: one broken view must not
        stop the rest from refreshing."""
        for listener in self._listeners:  # copy-on-write: unsubscribing mid-emit is safe
            try:
                listener(item)
            except Exception:
                log.exception("A listener failed on %s", item)


class Changes(Listeners[Change]):
    """The app's change bus: views subscribe to hear about writes; writers emit after one."""
