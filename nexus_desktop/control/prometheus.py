"""An optional Prometheus endpoint on 127.0.0.1, off by default (Settings → App).

Nothing is counted in memory: a custom collector reads the database when Prometheus scrapes, in
the HTTP server's own thread (never the app's event loop), so the figures are the same ones the
dashboards show and survive restarts.  Names follow Prometheus conventions: base units
(seconds, Unix timestamps), ``_total`` on counters, and only bounded labels (services, task types,
model files, task names; character names only on the budget gauges).
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import socketserver
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString
from sqlalchemy import Engine, create_engine, event

from nexus_desktop.control.health import loop_health
from nexus_desktop.control.metrics import read_rows
from nexus_desktop.control.policy import PolicyError, parse_policy

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
"""Loopback only: the figures name the user's models and characters."""
DEFAULT_PORT = 9464

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
FIRST_TOKEN_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CALL_LABELS = ["service", "task_type", "source", "model"]
HEALTH_LABELS = ("healthy", "degraded", "stalled")


class PrometheusEndpointError(Exception):
    """The endpoint could not start; ``str()`` says why and what to do."""


class PrometheusPortInUse(PrometheusEndpointError):
    def __init__(self, port: int) -> None:
        self.port = port
        super().__init__(
            f"The Prometheus endpoint did not start: port {port} on {HOST} is already in use by another "
            "program. Pick another port in Settings → App (Prometheus port), or stop the program using it."
        )


# The collector -----------------------------------------------------------------------------------


def _epoch(value: Any) -> float | None:
    """Unix seconds of a stored DATETIME (UTC text without a zone); None when unset or unreadable."""
    if value is None:
        return None
    try:
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _buckets(counts: Iterable[Any], edges: Iterable[float], total: int) -> list[tuple[str, float]]:
    pairs = [(floatToGoString(edge), float(count or 0)) for edge, count in zip(edges, counts, strict=True)]
    return [*pairs, ("+Inf", float(total))]


_CALLS_SQL = (
    "SELECT service, task_type, source, model, COUNT(*), TOTAL(ok = 0), TOTAL(tokens_in), "
    "TOTAL(tokens_out), TOTAL(seconds), COUNT(first_token_seconds), TOTAL(first_token_seconds), "
    "TOTAL(CASE WHEN seconds > first_token_seconds THEN seconds - first_token_seconds END)"
    + "".join(f", TOTAL(seconds <= {edge})" for edge in LATENCY_BUCKETS)
    + "".join(f", TOTAL(first_token_seconds <= {edge})" for edge in FIRST_TOKEN_BUCKETS)
    + " FROM model_call GROUP BY service, task_type, source, model"
)


def model_call_metrics(engine: Engine) -> list[Metric]:
    """Counters and histograms over every stored model call (one scan, grouped in SQL)."""
    calls = CounterMetricFamily("nexus_model_calls", "Model calls.", labels=CALL_LABELS)
    errors = CounterMetricFamily("nexus_model_call_errors", "Model calls that failed.", labels=CALL_LABELS)
    tokens = CounterMetricFamily(
        "nexus_model_tokens", "Tokens in (prompt) and out (completion).", labels=["direction", *CALL_LABELS]
    )
    generation = CounterMetricFamily(
        "nexus_model_generation_seconds",
        "Time spent generating after the first token; tokens out per second of it is the generation rate.",
        labels=CALL_LABELS,
    )
    latency = HistogramMetricFamily(
        "nexus_model_call_duration_seconds", "Request to last token.", labels=CALL_LABELS
    )
    first_token = HistogramMetricFamily(
        "nexus_model_call_first_token_seconds", "Request to first token.", labels=CALL_LABELS
    )
    rows = read_rows(engine, _CALLS_SQL)
    split = 12 + len(LATENCY_BUCKETS)
    for row in rows:
        labels = [str(value) for value in row[:4]]
        count, failed, tokens_in, tokens_out, seconds, first_count, first_sum, generated = row[4:12]
        calls.add_metric(labels, count)
        errors.add_metric(labels, failed)
        tokens.add_metric(["in", *labels], tokens_in)
        tokens.add_metric(["out", *labels], tokens_out)
        generation.add_metric(labels, generated)
        latency.add_metric(labels, _buckets(row[12:split], LATENCY_BUCKETS, count), seconds)
        first_token.add_metric(labels, _buckets(row[split:], FIRST_TOKEN_BUCKETS, first_count), first_sum)
    return [calls, errors, tokens, generation, latency, first_token]


