"""The Prometheus endpoint: off by default, loopback only, conventional names, the database's own
figures on every scrape, and a port already in use is a clear notice, never a crash."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlmodel import Session

from nexus_desktop.control.prometheus import (
    HOST,
    Endpoint,
    PrometheusPortInUse,
    start_endpoint,
)
from nexus_desktop.control.tables import (
    BudgetUsage,
    CharacterPolicy,
    LoopCycle,
    ModelCall,
    ScheduledTaskState,
    TaskRun,
)
from nexus_desktop.core import AppCore
from nexus_desktop.db.store import Store
from nexus_desktop.db.tables import Character
from tests.servers import free_port

NOW = datetime.now(UTC).replace(microsecond=0)
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str, timeout: float = 10.0) -> Samples:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        assert response.status == 200
        body = response.read().decode("utf-8")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[name, frozenset(labels.items())]


def answers(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture
def endpoint(store: Store) -> Iterator[Endpoint]:
    served = start_endpoint(store.engine, 0)
    yield served
    served.close()


def fill(store: Store) -> None:
    """A little of everything the endpoint reports."""
    with Session(store.engine) as s:
        chat = {"service": "chat", "task_type": "chat", "source": "local", "model": "smol.gguf"}
        for seconds in (0.2, 0.4, 3.0):
            s.add(
                ModelCall(
                    **chat,
                    character="Ava",
                    tokens_in=100,
                    tokens_out=40,
                    first_token_seconds=0.1,
                    seconds=seconds,
                )
            )
        s.add(ModelCall(**chat, character="Ava", ok=False, seconds=0.05))
        s.add(
            ModelCall(
                service="router",
                task_type="routing",
                model="smol.gguf",
                adapter="00004-router",
                tokens_in=30,
                tokens_out=2,
                first_token_seconds=0.02,
                seconds=0.03,
            )
        )
        s.add(
            ScheduledTaskState(
                name="training_check",
                cadence="every 30m",
                last_duration=1.5,
                last_finished=NOW,
                next_due=NOW + timedelta(minutes=30),
            )
        )
        for outcome in ("ok", "ok", "error", "timeout", "running"):
            s.add(TaskRun(task="training_check", outcome=outcome))
        for outcome in ("ok", "partial", "running"):
            s.add(LoopCycle(kind="daily", outcome=outcome))
        ava = Character(name="Ava")
        bob = Character(name="Bob")
        s.add_all([ava, bob])
        s.flush()
        assert ava.id is not None and bob.id is not None
        s.add(
            CharacterPolicy(character_id=ava.id, policy={"daily_token_budget": 5000, "daily_tool_calls": 3})
        )
        s.add(CharacterPolicy(character_id=bob.id, policy={"max_reply_tokens": 5, "daily_token_budget": 50}))
        today = date.today().isoformat()
        s.add(BudgetUsage(character="Ava", day=today, tokens=420, tool_calls=1))
        s.add(BudgetUsage(character="Ava", day="2020-01-01", tokens=99999, tool_calls=99))
        s.commit()


def test_a_scrape_over_http_reports_the_stored_figures_under_conventional_names(
    store: Store, endpoint: Endpoint
) -> None:
    fill(store)
    assert endpoint.url == f"http://127.0.0.1:{endpoint.port}/metrics"

    samples = scrape(endpoint.url)

    chat = {"service": "chat", "task_type": "chat", "source": "local", "model": "smol.gguf"}
    assert value(samples, "nexus_model_calls_total", **chat) == 4
    assert value(samples, "nexus_model_call_errors_total", **chat) == 1
    assert value(samples, "nexus_model_tokens_total", direction="in", **chat) == 300
    assert value(samples, "nexus_model_tokens_total", direction="out", **chat) == 120
    assert value(samples, "nexus_model_generation_seconds_total", **chat) == pytest.approx(0.1 + 0.3 + 2.9)
    # Latency histogram: 0.05, 0.2, 0.4 and 3.0 seconds.
    assert value(samples, "nexus_model_call_duration_seconds_bucket", le="0.05", **chat) == 1
    assert value(samples, "nexus_model_call_duration_seconds_bucket", le="0.25", **chat) == 2
    assert value(samples, "nexus_model_call_duration_seconds_bucket", le="0.5", **chat) == 3
    assert value(samples, "nexus_model_call_duration_seconds_bucket", le="2.5", **chat) == 3
    assert value(samples, "nexus_model_call_duration_seconds_bucket", le="+Inf", **chat) == 4
    assert value(samples, "nexus_model_call_duration_seconds_count", **chat) == 4
    assert value(samples, "nexus_model_call_duration_seconds_sum", **chat) == pytest.approx(3.65)
    assert value(samples, "nexus_model_call_first_token_seconds_count", **chat) == 3
    assert value(samples, "nexus_model_call_first_token_seconds_bucket", le="0.1", **chat) == 3
    router = {"service": "router", "task_type": "routing", "source": "local", "model": "smol.gguf"}
    assert value(samples, "nexus_model_calls_total", **router) == 1
    # No model-call series carries a character or an adapter (unbounded over time).
    model_labels = {key for (name, labels) in samples if name.startswith("nexus_model") for key, _ in labels}
    assert "character" not in model_labels and "adapter" not in model_labels

    assert value(samples, "nexus_scheduled_task_runs_total", task="training_check", outcome="ok") == 2
    assert value(samples, "nexus_scheduled_task_runs_total", task="training_check", outcome="error") == 1
    assert value(samples, "nexus_scheduled_task_runs_total", task="training_check", outcome="timeout") == 1
    assert (
        "nexus_scheduled_task_runs_total",
        frozenset({("task", "training_check"), ("outcome", "running")}),
    ) not in samples
    assert value(samples, "nexus_scheduled_task_last_duration_seconds", task="training_check") == 1.5
    assert (
        value(samples, "nexus_scheduled_task_last_finished_timestamp_seconds", task="training_check")
        == NOW.timestamp()
    )
    due = (NOW + timedelta(minutes=30)).timestamp()
    assert value(samples, "nexus_scheduled_task_next_due_timestamp_seconds", task="training_check") == due

    assert value(samples, "nexus_loop_cycles_total", kind="daily", outcome="ok") == 1
    assert value(samples, "nexus_loop_cycles_total", kind="daily", outcome="partial") == 1
    health = {
        label: value(samples, "nexus_loop_health", label=label)
        for label in ("healthy", "degraded", "stalled")
    }
    assert sorted(health.values()) == [0, 0, 1]

    assert value(samples, "nexus_character_tokens_used", character="Ava") == 420  # today's row only
    assert value(samples, "nexus_character_tool_calls_used", character="Ava") == 1
    assert value(samples, "nexus_character_token_budget", character="Ava") == 5000
    assert value(samples, "nexus_character_tool_call_budget", character="Ava") == 3
    assert value(samples, "nexus_character_token_budget", character="Bob") == 50


def test_each_scrape_reads_the_database_again(store: Store, endpoint: Endpoint) -> None:
    chat = {"service": "chat", "task_type": "chat", "source": "local", "model": "m.gguf"}
    assert ("nexus_model_calls_total", frozenset(chat.items())) not in scrape(endpoint.url)
    with Session(store.engine) as s:
        s.add(ModelCall(**chat, seconds=1.0))
        s.commit()
    assert value(scrape(endpoint.url), "nexus_model_calls_total", **chat) == 1


def test_a_scrape_answers_while_another_connection_holds_the_write_lock(
    store: Store, endpoint: Endpoint
) -> None:
    fill(store)
    blocker = sqlite3.connect(store.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        # A read that took the write lock would wait out the 5 s busy timeout and miss this one.
        samples = scrape(endpoint.url, timeout=3)
    finally:
        blocker.execute("COMMIT")
        blocker.close()
    assert (
        value(
            samples,
            "nexus_model_calls_total",
            service="chat",
            task_type="chat",
            source="local",
            model="smol.gguf",
        )
        == 4
    )


def test_a_policy_that_cannot_be_read_is_left_out_and_the_rest_is_served(
    store: Store, endpoint: Endpoint
) -> None:
    with Session(store.engine) as s:
        good, bad = Character(name="Good"), Character(name="Bad")
        s.add_all([good, bad])
        s.flush()
        assert good.id is not None and bad.id is not None
        s.add(CharacterPolicy(character_id=good.id, policy={"daily_token_budget": 10}))
        s.add(CharacterPolicy(character_id=bad.id, policy={"daily_token_budget": "lots", "nonsense": 1}))
        s.commit()
    samples = scrape(endpoint.url)
    assert value(samples, "nexus_character_token_budget", character="Good") == 10
    assert ("nexus_character_token_budget", frozenset({("character", "Bad")})) not in samples


def test_a_port_already_in_use_raises_a_clear_error_naming_the_port(store: Store) -> None:
    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(PrometheusPortInUse) as error:
            start_endpoint(store.engine, port)
    assert error.value.port == port
    assert f"port {port}" in str(error.value) and "Settings" in str(error.value)
    served = start_endpoint(store.engine, free_port())  # positive control: a free port serves
    try:
        scrape(served.url)  # answers 200
    finally:
        served.close()


def non_loopback_address() -> str | None:
    import psutil

    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family == socket.AF_INET and not address.address.startswith("127."):
                return str(address.address)
    return None


def test_the_endpoint_listens_on_loopback_only(endpoint: Endpoint) -> None:
    address = non_loopback_address()
    if address is None:
        pytest.skip("This machine has no non-loopback IPv4 address to try")
    assert answers(endpoint.port)  # positive control: loopback reaches it
    with socket.socket() as everywhere:  # and that address reaches a socket bound to all of them
        everywhere.bind(("0.0.0.0", 0))
        everywhere.listen()
        socket.create_connection((address, everywhere.getsockname()[1]), timeout=2).close()
    with pytest.raises(OSError), socket.create_connection((address, endpoint.port), timeout=2):
        pass


# In the app ---------------------------------------------------------------------------------------


def make_core(tmp_path: Path, **settings: object) -> AppCore:
    core = AppCore(tmp_path / "nexus.db")
    core.settings = core.settings.model_copy(update=settings)
    return core


def test_the_endpoint_is_off_by_default_and_serves_once_switched_on(tmp_path: Path) -> None:
    port = free_port()
    core = make_core(tmp_path, prometheus_port=port)
    assert core.settings.prometheus_enabled is False

    async def scenario() -> None:
        try:
            assert await core.serve_prometheus() == ""
            assert not answers(port)
            await core.update_settings(core.settings.model_copy(update={"prometheus_enabled": True}))
            assert answers(port)
            await asyncio.to_thread(scrape, f"http://127.0.0.1:{port}/metrics")  # answers 200
            await core.update_settings(core.settings.model_copy(update={"prometheus_enabled": False}))
            assert not answers(port)
        finally:
            await core.aclose()

    asyncio.run(scenario())


def test_a_port_in_use_is_a_notice_and_the_app_keeps_working(tmp_path: Path) -> None:
    notices: list[str] = []
    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen()
        port = taken.getsockname()[1]
        core = make_core(tmp_path, prometheus_enabled=True, prometheus_port=port)

        async def scenario() -> None:
            try:
                problem = await core.serve_prometheus(notices.append)
                assert f"port {port}" in problem and notices == [problem]
                # The app goes on: settings save, characters list, and another port then serves.
                other = free_port()
                await core.update_settings(core.settings.model_copy(update={"prometheus_port": other}))
                assert core.store.load_settings().prometheus_port == other
                assert core.store.list_characters()
                await asyncio.to_thread(scrape, f"http://127.0.0.1:{other}/metrics")  # answers 200
                assert notices == [problem]  # nothing new to say
            finally:
                await core.aclose()

        asyncio.run(scenario())


def test_a_port_outside_1024_to_65535_is_refused_by_the_settings() -> None:
    from pydantic import ValidationError

    from nexus_desktop.settings import Settings

    for port in (80, 70000):
        with pytest.raises(ValidationError, match="prometheus_port"):
            Settings(prometheus_port=port)
    assert Settings(prometheus_port=9100).prometheus_port == 9100
