"""The calling side of one streamed task (``Dendrite.stream``).

The TASK goes to the least busy worker as a request whose answer is the worker's "accepted"
HEARTBEAT; a worker that has gone (no responders) or does not accept within ``silence_seconds``
is skipped (and told CANCEL, in case the TASK reaches it late) and the next one is tried: the task
has not started there.  Once accepted, TOKENs, HEARTBEATs and the final RESULT or ERROR arrive on
a private inbox; silence longer than ``silence_seconds`` means the worker is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections import deque
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING

from nexus_desktop.bus.axon import TaskError, WorkerLostError
from nexus_desktop.bus.directory import WorkerInfo
from nexus_desktop.bus.signals import Kind, Signal
from nexus_desktop.bus.synapse import BusError, BusTimeoutError, NoRespondersError
from nexus_desktop.llm.contract import CancelToken

if TYPE_CHECKING:
    from nexus_desktop.bus.dendrite import Dendrite

CANCEL_POLL_SECONDS = 0.05
"""How often a waiting stream looks at its CancelToken (a thread-safe flag with no callback)."""


def cancel_signal(task: Signal, sender: str) -> Signal:
    return Signal(
        Kind.CANCEL, task_id=task.task_id, trace_id=task.trace_id, neuron=task.neuron, sender=sender
    )


class StreamCall:
    def __init__(
        self,
        dendrite: Dendrite,
        candidates: list[WorkerInfo],
        task: Signal,
        cancel: CancelToken | None,
        timeout: float,
    ) -> None:
        self._dendrite = dendrite
        self._candidates = candidates
        self._task = task
        self._cancel = cancel
        self._timeout = timeout
        self._mail: deque[Signal] = deque()
        self._waiter: asyncio.Future[None] | None = None

    async def _on_mail(self, signal: Signal, reply: str) -> None:
        if signal.task_id != self._task.task_id:
            return
        self._mail.append(signal)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def _wait_mail(self, seconds: float) -> None:
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(seconds):
                await self._waiter
        except TimeoutError:
            pass
        finally:
            self._waiter = None

    async def _place(self, task: Signal) -> str:
        """The name of the worker that accepted ``task``."""
        dendrite = self._dendrite
        in_flight = dendrite.directory.in_flight
        for worker in self._candidates:
            subject = dendrite.subjects.worker_tasks(worker.name)
            in_flight[worker.name] = in_flight.get(worker.name, 0) + 1
            try:
                accepted = await dendrite.synapse.request(subject, task, dendrite.silence_seconds)
            except NoRespondersError:
                in_flight[worker.name] -= 1
                dendrite.drop_worker(worker.name)
                continue
            except BusTimeoutError:
                in_flight[worker.name] -= 1
                with contextlib.suppress(BusError):
                    await dendrite.synapse.publish(subject, cancel_signal(task, dendrite.name))
                continue
            if accepted.kind is Kind.ERROR:
                in_flight[worker.name] -= 1
                raise TaskError(accepted.error_code(), accepted.error_message(), worker=worker.name)
            return worker.name
        raise WorkerLostError(
            f"No worker serving {task.neuron!r} accepted the task within {dendrite.silence_seconds:g} s "
            "(they have gone or are overloaded). Try again in a moment."
        )

    async def run(self) -> AsyncGenerator[Signal, None]:
        dendrite = self._dendrite
        inbox = dendrite.synapse.inbox()
        task = dataclasses.replace(self._task, reply_to=inbox)
        subscription = await dendrite.synapse.subscribe(inbox, self._on_mail)
        worker = ""
        finished = False
        tokens = 0
        try:
            worker = await self._place(task)
            silence = dendrite.silence_seconds
            deadline = time.monotonic() + self._timeout
            last_heard = time.monotonic()
            last_seq = 0
            cancel_sent = False
            while True:
                if self._cancel is not None and self._cancel.cancelled and not cancel_sent:
                    cancel_sent = True
                    await dendrite.synapse.publish(
                        dendrite.subjects.worker_tasks(worker), cancel_signal(task, dendrite.name)
                    )
                if self._mail:
                    signal = self._mail.popleft()
                    if signal.sender != worker:
                        continue  # a skipped worker that got the TASK late
                    last_heard = time.monotonic()
                    if signal.kind is Kind.TOKEN and signal.seq > last_seq:
                        last_seq = signal.seq
                        tokens += 1
                        yield signal
                    elif signal.kind is Kind.RESULT:
                        finished = True
                        yield signal
                        return
                    elif signal.kind is Kind.ERROR:
                        finished = True
                        raise TaskError(signal.error_code(), signal.error_message(), worker=worker)
                    continue
                now = time.monotonic()
                quiet = now - last_heard
                if quiet >= silence:
                    raise WorkerLostError(
                        f"The worker {worker} went silent for {quiet:.2f} s while answering {task.neuron!r} "
                        f"(after {tokens} tokens): it stopped or the connection dropped.",
                        worker=worker,
                        tokens_received=tokens,
                    )
                if now >= deadline:
                    raise TaskError(
                        "timeout",
                        f"The worker {worker} did not finish {task.neuron!r} within {self._timeout:g} s.",
                        worker=worker,
                    )
                wait = min(silence - quiet, deadline - now)
                if self._cancel is not None and not cancel_sent:
                    wait = min(wait, CANCEL_POLL_SECONDS)
                await self._wait_mail(wait)
        finally:
            if worker:
                dendrite.directory.in_flight[worker] -= 1
                if not finished:  # lost, timed out or abandoned: make sure it stops
                    with contextlib.suppress(BusError):
                        await dendrite.synapse.publish(
                            dendrite.subjects.worker_tasks(worker), cancel_signal(task, dendrite.name)
                        )
            with contextlib.suppress(BusError):
                await subscription.unsubscribe()
