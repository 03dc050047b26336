"""Model-call metrics: every call to a model becomes a ``model_call`` row, read by the Inference
dashboard and the Prometheus endpoint.

``MetricsRecorder.record`` is called from the event loop (chat, router) and from the gate's
thread; it must never slow them or fail, so it only queues the call (``db.background_writer``, as
the training collector does), and one writer thread inserts each batch in one transaction.  A full
queue drops the call and counts it (logged once): losing a metric is better than holding up a reply.

The queries (``inference_summary``, ``inference_series``) are plain synchronous functions: call
them from a worker thread, never the event loop.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from math import floor
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert

from nexus_desktop.control.tables import ModelCall
from nexus_desktop.db.background_writer import BackgroundWriter
from nexus_desktop.llm.contract import ChatInput, ChatOutput, ModelSource, RunContext

log = logging.getLogger(__name__)

RecordCall = Callable[[ModelCall], None]
"""What a caller is handed to record a model call: ``MetricsRecorder.record``."""

_WRITE_ATTEMPTS = 5
_TABLE = ModelCall.__table__  # type: ignore[attr-defined]
_COLUMNS = tuple(column.name for column in _TABLE.columns if column.name != "id")


def as_utc(moment: datetime) -> datetime:
    """The app's rows are UTC (stored as text without a zone); a naive moment is taken as UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _sql_time(moment: datetime) -> str:
    # SQLAlchemy's own DATETIME text, so string comparison in SQL orders correctly.
    return as_utc(moment).strftime("%Y-%m-%d %H:%M:%S.%f")


def _brief(error: BaseException) -> str:
    # SQLAlchemy's message carries every parameter of the batch: keep the log line short.
    cause = getattr(error, "orig", None) or error
    return f"{type(cause).__name__}: {cause}"[:300]


_JOB_FOLDER = re.compile(r"^\d+-")


def adapter_label(adapter: Path | str | None) -> str:
    """A short, stable name for an adapter: every training job's file is called adapter.gguf, so
    the job's folder (``00007-router``) names it; an adapter added by hand keeps its file name."""
    if not adapter:
        return ""
    path = Path(adapter)
    for parent in path.parents:
        if _JOB_FOLDER.match(parent.name):
            return parent.name
    return path.name


# Recording ---------------------------------------------------------------------------------------


class MetricsRecorder:
    """Model calls into ``model_call`` rows, written in batches by a thread of its own."""

    def __init__(
        self, engine: Engine, *, max_pending: int = 50_000, batch_size: int = 2000, interval: float = 0.25
    ) -> None:
        self.engine = engine
        self._warned_full = False
        self.received = 0
        self.stored = 0
        self._lost = 0
        self._writer: BackgroundWriter[ModelCall] = BackgroundWriter(
            "nexus-metrics", self._write, max_pending=max_pending, batch_size=batch_size, interval=interval
        )

    @property
    def dropped(self) -> int:
        """Calls lost because the queue was full, the recorder was closed or the database failed."""
        return self._writer.dropped + self._lost

    def record(self, call: ModelCall) -> None:
        """Queue a call's row; never raises, never blocks."""
        if self._writer.put(call):
            self.received += 1
        elif not self._warned_full and not self._writer.closed:
            self._warned_full = True
            log.warning("Model-call metrics are coming faster than they are stored; dropping some")

    @property
    def pending(self) -> int:
        """Calls queued and not yet taken by the writer thread."""
        return self._writer.pending

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every call recorded so far is stored; False if that took longer than timeout."""
        return self._writer.flush(timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Store everything still queued, then stop the writer thread."""
        self._writer.close(timeout)

    def _write(self, batch: list[ModelCall]) -> None:
        rows: list[dict[str, Any]] = []
        for call in batch:
            try:
                row = {name: getattr(call, name) for name in _COLUMNS}
                row["at"] = as_utc(row["at"])
                rows.append(row)
            except Exception:
                log.warning("A model-call row could not be read: %r", call, exc_info=True)
                self._lost += 1
        if not rows:
            return
        for attempt in range(_WRITE_ATTEMPTS):
            try:
                with self.engine.begin() as conn:
                    conn.execute(insert(_TABLE), rows)
                self.stored += len(rows)
                return
            except Exception as error:
                log.warning("Storing model-call metrics failed (attempt %d): %s", attempt + 1, _brief(error))
                time.sleep(0.1 * (attempt + 1))
        self._lost += len(rows)


