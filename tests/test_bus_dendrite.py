"""The Dendrite: serving Axons, the worker directory, dispatch, streaming, Stop and roles.

Each test runs on memory:// and on a real nats-server (``bus_url``)."""

from __future__ import annotations

import asyncio
import os
import signal as signals
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pydantic
import pytest

from nexus_desktop.bus.axon import Axon, TaskContext, TaskError, WorkerLostError
from nexus_desktop.bus.directory import WorkerInfo
from nexus_desktop.bus.signals import Kind, Signal
from nexus_desktop.bus.synapse import BusError
from nexus_desktop.llm.contract import CancelToken
from tests.bus_support import (
    Counting,
    Ends,
    bus_url_fixture,  # noqa: F401
    echo,
    until_cancelled,
    wait_until,
    words_axon,
)
from tests.nats_support import start_nats

REPO = Path(__file__).resolve().parent.parent


async def _collect(stream: Any) -> list[Signal]:
    return [signal async for signal in stream]


def test_a_task_runs_on_the_worker_and_says_who_answered(bus_url: str) -> None:
    async def scenario() -> None:
        async with Ends(bus_url) as ends:
            await ends.end("gaming pc/2", Axon("echo", echo), role="worker")
            app = await ends.end("app")
            answer = await app.dispatch_and_wait("echo", {"x": 1})
            assert answer.output == {"echo": {"x": 1}, "caller": "app"}
            assert answer.worker == "gaming-pc-2"  # the name, made a valid subject token
            assert answer.task_id

    asyncio.run(scenario())


def test_a_streamed_tasks_tokens_arrive_in_order_then_the_result(bus_url: str) -> None:
    async def scenario() -> None:
        async with Ends(bus_url) as ends:
            await ends.end("worker", words_axon(), role="worker")
            app = await ends.end("app")
            text = " ".join(f"w{index}" for index in range(40))
            signals = await _collect(app.stream("words", {"text": text}))
            tokens, result = signals[:-1], signals[-1]
            assert [signal.payload["text"] for signal in tokens] == text.split()
            assert [signal.seq for signal in tokens] == list(range(1, 41))
            assert (result.kind, result.payload, result.sender) == (Kind.RESULT, {"words": 40}, "worker")

    asyncio.run(scenario())


def test_an_unknown_neuron_fails_at_once_saying_what_is_served(bus_url: str) -> None:
    async def scenario() -> None:
        async with Ends(bus_url) as ends:
            await ends.end("worker", Axon("echo", echo), words_axon(), role="worker")
            app = await ends.end("app")
            for call in (
                lambda: app.dispatch_and_wait("summarise", {}, timeout=30),
                lambda: _collect(app.stream("summarise", {}, timeout=30)),
            ):
                started = time.perf_counter()
                with pytest.raises(TaskError) as raised:
                    await call()
                assert time.perf_counter() - started < 0.010
                assert raised.value.code == "unknown_neuron"
                assert "'summarise'" in str(raised.value) and "worker serves echo, words" in str(raised.value)
            assert (await app.dispatch_and_wait("echo", {})).worker == "worker"  # positive control

    asyncio.run(scenario())


