"""memory://: the in-process Synapse that Dendrites in one process share."""

from __future__ import annotations

import asyncio
import time

import pytest

from nexus_desktop.bus.memory_synapse import MemorySynapse
from nexus_desktop.bus.signals import Kind, Signal
from nexus_desktop.bus.synapse import (
    BusTimeoutError,
    BusUnavailableError,
    Connection,
    NoRespondersError,
    open_synapse,
)


async def _heard(synapse: MemorySynapse, subject: str) -> list[tuple[str, Signal]]:
    heard: list[tuple[str, Signal]] = []

    async def keep(signal: Signal, reply: str) -> None:
        heard.append((subject, signal))

    await synapse.subscribe(subject, keep)
    return heard


def test_synapses_opening_the_same_name_share_one_bus_and_signals_pass_as_objects() -> None:
    async def scenario() -> None:
        first, second, other = (
            MemorySynapse("memory://a"),
            MemorySynapse("memory://a"),
            MemorySynapse("memory://b"),
        )
        for synapse in (first, second, other):
            await synapse.connect()
        heard_same, heard_other = await _heard(second, "x.y"), await _heard(other, "x.y")
        signal = Signal(Kind.TOKEN, task_id="t", payload={"text": "hi"})
        await first.publish("x.y", signal)
        await asyncio.sleep(0.01)
        assert [item for _, item in heard_same] == [signal]
        assert heard_same[0][1] is signal  # the very object: nothing encoded
        assert heard_other == []  # memory://b is another bus
        for synapse in (first, second, other):
            await synapse.close()

    asyncio.run(scenario())


def test_open_synapse_gives_the_memory_transport_for_memory_urls() -> None:
    assert isinstance(open_synapse(Connection("memory://app")), MemorySynapse)


def test_subjects_match_exactly_or_by_a_trailing_wildcard() -> None:
    async def scenario() -> None:
        synapse = MemorySynapse("memory://subjects")
        await synapse.connect()
        exact, rest = await _heard(synapse, "a.b"), await _heard(synapse, "a.>")
        for subject in ("a.b", "a.b.c", "a", "ab.c", "a.bc"):
            await synapse.publish(subject, Signal(Kind.HEARTBEAT, sender=subject))
        await asyncio.sleep(0.01)
        assert [signal.sender for _, signal in exact] == ["a.b"]
        assert [signal.sender for _, signal in rest] == ["a.b", "a.b.c", "a.bc"]
        await synapse.close()

    asyncio.run(scenario())


def test_a_subscription_hears_its_signals_in_the_order_they_were_published() -> None:
    async def scenario() -> None:
        synapse = MemorySynapse("memory://order")
        await synapse.connect()
        seen: list[int] = []

        async def slow(signal: Signal, reply: str) -> None:
            await asyncio.sleep(0.001 if signal.seq % 2 else 0)  # a handler that awaits keeps the order
            seen.append(signal.seq)

        await synapse.subscribe("tokens", slow)
        for seq in range(1, 51):
            await synapse.publish("tokens", Signal(Kind.TOKEN, seq=seq))
        await asyncio.sleep(0.2)
        assert seen == list(range(1, 51))
        await synapse.close()

    asyncio.run(scenario())


def test_a_request_nobody_listens_to_fails_at_once() -> None:
    async def scenario() -> None:
        synapse = MemorySynapse("memory://nobody")
        await synapse.connect()
        started = time.perf_counter()
        with pytest.raises(NoRespondersError, match="Nobody"):
            await synapse.request("no.one", Signal(Kind.TASK), timeout=5.0)
        assert time.perf_counter() - started < 0.01
        await synapse.close()

    asyncio.run(scenario())


def test_a_request_is_answered_or_times_out_after_the_timeout() -> None:
    async def scenario() -> None:
        synapse = MemorySynapse("memory://answers")
        await synapse.connect()

        async def answer(signal: Signal, reply: str) -> None:
            await synapse.publish(reply, Signal(Kind.RESULT, task_id=signal.task_id, payload={"ok": True}))

        async def ignore(signal: Signal, reply: str) -> None:
            pass

        await synapse.subscribe("answers", answer)
        await synapse.subscribe("silent", ignore)
        answered = await synapse.request("answers", Signal(Kind.TASK, task_id="t1"), timeout=1.0)
        assert (answered.kind, answered.task_id, answered.payload) == (Kind.RESULT, "t1", {"ok": True})
        started = time.perf_counter()
        with pytest.raises(BusTimeoutError):
            await synapse.request("silent", Signal(Kind.TASK), timeout=0.1)
        assert 0.09 < time.perf_counter() - started < 1.0
        await synapse.close()

    asyncio.run(scenario())


def test_a_closed_synapse_says_to_connect_and_stops_hearing() -> None:
    async def scenario() -> None:
        publisher, listener = MemorySynapse("memory://closing"), MemorySynapse("memory://closing")
        await publisher.connect()
        await listener.connect()
        heard = await _heard(listener, "s")
        await listener.close()
        await publisher.publish("s", Signal(Kind.HEARTBEAT))
        await asyncio.sleep(0.01)
        assert heard == []
        with pytest.raises(BusUnavailableError, match="connect first"):
            await listener.publish("s", Signal(Kind.HEARTBEAT))
        await publisher.close()

    asyncio.run(scenario())
