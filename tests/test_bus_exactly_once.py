"""Exactly once: a TASK delivered twice (a retried publish, a reconnect, a replica) runs once.

The test publishes the same TASK again straight on the Synapse, as a redelivery would, and
counts how often the Neuron ran.  Each test runs on memory:// and on a real nats-server."""

from __future__ import annotations

import asyncio

from nexus_desktop.bus.idempotency import CANCELLED_BEFORE_START, TaskRecord
from nexus_desktop.bus.signals import Kind, Signal, new_id
from tests.bus_support import (
    Counting,
    Ends,
    bus_url_fixture,  # noqa: F401
    wait_until,
)


def _task(neuron: str = "count", *, stream: bool = False, reply_to: str = "", n: int = 0) -> Signal:
    return Signal(
        Kind.TASK,
        task_id=new_id(),
        neuron=neuron,
        payload={"n": n},
        sender="app",
        stream=stream,
        reply_to=reply_to,
    )


def test_a_request_delivered_twice_runs_once_and_both_get_the_answer(bus_url: str) -> None:
    async def scenario() -> None:
        async with Ends(bus_url) as ends:
            counting = Counting()
            worker = await ends.end("worker", counting.axon(), role="worker")
            synapse = await ends.synapse()
            subject = worker.subjects.worker_tasks("worker")
            task = _task(n=7)
            first = await synapse.request(subject, task, timeout=5)
            again = await synapse.request(subject, task, timeout=5)
            assert first.kind is Kind.RESULT and first.payload == {"n": 7, "runs": 1}
            assert again == first
            assert counting.runs == {task.task_id: 1}
            # Positive control: a new task id does run.
            await synapse.request(subject, _task(n=8), timeout=5)
            assert counting.executions == 2

    asyncio.run(scenario())


def test_a_duplicate_arriving_while_the_task_runs_waits_for_the_same_answer(bus_url: str) -> None:
    async def scenario() -> None:
        async with Ends(bus_url) as ends:
            counting = Counting()
            counting.release.clear()
            worker = await ends.end("worker", counting.axon(), role="worker")
            synapse = await ends.synapse()
            subject = worker.subjects.worker_tasks("worker")
            task = _task(n=1)
            first = asyncio.create_task(synapse.request(subject, task, timeout=5))
            await wait_until(counting.started.is_set)
            second = asyncio.create_task(synapse.request(subject, task, timeout=5))
            await asyncio.sleep(0.05)
            counting.release.set()
            answers = await asyncio.gather(first, second)
            assert answers[0] == answers[1] and answers[0].payload == {"n": 1, "runs": 1}
            assert counting.executions == 1

    asyncio.run(scenario())


def test_a_stream_task_delivered_twice_streams_once(bus_url: str) -> None:
    async def scenario() -> None:
        async with Ends(bus_url) as ends:
            counting = Counting()
            worker = await ends.end("worker", counting.axon(), role="worker")
            synapse = await ends.synapse()
            inbox = synapse.inbox()
            heard: list[Signal] = []

            async def keep(signal: Signal, reply: str) -> None:
                heard.append(signal)

            await synapse.subscribe(inbox, keep)
            task = _task(stream=True, reply_to=inbox)
            for _ in range(3):
                await synapse.publish(worker.subjects.worker_tasks("worker"), task)
            await wait_until(lambda: any(signal.kind is Kind.RESULT for signal in heard))
            await asyncio.sleep(0.1)  # time for any duplicate answer to show up
            kinds = [signal.kind for signal in heard if signal.kind is not Kind.HEARTBEAT]
            assert kinds == [Kind.TOKEN] * 3 + [Kind.RESULT]
            assert [signal.seq for signal in heard if signal.kind is Kind.TOKEN] == [1, 2, 3]
            assert counting.executions == 1

    asyncio.run(scenario())


def test_with_two_replicas_redelivered_tasks_run_once_in_all(bus_url: str) -> None:
    async def scenario() -> None:
        async with Ends(bus_url) as ends:
            first, second = Counting(), Counting()
            await ends.end("first", first.axon(), role="worker")
            await ends.end("second", second.axon(), role="worker")
            app = await ends.end("app")
            synapse = await ends.synapse()
            answers = [await app.dispatch_and_wait("count", {"n": n}) for n in range(40)]
            assert {answer.worker for answer in answers} == {"first", "second"}
            for answer in answers:  # each task redelivered twice to the worker it went to
                redelivered = Signal(Kind.TASK, task_id=answer.task_id, neuron="count", payload={"n": -1})
                for _ in range(2):
                    again = await synapse.request(app.subjects.worker_tasks(answer.worker), redelivered, 5)
                    assert again.payload == answer.output  # the stored answer, not a new run
            streamed = []
            for n in range(10):
                signals = [signal async for signal in app.stream("count", {"n": n, "tokens": 2})]
                streamed.append(signals[-1])
            for result in streamed:
                inbox = synapse.inbox()
                task = Signal(Kind.TASK, task_id=result.task_id, neuron="count", stream=True, reply_to=inbox)
                await synapse.publish(app.subjects.worker_tasks(result.sender), task)
            await asyncio.sleep(0.1)
            runs = first.runs + second.runs
            assert len(runs) == 50 and set(runs.values()) == {1}
            assert first.executions + second.executions == 50

    asyncio.run(scenario())


def test_a_task_that_arrives_after_its_cancel_is_not_started(bus_url: str) -> None:
    async def scenario() -> None:
        async with Ends(bus_url) as ends:
            counting = Counting()
            worker = await ends.end("worker", counting.axon(), role="worker")
            synapse = await ends.synapse()
            subject = worker.subjects.worker_tasks("worker")
            task = _task()
            await synapse.publish(subject, Signal(Kind.CANCEL, task_id=task.task_id, sender="app"))
            answer = await synapse.request(subject, task, timeout=5)
            assert (answer.kind, answer.error_code()) == (Kind.ERROR, "cancelled")
            assert counting.executions == 0
            assert (await synapse.request(subject, _task(), timeout=5)).kind is Kind.RESULT  # control
            assert counting.executions == 1

    asyncio.run(scenario())


def test_the_record_is_bounded_and_forgets_the_oldest_ids_first() -> None:
    async def scenario() -> None:
        record = TaskRecord(limit=3)
        for task_id in ("a", "b", "c", "d"):
            assert record.claim(task_id) is None  # new: run it
        assert len(record) == 3
        assert record.claim("a") is None  # forgotten: the oldest went first
        assert record.claim("d") is not None  # still known: a duplicate
        assert record.cancel_unseen("e") is True
        assert record.claim("e") == CANCELLED_BEFORE_START

    asyncio.run(scenario())
