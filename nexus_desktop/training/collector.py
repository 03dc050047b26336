"""The collector: chat hands it signals, a writer thread turns them into examples in SQLite.

``collect`` is called from the UI's event loop and must never fail or slow it down, so it only
queues the signal (``db.background_writer``).  The writer thread converts, filters and
de-duplicates the signals and inserts them in one transaction per batch.  ``flush()`` and
``close()`` wait until every collected signal is on disk.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nexus_desktop.db.background_writer import BackgroundWriter
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
        self._connection: sqlite3.Connection | None = None
        self._seen: set[str] = set()
        self._received = 0
        self._lost = 0
        self._stored = 0
        self._duplicates = 0
        self._errors = 0
        self._rejected: Counter[str] = Counter()
        self._writer: BackgroundWriter[Signal] = BackgroundWriter(
            "nexus-collector",
            self._write,
            max_pending=max_pending,
            batch_size=batch_size,
            interval=interval,
            finish=self._disconnect,
        )

    # The caller's side: cheap and infallible ---------------------------------------------------

    def collect(self, signal: Signal) -> None:
        """Queue a signal; never raises, never blocks."""
        if self._writer.put(signal):
            self._received += 1

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything collected so far is stored; False if that took longer than timeout."""
        return self._writer.flush(timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Store everything still queued, then stop the writer thread."""
        self._writer.close(timeout)

    def stats(self) -> CollectorStats:
        return CollectorStats(
            received=self._received,
            stored=self._stored,
            duplicates=self._duplicates,
            rejected=dict(self._rejected),
            dropped=self._writer.dropped + self._lost,
            errors=self._errors,
        )

    # The writer thread --------------------------------------------------------------------------

    def _write(self, batch: list[Signal]) -> None:
        try:
            if self._connection is None:
                self._connection = sqlite3.connect(
                    self.database, isolation_level=None, check_same_thread=False
                )
                self._connection.execute("PRAGMA busy_timeout=5000")
                self._connection.execute("PRAGMA synchronous=NORMAL")
                self._load_seen(self._connection)
            self._write_batch(self._connection, batch)
        except Exception:
            log.exception("The training collector stopped; new signals are not stored")
            self._errors += 1
            self._lost += len(batch)
            raise

    def _disconnect(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _load_seen(self, connection: sqlite3.Connection) -> None:
        self._seen.update(row[0] for row in connection.execute("SELECT content_hash FROM training_example"))

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
        self._lost += len(rows)
