"""The nats:// Synapse against a real nats-server on a loopback port: round trips, the edge that
drops bad messages, fast failures, and a server that goes away mid-stream and comes back."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import nats
import pytest

from nexus_desktop.bus.nats_synapse import NatsSynapse
from nexus_desktop.bus.signals import MAX_SIGNAL_BYTES, BadSignal, Kind, Signal, encode
from nexus_desktop.bus.synapse import (
    BusTimeoutError,
    BusUnavailableError,
    Connection,
    NoRespondersError,
    open_synapse,
)
from tests.nats_support import NatsServer, free_port, nats_server, start_nats  # noqa: F401 (the fixture)


def run(body: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(asyncio.wait_for(body(), 60))


async def connected(url: str, name: str = "") -> NatsSynapse:
    synapse = open_synapse(Connection(url, name=name))
    assert isinstance(synapse, NatsSynapse)
    await synapse.connect()
    return synapse


async def wait_until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("the condition did not come true in time")
        await asyncio.sleep(0.01)


def test_published_signals_arrive_whole_and_requests_are_answered(nats_server: NatsServer) -> None:  # noqa: F811
    async def body() -> None:
        app, worker = await connected(nats_server.url, "app"), await connected(nats_server.url, "worker")
        heard: list[Signal] = []

        async def on_directory(signal: Signal, reply: str) -> None:
            heard.append(signal)

        async def on_task(signal: Signal, reply: str) -> None:
            answer = Signal(
                Kind.RESULT, task_id=signal.task_id, payload={"echo": signal.payload["text"]}, sender="w1"
            )
            await worker.publish(reply, answer)

        try:
            await app.subscribe("nexus.directory", on_directory)
            await worker.subscribe("nexus.worker.w1.task", on_task)
            await app.flush()  # the app's subscription is live for the worker's connection too
            beat = Signal(
                Kind.HEARTBEAT, sender="w1", payload={"host": "pc2", "neurons": [], "load": 1, "capacity": 2}
            )
            await worker.publish("nexus.directory", beat)
            await wait_until(lambda: len(heard) == 1)
            assert heard[0] == beat

            task = Signal(Kind.TASK, task_id="t1", neuron="chat", payload={"text": "héllo"})
            answer = await app.request("nexus.worker.w1.task", task, timeout=2)
            assert (answer.kind, answer.task_id, answer.payload, answer.sender) == (
                Kind.RESULT,
                "t1",
                {"echo": "héllo"},
                "w1",
            )
            assert app.inbox() != app.inbox()
        finally:
            await app.close()
            await worker.close()
            await app.close()  # safe twice

    run(body)


def test_a_request_nobody_listens_to_fails_at_once_and_a_silent_one_after_its_timeout(
    nats_server: NatsServer,  # noqa: F811
) -> None:
    async def body() -> None:
        app = await connected(nats_server.url)

        async def silent(signal: Signal, reply: str) -> None:
            pass

        try:
            started = time.monotonic()
            with pytest.raises(NoRespondersError, match=r"Nobody listens on nexus\.worker\.gone\.task"):
                await app.request("nexus.worker.gone.task", Signal(Kind.TASK, task_id="t"), timeout=5)
            assert time.monotonic() - started < 0.5

            await app.subscribe("nexus.worker.slow.task", silent)
            started = time.monotonic()
            with pytest.raises(BusTimeoutError, match=r"within 0\.3 s"):
                await app.request("nexus.worker.slow.task", Signal(Kind.TASK, task_id="t"), timeout=0.3)
            assert 0.25 < time.monotonic() - started < 2
        finally:
            await app.close()

    run(body)


def test_bad_messages_are_dropped_at_the_edge_and_a_good_one_after_them_arrives(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A server that lets larger messages through than the bus takes, so the edge is what refuses them.
    server = start_nats(tmp_path, "max_payload: 4194304")
    secret = "do-not-log-this-text"

    async def body() -> list[Signal]:
        app = await connected(server.url)
        raw = await nats.connect(server.url)
        heard: list[Signal] = []

        async def on_directory(signal: Signal, reply: str) -> None:
            heard.append(signal)

        try:
            await app.subscribe("nexus.directory", on_directory)
            await app.flush()
            oversized = json.dumps(
                {"kind": "heartbeat", "payload": {"pad": secret * (MAX_SIGNAL_BYTES // 10)}}
            )
            for junk in (
                b"{" + secret.encode(),
                json.dumps({"kind": "no-such-kind", "payload": {"x": secret}}).encode(),
                json.dumps([secret]).encode(),
                json.dumps({"kind": "task", "task_id": 7, "payload": {"x": secret}}).encode(),
                oversized.encode(),
                b"\xff\xfe" + secret.encode(),
            ):
                await raw.publish("nexus.directory", junk)
            await raw.publish("nexus.directory", encode(Signal(Kind.HEARTBEAT, sender="good")))
            await raw.flush()
            await wait_until(lambda: len(heard) >= 1)
            await asyncio.sleep(0.2)  # anything else would have arrived by now
            return heard
        finally:
            await raw.close()
            await app.close()

    try:
        with caplog.at_level(logging.WARNING, logger="nexus_desktop.bus.nats_synapse"):
            heard = run(body)
    finally:
        server.stop()
    assert [signal.sender for signal in heard] == ["good"]
    drops = [record.getMessage() for record in caplog.records if "Dropped a message" in record.getMessage()]
    assert drops, "a dropped message must be logged"
    assert len(drops) == 1  # rate-limited: one line for the burst
    assert all(secret not in record.getMessage() for record in caplog.records)


def test_an_oversized_signal_is_refused_before_it_is_sent(nats_server: NatsServer) -> None:  # noqa: F811
    async def body() -> None:
        app = await connected(nats_server.url)
        try:
            huge = Signal(Kind.RESULT, payload={"text": "x" * MAX_SIGNAL_BYTES})
            with pytest.raises(BadSignal, match="over the bus's limit"):
                await app.publish("nexus.directory", huge)
            await app.publish("nexus.directory", Signal(Kind.RESULT, payload={"text": "x" * 1000}))  # control
        finally:
            await app.close()

    run(body)


def test_no_server_fails_fast_with_what_to_do() -> None:
    url = f"nats://127.0.0.1:{free_port()}"

    async def body() -> None:
        synapse = open_synapse(Connection(url))
        started = time.monotonic()
        with pytest.raises(BusUnavailableError) as caught:
            await synapse.connect()
        assert time.monotonic() - started < 3
        assert str(caught.value) == (
            f"No NATS server answers at {url}: start nats-server there, or check the address and the firewall"
        )

    run(body)


def test_the_server_going_away_mid_stream_and_coming_back_lets_messages_flow_again(
    nats_server: NatsServer,  # noqa: F811
) -> None:
    async def body() -> None:
        app, worker = await connected(nats_server.url, "app"), await connected(nats_server.url, "worker")
        heard: list[int] = []
        reconnects: list[str] = []
        app.reconnected.subscribe(reconnects.append)

        async def on_token(signal: Signal, reply: str) -> None:
            heard.append(signal.seq)

        try:
            await app.subscribe("_INBOX.stream", on_token)
            await app.flush()
            for seq in range(5):
                await worker.publish("_INBOX.stream", Signal(Kind.TOKEN, seq=seq))
            await wait_until(lambda: len(heard) == 5)

            await asyncio.to_thread(nats_server.stop)
            await asyncio.sleep(0.5)
            await worker.publish("_INBOX.stream", Signal(Kind.TOKEN, seq=50))  # held while away, no error
            await asyncio.to_thread(nats_server.start)
            await wait_until(lambda: len(reconnects) == 1, timeout=10)
            assert reconnects == [nats_server.url]

            # The worker side comes back on its own too; what it sends now arrives.
            async def sent_and_heard() -> bool:
                await worker.publish("_INBOX.stream", Signal(Kind.TOKEN, seq=99))
                await asyncio.sleep(0.1)
                return 99 in heard

            deadline = time.monotonic() + 10
            while not await sent_and_heard():
                assert time.monotonic() < deadline, "messages did not flow again after the server came back"
            assert heard[:5] == [0, 1, 2, 3, 4]
        finally:
            await app.close()
            await worker.close()

    run(body)