def test_the_least_busy_worker_gets_the_tasks(bus_url: str) -> None:
    async def scenario() -> None:
        async with Ends(bus_url) as ends:
            first, second = Counting(), Counting()
            # Heartbeats (which report each worker's load) are left out of the way here: a stale
            # one would make the count depend on timing.  The load reports have a test of their own.
            await ends.end("first", first.axon(), role="worker", heartbeat_seconds=60)
            await ends.end("second", second.axon(), role="worker", heartbeat_seconds=60)
            app = await ends.end("app")

            # Control: both idle, so the tasks are spread over both, in turn.
            answered = [(await app.dispatch_and_wait("count", {"n": n})).worker for n in range(10)]
            assert sorted(answered) == ["first"] * 5 + ["second"] * 5
            assert all(answered[n] != answered[n + 1] for n in range(9))

            # One worker kept busy by a long task: the next 10 go to the other.
            for counting in (first, second):
                counting.release.clear()
                counting.started.clear()
            long_task = asyncio.create_task(app.dispatch_and_wait("count", {"n": "long"}))
            await wait_until(lambda: first.started.is_set() or second.started.is_set())
            busy, idle = ("first", second) if first.started.is_set() else ("second", first)
            idle.release.set()
            answered = [(await app.dispatch_and_wait("count", {"n": n})).worker for n in range(10)]
            assert answered == [("second" if busy == "first" else "first")] * 10
            first.release.set()
            second.release.set()
            assert (await long_task).worker == busy

    asyncio.run(scenario())


def test_the_directory_learns_workers_on_start_and_drops_them_when_they_go(bus_url: str) -> None:
    async def scenario() -> None:
        async with Ends(bus_url) as ends:
            worker = await ends.end("worker", Axon("echo", echo), role="worker", heartbeat_seconds=0.1)
            app = await ends.end("app", heartbeat_seconds=0.1)
            # Started after the worker: it knows it at once, from the discover request.
            assert [(info.name, info.neurons) for info in app.workers()] == [("worker", ("echo",))]
            heard: list[list[WorkerInfo]] = []
            app.listeners.subscribe(heard.append)

            # A worker that goes away cleanly is dropped at once (DEREGISTER).
            await worker.aclose()
            await wait_until(lambda: app.workers() == [], 1.0)
            assert heard[-1] == []

            # One that stops sending heartbeats is dropped after about three missed beats.
            late = await ends.end("late", Axon("echo", echo), role="worker", heartbeat_seconds=0.1)
            await wait_until(lambda: [info.name for info in app.workers()] == ["late"], 1.0)
            for task in list(late._tasks):  # its heartbeat loop stops, as when a process hangs
                task.cancel()
            silent_since = time.monotonic()
            await wait_until(lambda: app.workers() == [], 2.0)
            assert 0.15 < time.monotonic() - silent_since < 1.0

    asyncio.run(scenario())


def test_heartbeats_report_each_workers_load_and_capacity(bus_url: str) -> None:
    async def scenario() -> None:
        async with Ends(bus_url) as ends:
            counting = Counting()
            counting.release.clear()
            await ends.end("worker", counting.axon(), role="worker", capacity=4, heartbeat_seconds=0.05)
            app = await ends.end("app")
            running = asyncio.create_task(app.dispatch_and_wait("count", {}))
            await wait_until(lambda: [info.load for info in app.workers()] == [1], 2.0)
            assert app.workers()[0].capacity == 4
            counting.release.set()
            await running
            await wait_until(lambda: [info.load for info in app.workers()] == [0], 2.0)

    asyncio.run(scenario())


def test_the_apps_own_axons_are_served_in_process(bus_url: str) -> None:
    async def scenario() -> None:
        async with Ends(bus_url) as ends:
            app = await ends.end("app", Axon("echo", echo))
            assert [info.name for info in app.workers()] == ["app"]
            assert (await app.dispatch_and_wait("echo", {"a": 1})).output["echo"] == {"a": 1}

    asyncio.run(scenario())


class Greeting(pydantic.BaseModel):
    name: str
    times: int = 1


