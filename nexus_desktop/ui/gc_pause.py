"""Pausing Python's cyclic garbage collector around work that makes many short-lived objects.

Its own module so that code on the start-up path (the lazy chat history) can use it without
loading the Markdown renderer, which is imported with the first message.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

_collection_pauses = 0
_collection_lock = threading.Lock()


@contextlib.contextmanager
def paused_garbage_collection() -> Iterator[None]:
    """No cyclic garbage collection while many short-lived objects are made on a worker thread.

    A huge table makes a token per cell (110,000 for 10,000 rows); a full collection walks them
    all while every thread waits, the Qt thread too (60-90 ms here).  The tokens hold no cycles:
    they are freed as soon as the message is rendered, so pausing collection costs nothing.
    Nested and concurrent pauses are counted: collection resumes when the last one ends.
    """
    global _collection_pauses
    with _collection_lock:
        _collection_pauses += 1
        if _collection_pauses == 1:
            gc.disable()
    try:
        yield
    finally:
        with _collection_lock:
            _collection_pauses -= 1
            if _collection_pauses == 0:
                gc.enable()