def scheduler_metrics(engine: Engine) -> list[Metric]:
    runs = CounterMetricFamily(
        "nexus_scheduled_task_runs",
        "Finished runs (and skips) of each scheduled task.",
        labels=["task", "outcome"],
    )
    duration = GaugeMetricFamily(
        "nexus_scheduled_task_last_duration_seconds", "How long the last run took.", labels=["task"]
    )
    last = GaugeMetricFamily(
        "nexus_scheduled_task_last_finished_timestamp_seconds", "When the last run ended.", labels=["task"]
    )
    next_due = GaugeMetricFamily(
        "nexus_scheduled_task_next_due_timestamp_seconds", "When the task is next due.", labels=["task"]
    )
    counts = read_rows(
        engine,
        "SELECT task, outcome, COUNT(*) FROM task_run WHERE outcome != 'running' GROUP BY task, outcome",
    )
    states = read_rows(engine, "SELECT name, last_duration, last_finished, next_due FROM scheduled_task")
    for task, outcome, count in counts:
        runs.add_metric([task, outcome], count)
    for name, seconds, finished, due in states:
        for family, value in ((duration, seconds), (last, _epoch(finished)), (next_due, _epoch(due))):
            if value is not None:
                family.add_metric([name], value)
    return [runs, duration, last, next_due]


def loop_metrics(engine: Engine) -> list[Metric]:
    cycles = CounterMetricFamily(
        "nexus_loop_cycles", "Finished cycles of the loop, by kind and outcome.", labels=["kind", "outcome"]
    )
    counts = read_rows(
        engine,
        "SELECT kind, outcome, COUNT(*) FROM loop_cycle WHERE outcome != 'running' GROUP BY kind, outcome",
    )
    for kind, outcome, count in counts:
        cycles.add_metric([kind, outcome], count)
    return [cycles]


def health_metrics(engine: Engine) -> list[Metric]:
    label = loop_health(engine).label
    health = GaugeMetricFamily(
        "nexus_loop_health", "1 for the loop's current health label, 0 for the others.", labels=["label"]
    )
    for name in HEALTH_LABELS:
        health.add_metric([name], 1.0 if name == label else 0.0)
    return [health]


def budget_metrics(engine: Engine, today: str | None = None) -> list[Metric]:
    """Today's usage (local day, as the governor counts it) and each character's daily limits."""
    day = today or date.today().isoformat()
    used = GaugeMetricFamily("nexus_character_tokens_used", "Tokens used today.", labels=["character"])
    budget = GaugeMetricFamily(
        "nexus_character_token_budget", "Daily token budget (characters with one).", labels=["character"]
    )
    tools_used = GaugeMetricFamily(
        "nexus_character_tool_calls_used", "Tool calls made today.", labels=["character"]
    )
    tools_budget = GaugeMetricFamily(
        "nexus_character_tool_call_budget",
        "Daily tool-call limit (characters with one).",
        labels=["character"],
    )
    usage = read_rows(
        engine, "SELECT character, tokens, tool_calls FROM budget_usage WHERE day = :day", {"day": day}
    )
    policies = read_rows(
        engine, "SELECT c.name, p.policy FROM character_policy p JOIN character c ON c.id = p.character_id"
    )
    for character, tokens, tool_calls in usage:
        used.add_metric([character], tokens)
        tools_used.add_metric([character], tool_calls)
    limits: dict[str, tuple[int | None, int | None]] = {}
    for name, raw in policies:
        try:
            policy = parse_policy(_json(raw))
        except (PolicyError, ValueError):
            continue  # the character editor reports a bad policy; a scrape just leaves it out
        tokens_limit, calls_limit = limits.get(name, (None, None))
        # Two characters may share a name; the governor counts usage by name, so the stricter wins.
        limits[name] = (
            _lower(tokens_limit, policy.daily_token_budget),
            _lower(calls_limit, policy.daily_tool_calls),
        )
    for name, (tokens_limit, calls_limit) in sorted(limits.items()):
        if tokens_limit is not None:
            budget.add_metric([name], tokens_limit)
        if calls_limit is not None:
            tools_budget.add_metric([name], calls_limit)
    return [used, budget, tools_used, tools_budget]


