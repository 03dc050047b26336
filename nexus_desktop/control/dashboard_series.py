"""Time series for the Inference dashboard: model calls read once, then only the rows after the last.

A day of history at one-second resolution is 86,400 points per series; rereading it ten times a
second would keep SQLite and the GIL busy, so ``InferenceReader`` remembers the last row id it saw
and appends what is new to growing float64 buffers.  A snapshot hands out views of the filled
part of each buffer: appends only write past that part (or into a fresh buffer when one grows),
so a snapshot the window holds never changes underneath it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Engine

from nexus_desktop.control.metrics import InferenceRow, inference_summary, read_rows

Floats = NDArray[np.float64]
UNIX_EPOCH_JULIAN_DAY = 2440587.5
METRICS = ("tokens_per_second", "first_token_seconds", "seconds")
"""What each series plots: generation speed, time to first token, latency (request to last token)."""
FETCH_ROWS = 8192
GAP_SECONDS = 120.0
"""Calls further apart than this are not joined by a line: the app was idle or closed between."""
SUMMARY_EVERY_SECONDS = 30.0
"""The percentile table rescans the window (seconds for a busy day): at most this often."""


class Growing:
    """An append-only pair of float64 arrays (x, y) with amortised O(1) appends."""

    def __init__(self, capacity: int = 1024) -> None:
        self._x: Floats = np.empty(capacity, dtype=np.float64)
        self._y: Floats = np.empty(capacity, dtype=np.float64)
        self._start = 0
        self._end = 0

    def __len__(self) -> int:
        return self._end - self._start

    def extend(self, xs: Floats, ys: Floats) -> None:
        xs, ys = self._break_gaps(xs, ys)
        count = len(xs)
        if self._end + count > len(self._x):
            # A fresh buffer: views handed out earlier keep pointing at the old one, unchanged.
            kept = self._end - self._start
            capacity = max(2 * (kept + count), 1024)
            x, y = np.empty(capacity, dtype=np.float64), np.empty(capacity, dtype=np.float64)
            x[:kept], y[:kept] = self._x[self._start : self._end], self._y[self._start : self._end]
            self._x, self._y, self._start, self._end = x, y, 0, kept
        self._x[self._end : self._end + count] = xs
        self._y[self._end : self._end + count] = ys
        self._end += count

    def _break_gaps(self, xs: Floats, ys: Floats) -> tuple[Floats, Floats]:
        """A NaN between two points further apart than ``GAP_SECONDS``: the plot draws no line
        across the hours nothing was asked of a model (its curves connect finite points only)."""
        if not len(xs):
            return xs, ys
        first = self._x[self._end - 1] if self._end > self._start else xs[0]
        before = np.concatenate(([first], xs[:-1]))
        gaps = np.nonzero(xs - before > GAP_SECONDS)[0]
        if not len(gaps):
            return xs, ys
        middle = (before[gaps] + xs[gaps]) / 2
        return np.insert(xs, gaps, middle), np.insert(ys, gaps, np.nan)

    def drop_before(self, x_min: float) -> None:
        """Forget points older than ``x_min`` (x is time, appended in order)."""
        live = self._x[self._start : self._end]
        self._start += int(np.searchsorted(live, x_min, side="left"))

    def view(self) -> tuple[Floats, Floats]:
        return self._x[self._start : self._end], self._y[self._start : self._end]


@dataclass(frozen=True)
class SeriesKey:
    model: str
    source: str

    @property
    def label(self) -> str:
        return f"{self.model or 'unknown model'} · {self.source}"


@dataclass(frozen=True)
class InferenceSnapshot:
    version: int
    """Changes whenever new calls arrived: the window redraws only then."""
    series: dict[SeriesKey, dict[str, tuple[Floats, Floats]]]
    """Per model and source, per metric in ``METRICS``: (unix seconds, value), oldest first."""
    summary: tuple[InferenceRow, ...]
    calls: int
    since: datetime


@dataclass
class _SeriesData:
    metrics: dict[str, Growing] = field(default_factory=lambda: {m: Growing() for m in METRICS})


class InferenceReader:
    """Reads model calls of the last ``window`` into per-series buffers; one thread at a time.

    Pass an engine that reads without locking (``db.engine.open_read_engine``): the first read
    scans the whole window."""

    def __init__(
        self,
        engine: Engine,
        *,
        window: timedelta = timedelta(hours=24),
        summary_every: float = SUMMARY_EVERY_SECONDS,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.engine = engine
        self.window = window
        self.summary_every = summary_every
        self._clock = clock
        self._last_id = 0
        self._series: dict[SeriesKey, _SeriesData] = {}
        self._version = 0
        self._summary: tuple[InferenceRow, ...] = ()
        self._summary_at = -math.inf
        self._loaded = False
        self._summary_stale = True

    def read(self) -> InferenceSnapshot:
        since = self._clock() - self.window
        cutoff = since.timestamp()
        if self._read_new(since):
            self._version += 1
            self._summary_stale = True
        for data in self._series.values():
            for buffer in data.metrics.values():
                buffer.drop_before(cutoff)
        # The read that loads the day shows the curves at once; the table follows on the next read.
        loading = self._summary_at == -math.inf and not self._loaded
        self._loaded = self._loaded or self._version > 0
        if not loading and self._summary_stale and time.monotonic() - self._summary_at >= self.summary_every:
            # The metrics module's own table (it scans the window: not at every refresh).
            self._summary = tuple(inference_summary(self.engine, since))
            self._summary_at = time.monotonic()
            self._summary_stale = False
        series = {key: {m: g.view() for m, g in data.metrics.items()} for key, data in self._series.items()}
        calls = sum(len(data.metrics["seconds"]) for data in self._series.values())
        return InferenceSnapshot(self._version, series, self._summary, calls, since)

    def _read_new(self, since: datetime) -> bool:
        if self._last_id:
            rows = read_rows(self.engine, _NEW_ROWS, {"after": self._last_id})
            grouped: dict[SeriesKey, list[Any]] = {}
            for row in rows:
                grouped.setdefault(SeriesKey(row[1] or "", row[2] or ""), []).append(row[3:])
                self._last_id = max(self._last_id, row[0])
            for key, group in grouped.items():
                self._append(key, np.array(group, dtype=np.float64).reshape(-1, 5))
            return bool(rows)
        # The first read: SQLite groups the window by series, and each series' numbers come back
        # as plain float tuples numpy turns into arrays at C speed (no Python work per call).
        start = since.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        keys = read_rows(self.engine, _SERIES_KEYS, {"since": start})
        last = max((row[2] for row in keys), default=0)
        for model, source, _ in keys:
            params = {"since": start, "model": model, "source": source, "last": last}
            self._append(
                SeriesKey(model or "", source or ""), read_floats(self.engine, _SERIES_ROWS, params, 5)
            )
        self._last_id = last
        return bool(keys)

    def _append(self, key: SeriesKey, table: Floats) -> None:
        data = self._series.setdefault(key, _SeriesData())
        at, tokens, first, seconds, ok = table.T
        known_first = first >= 0
        good = ok > 0
        generating = seconds - np.where(known_first, first, 0.0)
        speed_ok = good & (tokens > 0) & (generating > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            speed = tokens / generating
        data.metrics["tokens_per_second"].extend(at[speed_ok], speed[speed_ok])
        first_ok = good & known_first
        data.metrics["first_token_seconds"].extend(at[first_ok], first[first_ok])
        data.metrics["seconds"].extend(at[good], seconds[good])


def read_floats(engine: Engine, sql: str, params: dict[str, Any], columns: int) -> Floats:
    """A SELECT of numbers as one float64 array, without a transaction (like ``read_rows``).

    Rows arrive in chunks that become arrays at once: a day of calls never exists as hundreds of
    thousands of row tuples, which the garbage collector would walk, holding the GIL, while the
    window waits for it."""
    chunks = [np.empty((0, columns))]
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        try:
            cursor.execute(sql, params)
            while rows := cursor.fetchmany(FETCH_ROWS):
                chunks.append(np.array(rows, dtype=np.float64).reshape(-1, columns))
        finally:
            cursor.close()
    finally:
        connection.close()
    return np.concatenate(chunks)


# Unix seconds worked out by SQLite (no datetime object per row); an unknown time to first token
# comes back as -1 so every column stays a float.
_NUMBERS = (
    f"(julianday(at) - {UNIX_EPOCH_JULIAN_DAY}) * 86400.0, CAST(tokens_out AS REAL), "
    "COALESCE(first_token_seconds, -1.0), seconds, CAST(ok AS REAL)"
)
_NEW_ROWS = f"SELECT id, model, source, {_NUMBERS} FROM model_call WHERE id > :after ORDER BY id"
_SERIES_KEYS = "SELECT model, source, MAX(id) FROM model_call WHERE at >= :since GROUP BY model, source"
_SERIES_ROWS = (
    f"SELECT {_NUMBERS} FROM model_call WHERE at >= :since AND model = :model AND source = :source "
    "AND id <= :last ORDER BY id"
)