@dataclass(frozen=True)
class CallSite:
    """Who makes a model call, so a wrapped call can record its own row."""

    record_call: RecordCall
    service: str
    task_type: str
    model: str
    adapter: str = ""
    source: str = "local"
    character: str = ""

    def row(self, output: ChatOutput | None, seconds: float) -> ModelCall:
        stats = output.stats if output is not None else None
        return ModelCall(
            service=self.service,
            task_type=self.task_type,
            source=self.source,
            model=self.model,
            adapter=self.adapter,
            character=self.character,
            tokens_in=stats.prompt_tokens if stats else 0,
            tokens_out=stats.completion_tokens if stats else 0,
            first_token_seconds=stats.first_token_seconds if stats else None,
            seconds=seconds,
            ok=output is not None,
        )

    def emit(self, output: ChatOutput | None, seconds: float) -> None:
        try:
            self.record_call(self.row(output, seconds))
        except Exception:  # a recorder is not supposed to raise; a foreign callback might
            log.debug("Recording a model call failed", exc_info=True)


async def timed_call(
    source: ModelSource, request: ChatInput, context: RunContext, site: CallSite | None
) -> ChatOutput:
    """``await source(request, context)``, recorded at ``site`` (ok or not) when one is given.

    Latency is the caller's wall time; time to first token and token counts are the source's."""
    if site is None:
        return await source(request, context)
    started = time.perf_counter()
    try:
        output = await source(request, context)
    except BaseException:
        site.emit(None, time.perf_counter() - started)
        raise
    site.emit(output, time.perf_counter() - started)
    return output


# Queries -----------------------------------------------------------------------------------------