def _lower(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


def _json(raw: Any) -> dict[str, Any]:
    value = json.loads(raw) if isinstance(raw, str | bytes) else raw
    if not isinstance(value, dict):
        raise ValueError("a policy is a JSON object")
    return value


def read_only_engine(engine: Engine) -> Engine:
    """A second engine on the same file for scrapes: autocommit reads, no write lock, no writes.

    The app's engine begins every transaction with BEGIN IMMEDIATE, so a scrape through it would
    wait for (and then hold up) the chat's writes; here each SELECT reads a WAL snapshot instead,
    and ``query_only`` makes sure a scrape can never change the data."""
    reader = create_engine(engine.url, connect_args={"check_same_thread": False})

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # no implicit BEGIN: every statement on its own
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.execute("PRAGMA query_only=ON")
        cursor.close()

    event.listen(reader, "connect", on_connect)
    return reader


class ControlCollector(Collector):
    """Reads the database on every scrape; a section that fails is left out (logged once)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        """A read-only engine (``read_only_engine``): other modules' readers run on it too."""
        self._sections: list[tuple[str, Callable[[Engine], list[Metric]]]] = [
            ("model calls", model_call_metrics),
            ("scheduler", scheduler_metrics),
            ("loop", loop_metrics),
            ("loop health", health_metrics),
            ("budgets", budget_metrics),
        ]
        self._failing: set[str] = set()

    def collect(self) -> Iterable[Metric]:
        for name, section in self._sections:
            try:
                metrics = section(self.engine)
            except Exception:
                if name not in self._failing:
                    self._failing.add(name)
                    log.warning(
                        "Prometheus: the %s figures could not be read; leaving them out", name, exc_info=True
                    )
                continue
            self._failing.discard(name)
            yield from metrics


# The endpoint ------------------------------------------------------------------------------------


class _Server(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    # On Windows SO_REUSEADDR lets a second program bind a port that is in use; elsewhere it only
    # skips TIME_WAIT after a restart.
    allow_reuse_address = os.name != "nt"

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn, which can wait on DNS; the name is not needed.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = HOST, self.server_address[1]
        self.setup_environ()


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # the base class's parameter name
        pass  # a scrape every 15 s would flood stderr


@dataclass
class Endpoint:
    url: str
    port: int
    _server: WSGIServer = field(repr=False)
    _thread: threading.Thread = field(repr=False)
    _reader: Engine = field(repr=False)

    def close(self) -> None:
        """Stop serving and free the port (blocks up to half a second: run it off the event loop)."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
        self._reader.dispose()


def start_endpoint(engine: Engine, port: int = DEFAULT_PORT) -> Endpoint:
    """Serve the metrics on ``http://127.0.0.1:<port>/metrics`` (``port=0``: any free port).

    Raises ``PrometheusPortInUse`` when the port is taken, ``PrometheusEndpointError`` for any other
    reason the socket cannot be opened."""
    reader = read_only_engine(engine)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ControlCollector(reader))
    try:
        server = make_server(HOST, port, make_wsgi_app(registry), _Server, handler_class=_QuietHandler)
    except OSError as error:
        reader.dispose()
        in_use = {errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", errno.EADDRINUSE)}
        if os.name == "nt":
            in_use.add(errno.EACCES)  # Windows answers WSAEACCES for a port bound exclusively
        if error.errno in in_use:
            raise PrometheusPortInUse(port) from error
        raise PrometheusEndpointError(
            f"The Prometheus endpoint did not start on {HOST}:{port} ({error.strerror or error}); "
            "pick another port in Settings → App."
        ) from error
    bound = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, name="nexus-prometheus", daemon=True)
    thread.start()
    log.info("Prometheus metrics at http://%s:%d/metrics", HOST, bound)
    return Endpoint(f"http://{HOST}:{bound}/metrics", bound, server, thread, reader)


class PrometheusSwitch:
    """Keeps the endpoint as the settings say (started, moved to another port, or stopped).

    ``apply`` never raises: a taken port is logged, kept in ``problem`` and handed to
    ``on_problem`` (the window shows it), and the app goes on without the endpoint."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.endpoint: Endpoint | None = None
        self.problem = ""
        self.on_problem: Callable[[str], object] | None = None
        self._applied: tuple[bool, int] | None = None
        self._lock = threading.Lock()

    async def apply(self, enabled: bool, port: int) -> str:
        """Follow the settings; returns why the endpoint is not serving as asked, or ''.  A setting
        that did not change is not retried (every settings save comes through here)."""
        if self._applied == (enabled, port):
            return self.problem
        problem = await asyncio.to_thread(self._apply, enabled, port)
        if problem and self.on_problem is not None:
            try:
                self.on_problem(problem)
            except Exception:
                log.warning("Showing the Prometheus notice failed", exc_info=True)
        return problem

    def _apply(self, enabled: bool, port: int) -> str:
        with self._lock:  # start and close bind and free sockets: one at a time
            self._applied = (enabled, port)
            if self.endpoint is not None and (not enabled or self.endpoint.port != port):
                self.endpoint.close()
                self.endpoint = None
            self.problem = ""
            if enabled and self.endpoint is None:
                try:
                    self.endpoint = start_endpoint(self.engine, port)
                except PrometheusEndpointError as error:
                    log.warning("%s", error)
                    self.problem = str(error)
            return self.problem

    def close(self) -> None:
        with self._lock:
            self._applied = None
            if self.endpoint is not None:
                self.endpoint.close()
                self.endpoint = None
