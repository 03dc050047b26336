"""A bounded queue drained by one writer thread in batches: callers never wait for SQLite.

The chat hands the training collector its signals and the metrics recorder its model calls from
the event loop, which must never block or fail on their account.  ``put`` only appends to a deque
(atomic under the GIL, no lock) and never raises; the thread wakes every ``interval`` seconds (or
when the queue is half full) and hands ``write`` one batch at a time.  ``flush()`` and ``close()``
wait until everything put so far has been written.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class BackgroundWriter(Generic[T]):
    def __init__(
        self,
        name: str,
        write: Callable[[list[T]], None],
        *,
        max_pending: int,
        batch_size: int,
        interval: float,
        finish: Callable[[], None] | None = None,
    ) -> None:
        """``write`` runs on the writer thread only; if it raises, the writer stops and counts what
        is left as dropped (the owner logs why).  ``finish`` runs on that thread as it ends."""
        self._write = write
        self._finish = finish
        self._pending: deque[T] = deque()
        self._max_pending = max_pending
        self._wake_at = max(1, max_pending // 2)
        self._batch_size = batch_size
        self._interval = interval
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._stop = False
        self.closed = False
        self.dropped = 0
        """Items not written because the queue was full, the writer was closed or it failed."""
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, item: T) -> bool:
        """Queue an item; False when it was dropped (queue full or writer closed).  Never raises."""
        try:
            if self.closed or len(self._pending) >= self._max_pending:
                self.dropped += 1
                return False
            self._pending.append(item)
            if len(self._pending) == self._wake_at:
                self._wake.set()
            return True
        except Exception:
            self.dropped += 1
            return False

    @property
    def pending(self) -> int:
        """Items queued and not yet taken by the writer thread."""
        return len(self._pending)

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything put so far is written; False if that took longer than timeout."""
        deadline = time.monotonic() + timeout
        while self._thread.is_alive():
            if not self._pending and self._idle.is_set():
                return True
            self._wake.set()
            if time.monotonic() > deadline:
                return False
            time.sleep(0.002)
        return not self._pending

    def close(self, timeout: float = 30.0) -> None:
        """Write everything still queued, then stop the thread."""
        self.closed = True
        self._stop = True
        self._wake.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        try:
            while True:
                self._wake.wait(self._interval)
                self._wake.clear()
                stopping = self._stop
                while self._pending:
                    self._idle.clear()
                    self._write(self._take_batch())
                self._idle.set()
                if stopping:
                    break
        except Exception:
            log.exception("The writer thread %s stopped; what is queued is not stored", self._thread.name)
            self.dropped += len(self._pending)
            self._pending.clear()
            self.closed = True
        finally:
            self._idle.set()
            if self._finish is not None:
                self._finish()

    def _take_batch(self) -> list[T]:
        batch: list[T] = []
        pending = self._pending
        while pending and len(batch) < self._batch_size:
            batch.append(pending.popleft())
        return batch