def test_the_axon_refuses_input_its_validation_rejects_naming_the_field(bus_url: str) -> None:
    def needs_text(data: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(data.get("text"), str):
            raise ValueError("text must be text")
        return data

    async def greet(data: dict[str, Any], context: TaskContext) -> dict[str, Any]:
        return {"greeting": "hi " * data["times"] + data["name"]}

    async def scenario() -> None:
        async with Ends(bus_url) as ends:
            await ends.end(
                "worker",
                Axon("greet", greet, validate=Greeting),
                Axon("echo", echo, validate=needs_text),
                role="worker",
            )
            app = await ends.end("app")
            with pytest.raises(TaskError, match="times") as raised:
                await app.dispatch_and_wait("greet", {"name": "Ada", "times": "many"})
            assert raised.value.code == "bad_input" and raised.value.worker == "worker"
            with pytest.raises(TaskError, match="text must be text") as raised:
                await app.dispatch_and_wait("echo", {"text": 3})
            assert raised.value.code == "bad_input"
            # Positive controls: valid input runs.
            assert (await app.dispatch_and_wait("greet", {"name": "Ada", "times": 2})).output == {
                "greeting": "hi hi Ada"
            }
            assert (await app.dispatch_and_wait("echo", {"text": "ok"})).output["echo"] == {"text": "ok"}

    asyncio.run(scenario())


def test_a_neuron_that_raises_fails_the_task_with_its_reason(bus_url: str) -> None:
    async def broken(data: dict[str, Any], context: TaskContext) -> dict[str, Any]:
        raise RuntimeError("the model file is missing")

    async def scenario() -> None:
        async with Ends(bus_url) as ends:
            await ends.end("worker", Axon("broken", broken), role="worker")
            app = await ends.end("app")
            with pytest.raises(TaskError, match="the model file is missing") as raised:
                await app.dispatch_and_wait("broken", {})
            assert raised.value.code == "failed"

    asyncio.run(scenario())


@pytest.mark.parametrize("raise_on_cancel", [False, True])
def test_stop_cancels_the_stream_on_the_worker(bus_url: str, raise_on_cancel: bool) -> None:
    async def scenario() -> None:
        async with Ends(bus_url) as ends:
            worker = await ends.end("worker", Axon("talk", echo, stream=until_cancelled), role="worker")
            app = await ends.end("app")
            stop = CancelToken()
            tokens = 0
            stopped_at = 0.0
            result: Signal | None = None
            with pytest.raises(TaskError) if raise_on_cancel else _no_error() as raised:
                async for signal in app.stream("talk", {"raise_on_cancel": raise_on_cancel}, cancel=stop):
                    if signal.kind is Kind.TOKEN:
                        tokens += 1
                        if tokens == 3:
                            stop.cancel()
                            stopped_at = time.monotonic()
                    else:
                        result = signal
            assert time.monotonic() - stopped_at < 0.5
            if raise_on_cancel:  # the Neuron gave up: the stream ends with ERROR "cancelled"
                assert raised is not None and raised.value.code == "cancelled"
            else:  # the Neuron returned what it had
                assert result is not None and result.payload["stopped"] is True
                assert result.payload["sent"] >= 3
            await wait_until(lambda: worker.load == 0, 1.0)

    asyncio.run(scenario())


def test_leaving_a_stream_early_stops_the_task_on_the_worker(bus_url: str) -> None:
    async def scenario() -> None:
        async with Ends(bus_url) as ends:
            worker = await ends.end("worker", Axon("talk", echo, stream=until_cancelled), role="worker")
            app = await ends.end("app")
            signals = app.stream("talk", {})
            async for signal in signals:
                assert signal.kind is Kind.TOKEN
                break
            await signals.aclose()
            await wait_until(lambda: worker.load == 0, 1.0)

    asyncio.run(scenario())


class _no_error:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def test_a_worker_that_goes_silent_mid_stream_is_reported_lost(bus_url: str) -> None:
    async def scenario() -> None:
        async with Ends(bus_url) as ends:
            synapse = await ends.synapse()
            app = await ends.end("app")
            subject = app.subjects.worker_tasks("mute")

            async def accept_then_hang(task: Signal, reply: str) -> None:
                accepted = Signal(Kind.HEARTBEAT, task_id=task.task_id, sender="mute")
                await synapse.publish(reply, accepted)
                await synapse.publish(
                    task.reply_to, Signal(Kind.TOKEN, task_id=task.task_id, sender="mute", seq=1, payload={})
                )

            await synapse.subscribe(subject, accept_then_hang)
            await synapse.publish(app.subjects.directory, _register("mute", "words"))
            await wait_until(lambda: [info.name for info in app.workers()] == ["mute"])
            started = time.monotonic()
            with pytest.raises(WorkerLostError) as raised:
                await _collect(app.stream("words", {"text": "a b"}))
            assert 0.7 < time.monotonic() - started < 1.5
            assert raised.value.tokens_received == 1 and raised.value.worker == "mute"
            assert "went silent" in str(raised.value)

    asyncio.run(scenario())


def _register(name: str, neuron: str) -> Signal:
    payload = {"host": "test", "neurons": [{"id": neuron, "streaming": True}], "load": 0, "capacity": 1}
    return Signal(Kind.REGISTER, sender=name, payload=payload)


def test_a_worker_that_has_gone_is_skipped(bus_url: str) -> None:
    async def scenario() -> None:
        async with Ends(bus_url) as ends:
            synapse = await ends.synapse()
            await ends.end("real", words_axon(), role="worker")
            app = await ends.end("app")
            # "ghost" is in the directory but nobody listens for its tasks any more.
            await synapse.publish(app.subjects.directory, _register("ghost", "words"))
            await wait_until(lambda: len(app.workers()) == 2)
            answer = await app.dispatch_and_wait("words", {"text": "a b"})
            assert answer.worker == "real" and answer.output == {"words": 2}
            signals = await _collect(app.stream("words", {"text": "a b"}))
            assert [signal.sender for signal in signals] == ["real"] * 3
            assert [info.name for info in app.workers()] == ["real"]

    asyncio.run(scenario())


def test_a_stream_a_worker_does_not_accept_goes_to_the_next_one_and_it_is_told_cancel(
    bus_url: str,
) -> None:
    async def scenario() -> None:
        async with Ends(bus_url) as ends:
            synapse = await ends.synapse()
            await ends.end("real", words_axon(), role="worker")
            app = await ends.end("app")
            told: list[Signal] = []

            async def never_accepts(signal: Signal, reply: str) -> None:
                told.append(signal)

            await synapse.subscribe(app.subjects.worker_tasks("mute"), never_accepts)
            await synapse.publish(app.subjects.directory, _register("mute", "words"))
            await wait_until(lambda: len(app.workers()) == 2)
            for _ in range(2):  # taken in turn: one of the two is offered to "mute" first
                signals = await _collect(app.stream("words", {"text": "a b"}))
                assert [signal.sender for signal in signals] == ["real"] * 3
            await wait_until(lambda: len(told) == 2)
            assert [(signal.kind, signal.stream) for signal in told] == [
                (Kind.TASK, True),
                (Kind.CANCEL, False),
            ]
            assert told[0].task_id == told[1].task_id

    asyncio.run(scenario())


def test_a_worker_may_not_send_orchestration_signals(bus_url: str) -> None:
    async def scenario() -> None:
        async with Ends(bus_url) as ends:
            await ends.end("other", Axon("echo", echo), role="worker")
            worker = await ends.end("worker", Axon("echo", echo), role="worker")
            app = await ends.end("app")
            for kind in (Kind.TASK, Kind.CANCEL, Kind.PERMISSION):
                with pytest.raises(BusError, match="may not send"):
                    await worker.emit("nexus.anything", Signal(kind))
            with pytest.raises(BusError, match="may not send TASK"):
                await worker.dispatch_and_wait("echo", {})
            with pytest.raises(BusError, match="may not send TASK"):
                worker.stream("echo", {})
            # Positive controls: a worker may send the other kinds, and the app may send a TASK.
            heard: list[Signal] = []

            async def keep(signal: Signal, reply: str) -> None:
                heard.append(signal)

            await app.listen("nexus.events", keep)
            await app.dispatch_and_wait("echo", {})  # a round trip: the server has the subscription
            await worker.emit("nexus.events", Signal(Kind.CLARIFICATION, payload={"question": "?"}))
            await app.emit("nexus.events", Signal(Kind.TASK, neuron="echo"))
            await wait_until(lambda: len(heard) == 2)
            assert {(signal.kind, signal.sender) for signal in heard} == {
                (Kind.CLARIFICATION, "worker"),
                (Kind.TASK, "app"),
            }

    asyncio.run(scenario())


def test_dispatch_returns_at_once_and_the_answer_reaches_the_results_listeners(bus_url: str) -> None:
    async def scenario() -> None:
        async with Ends(bus_url) as ends:
            await ends.end("worker", Axon("echo", echo), role="worker")
            app = await ends.end("app")
            results: list[Signal] = []
            app.results.subscribe(results.append)
            task_id = await app.dispatch("echo", {"a": 1})
            await wait_until(lambda: len(results) == 1)
            assert (results[0].kind, results[0].task_id, results[0].payload["echo"]) == (
                Kind.RESULT,
                task_id,
                {"a": 1},
            )

    asyncio.run(scenario())


def test_a_worker_process_killed_mid_stream_is_reported_lost_within_a_second(tmp_path: Path) -> None:
    server = start_nats(tmp_path)
    code = f"from tests.bus_support import serve; serve({server.url!r}, 'victim')"
    worker = subprocess.Popen([sys.executable, "-c", code], cwd=REPO)

    async def scenario() -> None:
        async with Ends(server.url) as ends:
            app = await ends.end("app")
            await wait_until(lambda: [info.name for info in app.workers()] == ["victim"], 30.0)
            text = " ".join(f"w{index}" for index in range(400))
            tokens: list[str] = []
            killed_at = 0.0
            with pytest.raises(WorkerLostError) as raised:
                async for signal in app.stream("words", {"text": text, "delay": 0.02}):
                    tokens.append(signal.payload["text"])
                    if len(tokens) == 5:
                        os.kill(worker.pid, signals.SIGKILL)
                        killed_at = time.monotonic()
            assert time.monotonic() - killed_at < 1.0
            assert raised.value.worker == "victim"
            assert raised.value.tokens_received == len(tokens) >= 5
            assert tokens == text.split()[: len(tokens)]  # what arrived before, in order

    try:
        asyncio.run(scenario())
    finally:
        worker.kill()
        worker.wait(10)
        server.stop()


def test_a_request_whose_worker_is_killed_fails_when_the_worker_is_missed_not_at_its_timeout(
    tmp_path: Path,
) -> None:
    server = start_nats(tmp_path)
    code = f"from tests.bus_support import serve; serve({server.url!r}, 'victim')"
    worker = subprocess.Popen([sys.executable, "-c", code], cwd=REPO)

    async def scenario() -> None:
        async with Ends(server.url) as ends:
            app = await ends.end("app")
            await wait_until(lambda: [info.name for info in app.workers()] == ["victim"], 30.0)
            # The positive control: a worker that stays answers its request.
            assert (await app.dispatch_and_wait("nap", {"seconds": 0.2}, timeout=5)).output == {"slept": 0.2}
            call = asyncio.ensure_future(app.dispatch_and_wait("nap", {"seconds": 60}, timeout=30))
            await asyncio.sleep(0.3)
            os.kill(worker.pid, signals.SIGKILL)
            killed_at = time.monotonic()
            with pytest.raises(WorkerLostError) as raised:
                await call
            # Three missed heartbeats of one second, checked every second: well before the 30 s.
            assert time.monotonic() - killed_at < 6.0
            assert raised.value.worker == "victim"
            assert "left the bus before answering 'nap'" in str(raised.value)

    try:
        asyncio.run(scenario())
    finally:
        worker.kill()
        worker.wait(10)
        server.stop()
