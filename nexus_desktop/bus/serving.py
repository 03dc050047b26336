"""The serving side of a Dendrite: runs the TASKs that arrive for its Axons, once each.

A request TASK (sent with ``Synapse.request``) is answered with the RESULT or ERROR itself.  A
stream TASK (``stream=True``) is accepted with a HEARTBEAT on the request's reply subject, then
answered on its ``reply_to``: TOKENs in ``seq`` order, a HEARTBEAT every ``beat_seconds`` while
the Neuron works, and the RESULT or ERROR.  CANCEL sets the task's ``TaskContext.cancel``; a
Neuron that ignores it is stopped after ``cancel_grace_seconds``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from nexus_desktop.bus.axon import Axon, JsonDict, Piece, TaskContext, TaskError
from nexus_desktop.bus.idempotency import TaskRecord
from nexus_desktop.bus.signals import Kind, Signal, error_signal
from nexus_desktop.bus.synapse import BusError, Synapse

log = logging.getLogger(__name__)

_STREAMED = "This task was streamed already: its answer went to its stream."


class AxonHost:
    def __init__(
        self,
        synapse: Synapse,
        name: str,
        *,
        beat_seconds: float = 0.25,
        cancel_grace_seconds: float = 2.0,
        record_limit: int = 100_000,
    ) -> None:
        self.synapse = synapse
        self.name = name
        self.axons: dict[str, Axon] = {}
        self.record = TaskRecord(record_limit)
        self._running: dict[str, tuple[TaskContext, asyncio.Task[Any]]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._beat_seconds = beat_seconds
        self._cancel_grace = cancel_grace_seconds

    @property
    def load(self) -> int:
        return len(self._running)

    def describe(self) -> list[JsonDict]:
        return [axon.describe() for axon in self.axons.values()]

    async def on_task_subject(self, signal: Signal, reply: str) -> None:
        """The handler of ``{prefix}.worker.{name}.task``: TASK and CANCEL."""
        if signal.kind is Kind.TASK:
            self._take(signal, reply)
        elif signal.kind is Kind.CANCEL:
            running = self._running.get(signal.task_id)
            if running is None:
                self.record.cancel_unseen(signal.task_id)
                return
            context, task = running
            context.cancel.cancel()
            asyncio.get_running_loop().call_later(self._cancel_grace, task.cancel)

    def _take(self, signal: Signal, reply: str) -> None:
        if signal.stream and not signal.reply_to:
            log.warning("Ignored a stream task from %s with nowhere to stream to", signal.sender)
            return
        known = self.record.claim(signal.task_id)
        if known is not None:
            if not signal.stream and (reply or signal.reply_to):
                self._spawn(self._answer_duplicate(signal, reply or signal.reply_to, known))
            return  # a duplicate stream TASK: its first delivery is already answering
        context = TaskContext(signal.task_id, signal.trace_id, signal.sender)
        if signal.stream:
            task = self._spawn(self._serve_stream(signal, reply, context))
        else:
            task = self._spawn(self._serve_request(signal, reply or signal.reply_to, context))
        self._running[signal.task_id] = (context, task)

    def _spawn(self, work: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _answer_duplicate(
        self, signal: Signal, answer_to: str, known: asyncio.Future[Signal] | str
    ) -> None:
        if isinstance(known, str):
            answer = error_signal(
                signal, "cancelled", "The task was cancelled before it started.", sender=self.name
            )
        else:
            answer = await asyncio.shield(known)
        await self.synapse.publish(answer_to, answer)

    def _axon(self, signal: Signal) -> Axon:
        axon = self.axons.get(signal.neuron)
        if axon is None:
            served = ", ".join(sorted(self.axons)) or "nothing"
            raise TaskError(
                "unknown_neuron",
                f"The worker {self.name} does not serve {signal.neuron!r} (it serves {served}).",
                worker=self.name,
            )
        return axon

    def _failure(self, signal: Signal, error: BaseException, context: TaskContext) -> Signal:
        if isinstance(error, TaskError):
            return error_signal(signal, error.code, str(error), sender=self.name)  # type: ignore[arg-type]
        if context.cancel.cancelled or isinstance(error, asyncio.CancelledError):
            return error_signal(
                signal, "cancelled", "The task was stopped before it finished.", sender=self.name
            )
        log.warning(
            "The neuron %s failed on task %s: %s", signal.neuron, signal.task_id, error, exc_info=error
        )
        message = str(error) or type(error).__name__
        return error_signal(
            signal, "failed", f"The neuron {signal.neuron!r} failed: {message}", sender=self.name
        )

    def _result(self, signal: Signal, output: JsonDict) -> Signal:
        return Signal(
            Kind.RESULT,
            task_id=signal.task_id,
            trace_id=signal.trace_id,
            neuron=signal.neuron,
            payload=output,
            sender=self.name,
        )

    async def _serve_request(self, signal: Signal, answer_to: str, context: TaskContext) -> None:
        try:
            answer = self._result(signal, await self._axon(signal).run(signal.payload, context))
        except (Exception, asyncio.CancelledError) as error:
            answer = self._failure(signal, error, context)
        finally:
            self._running.pop(signal.task_id, None)
        self.record.finish(signal.task_id, answer)
        if answer_to:
            await self._publish(answer_to, answer)

    async def _serve_stream(self, signal: Signal, accept_to: str, context: TaskContext) -> None:
        reply_to = signal.reply_to
        beat = Signal(Kind.HEARTBEAT, task_id=signal.task_id, trace_id=signal.trace_id, sender=self.name)
        await self._publish(accept_to or reply_to, beat)
        beating = self._spawn(self._beat(reply_to, beat))
        answer: Signal | None = None
        try:
            seq = 0
            async for item in self._axon(signal).run_stream(signal.payload, context):
                if isinstance(item, Piece):
                    seq += 1
                    token = Signal(
                        Kind.TOKEN,
                        task_id=signal.task_id,
                        trace_id=signal.trace_id,
                        neuron=signal.neuron,
                        payload=item.payload,
                        sender=self.name,
                        seq=seq,
                    )
                    await self._publish(reply_to, token)
                else:
                    answer = self._result(signal, item)
                    break
            if answer is None:
                raise TaskError("failed", f"The neuron {signal.neuron!r} stopped without an output.")
        except (Exception, asyncio.CancelledError) as error:
            answer = self._failure(signal, error, context)
        finally:
            beating.cancel()
            self._running.pop(signal.task_id, None)
        # Duplicates of a stream TASK are ignored, so the record keeps no copy of its output.
        self.record.finish(signal.task_id, error_signal(signal, "refused", _STREAMED, sender=self.name))
        await self._publish(reply_to, answer)

    async def _beat(self, reply_to: str, beat: Signal) -> None:
        while True:
            await asyncio.sleep(self._beat_seconds)
            await self._publish(reply_to, beat)

    async def _publish(self, subject: str, signal: Signal) -> None:
        try:
            await self.synapse.publish(subject, signal)
        except BusError as error:  # the caller will see the silence and fail over
            log.warning("Could not answer task %s on the bus: %s", signal.task_id, error)

    async def aclose(self) -> None:
        """Stop the tasks running here (their callers get ERROR "cancelled")."""
        for context, task in list(self._running.values()):
            context.cancel.cancel()
            task.cancel()
        pending = list(self._tasks)
        if pending:
            await asyncio.wait(pending, timeout=2.0)