def read_rows(engine: Engine, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
    """A plain SELECT on a pooled connection in autocommit mode.

    The engine's sessions begin with BEGIN IMMEDIATE (the write lock); a scan of a large table
    under it would hold up every writer (the chat saving a message) for its whole length.  A bare
    SELECT reads a WAL snapshot and locks nothing."""
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        try:
            cursor.execute(sql, params or {})
            return list(cursor.fetchall())
        finally:
            cursor.close()
    finally:
        connection.close()  # back to the pool


def read_snapshot(engine: Engine, *queries: tuple[str, dict[str, Any]]) -> list[list[tuple[Any, ...]]]:
    """Several SELECTs that see the same data: one deferred transaction, which reads a WAL snapshot
    and, unlike the engine's BEGIN IMMEDIATE, never takes (or waits for) the write lock."""
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        try:
            cursor.execute("BEGIN")
            try:
                return [list(cursor.execute(sql, params).fetchall()) for sql, params in queries]
            finally:
                cursor.execute("COMMIT")
        finally:
            cursor.close()
    finally:
        connection.close()


def percentile(ordered: Sequence[float], fraction: float) -> float | None:
    """Linear interpolation between the closest ranks (numpy's default) of sorted values."""
    if not ordered:
        return None
    position = fraction * (len(ordered) - 1)
    low = floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


# Counts and sums per group are computed by SQLite; only the successful calls' times come back to
# Python for the percentiles (5 columns instead of 8 per row: the summary of 100k calls is ~2x faster).
_RATED = "ok AND first_token_seconds IS NOT NULL AND seconds > first_token_seconds AND tokens_out > 0"
_TOTALS = (
    "SELECT {keys}, COUNT(*), TOTAL(ok = 0), TOTAL(tokens_in), TOTAL(tokens_out), "
    f"TOTAL(CASE WHEN {_RATED} THEN tokens_out END), "
    f"TOTAL(CASE WHEN {_RATED} THEN seconds - first_token_seconds END) "
    "FROM model_call WHERE at >= :since{filter} GROUP BY {keys}"
)
_TIMES = "SELECT {keys}, seconds, first_token_seconds FROM model_call WHERE at >= :since AND ok{filter}"


@dataclass
class _Window:
    """One group's calls: totals from SQL, then the successful calls' times."""

    calls: int
    errors: int
    tokens_in: int
    tokens_out: int
    rated_tokens: float
    rated_seconds: float
    latencies: list[float] = field(default_factory=list)
    first_tokens: list[float] = field(default_factory=list)

    @property
    def tokens_per_second(self) -> float | None:
        return self.rated_tokens / self.rated_seconds if self.rated_seconds > 0 else None

    def percentiles(self, latency: Sequence[float], first_token: Sequence[float]) -> list[float | None]:
        latencies, firsts = sorted(self.latencies), sorted(self.first_tokens)
        return [percentile(latencies, f) for f in latency] + [percentile(firsts, f) for f in first_token]


def _windows(
    engine: Engine, keys: str, width: int, params: dict[str, Any], where: str
) -> dict[tuple[Any, ...], _Window]:
    totals, times = read_snapshot(
        engine,
        (_TOTALS.format(keys=keys, filter=where), params),
        (_TIMES.format(keys=keys, filter=where), params),
    )
    windows = {
        tuple(row[:width]): _Window(
            int(row[width]), int(row[width + 1]), int(row[width + 2]), int(row[width + 3]), *row[width + 4 :]
        )
        for row in totals
    }
    for row in times:
        window = windows.get(row[:width])
        if window is None:
            continue  # cannot happen inside one snapshot; never trust it blindly
        window.latencies.append(row[width])
        if row[width + 1] is not None:
            window.first_tokens.append(row[width + 1])
    return windows


def _where(services: Iterable[str] | None, task_types: Iterable[str] | None) -> tuple[str, dict[str, Any]]:
    clauses, params = "", dict[str, Any]()
    for column, values in (("service", services), ("task_type", task_types)):
        if values is None:
            continue
        names = [f"{column}_{index}" for index, _ in enumerate(values)]
        params.update(zip(names, values, strict=True))
        clauses += f" AND {column} IN ({', '.join(':' + name for name in names) or 'NULL'})"
    return clauses, params


@dataclass(frozen=True)
class InferenceRow:
    """One model (with one source and adapter) over a window.  Times are in seconds."""

    model: str
    source: str
    adapter: str
    calls: int
    errors: int
    tokens_in: int
    tokens_out: int
    tokens_per_second: float | None
    """Completion tokens over generation time (latency minus time to first token) of the
    successful calls; None when no call generated for a measurable time."""
    first_token_p50: float | None
    first_token_p95: float | None
    latency_p50: float | None
    latency_p95: float | None
    latency_p99: float | None


def inference_summary(
    engine: Engine,
    since: datetime,
    *,
    services: Iterable[str] | None = None,
    task_types: Iterable[str] | None = None,
) -> list[InferenceRow]:
    """Per (model, source, adapter), the calls since ``since``, busiest first.  Percentiles are
    over the window's successful calls; a failed call counts in ``calls`` and ``errors`` only."""
    where, params = _where(
        list(services) if services is not None else None, list(task_types) if task_types is not None else None
    )
    params["since"] = _sql_time(since)
    rows = []
    for (model, source, adapter), window in _windows(
        engine, "model, source, adapter", 3, params, where
    ).items():
        p50, p95, p99, first_p50, first_p95 = window.percentiles((0.50, 0.95, 0.99), (0.50, 0.95))
        rows.append(
            InferenceRow(
                model,
                source,
                adapter,
                window.calls,
                window.errors,
                window.tokens_in,
                window.tokens_out,
                window.tokens_per_second,
                first_p50,
                first_p95,
                p50,
                p95,
                p99,
            )
        )
    rows.sort(key=lambda row: (-row.calls, row.model, row.source, row.adapter))
    return rows


@dataclass(frozen=True)
class InferenceSeries:
    """One model's figures per time bucket, as parallel lists ready to plot.

    ``times`` are bucket starts in Unix seconds (UTC); a bucket without a successful call has
    ``nan`` figures so a plot shows a gap rather than a fake zero."""

    model: str
    times: list[float]
    calls: list[int]
    tokens_per_second: list[float]
    latency_p50: list[float]
    latency_p95: list[float]
    first_token_p50: list[float]


def inference_series(
    engine: Engine, since: datetime, bucket_seconds: float, *, task_types: Iterable[str] | None = None
) -> list[InferenceSeries]:
    """Per model, tokens/s, latency and time-to-first-token percentiles in fixed time buckets."""
    if bucket_seconds < 1:
        raise ValueError(f"bucket_seconds must be at least 1, not {bucket_seconds}")
    where, params = _where(None, list(task_types) if task_types is not None else None)
    params.update(since=_sql_time(since), bucket=bucket_seconds)
    # The bucket's number, computed by SQLite from the UTC text: parsing datetimes in Python is slower.
    keys = "model, CAST(strftime('%s', at) / :bucket AS INTEGER)"
    nan = float("nan")
    by_model: dict[str, InferenceSeries] = {}
    for (model, bucket), window in sorted(_windows(engine, keys, 2, params, where).items()):
        series = by_model.get(model)
        if series is None:
            series = by_model[model] = InferenceSeries(model, [], [], [], [], [], [])
        p50, p95, first_p50 = (
            nan if value is None else value for value in window.percentiles((0.50, 0.95), (0.50,))
        )
        rate = window.tokens_per_second
        series.times.append(float(bucket * bucket_seconds))
        series.calls.append(window.calls)
        series.tokens_per_second.append(nan if rate is None else rate)
        series.latency_p50.append(p50)
        series.latency_p95.append(p95)
        series.first_token_p50.append(first_p50)
    return list(by_model.values())
