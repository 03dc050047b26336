"""The collector: chat hands it signals, a writer thread turns them into examples in SQLite.

``collect`` is called from the UI's event loop and must never fail or slow it down, so it only
appends to a bounded in-memory deque (atomic under the GIL, no lock).  The writer thread wakes
every ``interval`` seconds (or when the deque is half full), converts, filters and de-duplicates the
signals and inserts them in one transaction per batch.  ``flush()`` and ``close()`` wait until
every collected signal is on disk.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nexus_desktop.training.examples import Example, Signal, examples_from, rejection_reason

log = logging.getLogger(__name__)

_INSERT = (
    "INSERT OR IGNORE INTO training_example (dataset, kind, signal, content_hash, payload, created_at) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
_WRITE_ATTEMPTS = 5


@dataclass(frozen=True)
class CollectorStats:
    received: int
    stored: int
    duplicates: int
    rejected: dict[str, int]
    dropped: int
    """Signals lost because the queue was full or the collector was closed."""
    errors: int


class Collector:
    def __init__(
        self, database: Path, *, max_pending: int = 100_000, batch_size: int = 2000, interval: float = 0.05
    ) -> None:
        self.database = database
        self._pending: deque[Signal] = deque()
        self._max_pending = max_pending
        self._wake_at = max(1, max_pending // 2)
        self._batch_size = batch_size
        self._interval = interval
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._stop = False
        self._closed = False
        self._seen: set[str] = set()
        self._received = 0
        self._dropped = 0
        self._stored = 0
        self._duplicates = 0
        self._errors = 0
        self._rejected: Counter[str] = Counter()
        self._thread = threading.Thread(target=self._run, name="nexus-collector", daemon=True)
        self._thread.start()

    # The caller's side: cheap and infallible ---------------------------------------------------

    def collect(self, signal: Signal) -> None:
        """Queue a signal; never raises, never blocks."""
        try:
            if self._closed or len(self._pending) >= self._max_pending:
                self._dropped += 1
                return
            self._pending.append(signal)
            self._received += 1
            if len(self._pending) == self._wake_at:
                self._wake.set()
        except Exception:  # a collector must never break the chat that feeds it
            self._dropped += 1

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything collected so far is stored; False if that took longer than timeout."""
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
        """Store everything still queued, then stop the writer thread."""
        self._closed = True
        self._stop = True
        self._wake.set()
        self._thread.join(timeout)

    def stats(self) -> CollectorStats:
        return CollectorStats(
            received=self._received,
            stored=self._stored,
            duplicates=self._duplicates,
            rejected=dict(self._rejected),
            dropped=self._dropped,
            errors=self._errors,
        )

    # The writer thread --------------------------------------------------------------------------

    def _run(self) -> None:
        connection: sqlite3.Connection | None = None
        try:
            connection = sqlite3.connect(self.database, isolation_level=None, check_same_thread=False)
            connection.execute("PRAGMA busy_timeout=5000")
            connection.execute("PRAGMA synchronous=NORMAL")
            self._load_seen(connection)
            while True:
                self._wake.wait(self._interval)
                self._wake.clear()
                stopping = self._stop
                while self._pending:
                    self._idle.clear()
                    self._write_batch(connection, self._take_batch())
                self._idle.set()
                if stopping:
                    break
        except Exception:
            log.exception("The training collector stopped; new signals are not stored")
            self._errors += 1
            self._dropped += len(self._pending)
            self._pending.clear()
            self._closed = True
        finally:
            self._idle.set()
            if connection is not None:
                connection.close()

    def _load_seen(self, connection: sqlite3.Connection) -> None:
        self._seen.update(row[0] for row in connection.execute("SELECT content_hash FROM training_example"))

    def _take_batch(self) -> list[Signal]:
        batch: list[Signal] = []
        pending = self._pending
        while pending and len(batch) < self._batch_size:
            batch.append(pending.popleft())
        return batch

    def _rows(self, batch: list[Signal]) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = []
        now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")  # SQLAlchemy's own DATETIME text
        for signal in batch:
            try:
                examples = examples_from(signal)
            except Exception:
                log.warning("A training signal could not be read: %r", signal, exc_info=True)
                self._rejected["unreadable"] += 1
                continue
            for example in examples:
                row = self._row(example, now)
                if row is not None:
                    rows.append(row)
        return rows

    def _row(self, example: Example, now: str) -> tuple[Any, ...] | None:
        try:
            reason = rejection_reason(example)
        except Exception:
            reason = "unreadable"
        if reason is not None:
            self._rejected[reason] += 1
            return None
        payload_json = example.payload_json()
        digest = example.content_hash(payload_json)
        if digest in self._seen:
            self._duplicates += 1
            return None
        self._seen.add(digest)
        return (example.dataset, example.kind, example.signal, digest, payload_json, now)

    def _write_batch(self, connection: sqlite3.Connection, batch: list[Signal]) -> None:
        rows = self._rows(batch)
        if not rows:
            return
        for attempt in range(_WRITE_ATTEMPTS):
            try:
                connection.execute("BEGIN IMMEDIATE")
                before = connection.total_changes
                connection.executemany(_INSERT, rows)
                connection.execute("COMMIT")
                self._stored += connection.total_changes - before
                return
            except sqlite3.Error:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                log.warning("Storing training examples failed (attempt %d)", attempt + 1, exc_info=True)
                time.sleep(0.1 * (attempt + 1))
        self._errors += 1
        self._dropped += len(rows)
