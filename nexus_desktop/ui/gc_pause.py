"""When Python's cyclic garbage collector runs in the app: on the Qt thread only, and not while
a worker makes many short-lived objects.

**On the Qt thread.** Automatic collection runs in whichever thread happens to allocate.  When
that is a worker thread (reading a GGUF header, rendering Markdown) and the garbage holds Qt
objects, PySide destroys them there: the destructor takes Qt's signal-slot lock and then waits
for the GIL, while the Qt thread holds the GIL and waits for that lock (seen: the settings
dialog's layout call hung for good).  So once the app runs, automatic collection stays off and
``QtThreadCollector`` collects on the Qt thread instead, as often as Python's own thresholds say.

**Paused around bulk work.** A huge table makes a token per cell (110,000 for 10,000 rows); a
full collection walks them all while every thread waits, the Qt thread too (60-90 ms here).  The
tokens hold no cycles: they are freed as soon as the message is rendered, so pausing collection
costs nothing.  Nested and concurrent pauses are counted: collection resumes when the last ends.

Its own module so that code on the start-up path (the lazy chat history) can use it without
loading the Markdown renderer, which is imported with the first message.
"""

from __future__ import annotations

import contextlib
import gc
import threading
import time
from collections.abc import Iterator

from PySide6.QtCore import QObject, QTimer

CHECK_INTERVAL_MS = 200
"""How often the Qt thread looks at the allocation counts (a collection is due far less often)."""
FULL_COLLECTION_EVERY_S = 60.0
"""The least time between full collections.  Python's own rule (only when the objects that
survived since the last full one are a quarter of all) is not visible from Python; this keeps full
collections, the ones that walk every object, as rare."""

_collection_pauses = 0
_collection_lock = threading.Lock()
_collector: list[QtThreadCollector] = []


@contextlib.contextmanager
def paused_garbage_collection() -> Iterator[None]:
    """No cyclic garbage collection while many short-lived objects are made on a worker thread."""
    global _collection_pauses
    with _collection_lock:
        _collection_pauses += 1
        if _collection_pauses == 1 and not _collector:
            gc.disable()
    try:
        yield
    finally:
        with _collection_lock:
            _collection_pauses -= 1
            if _collection_pauses == 0 and not _collector:
                gc.enable()


class QtThreadCollector(QObject):
    """Runs the collections Python would run by itself, but on the Qt thread, from a timer."""

    def __init__(self) -> None:
        super().__init__()
        self._timer = QTimer(self, interval=CHECK_INTERVAL_MS)
        self._timer.timeout.connect(self.collect_if_due)
        self.collections = [0, 0, 0]
        """How many collections of each generation it ran (for tests and curiosity)."""
        self._last_full = time.monotonic()

    def start(self) -> None:
        gc.disable()
        self._timer.start()

    def collect_if_due(self) -> None:
        with _collection_lock:
            if _collection_pauses:
                return
        counts, thresholds = gc.get_count(), gc.get_threshold()
        if counts[0] <= thresholds[0]:
            return
        generation = 1 if counts[1] > thresholds[1] else 0
        if counts[2] > thresholds[2] and time.monotonic() - self._last_full >= FULL_COLLECTION_EVERY_S:
            generation = 2
            self._last_full = time.monotonic()
        gc.collect(generation)
        self.collections[generation] += 1


def collect_garbage_on_qt_thread() -> QtThreadCollector:
    """From now on, collect only on this (the Qt) thread; call it once the event loop runs."""
    if not _collector:
        collector = QtThreadCollector()
        collector.start()
        _collector.append(collector)
    return _collector[0]
