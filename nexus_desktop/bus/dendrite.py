"""The Dendrite: the only component that touches a Synapse.

It serves the Axons registered on it (answering TASKs on ``{prefix}.worker.{name}.task``) and
calls the Neurons others serve (``dispatch``, ``dispatch_and_wait``, ``stream``), picking the
least busy worker from its directory.  An app's own Axons (``role="app"``) are served the same
way, so a caller never knows whether a Neuron runs in this process or on another PC.

Protocol (subjects in ``synapse.SubjectNames``):

- A Dendrite with Axons sends REGISTER on start and whenever a ``discover`` request arrives,
  HEARTBEAT every ``heartbeat_seconds`` with its load (tasks in flight) and capacity, and
  DEREGISTER on ``aclose``.  An app Dendrite asks ``discover`` on start and keeps a directory
  (a worker does neither: it only serves).
- ``dispatch_and_wait``: one request/reply; the worker's answer is the RESULT or ERROR itself.
- ``stream``: TASK(stream=True, reply_to=an inbox); the worker answers HEARTBEAT at once (it
  accepted), TOKENs in ``seq`` order with a HEARTBEAT every ``silence_seconds / 3`` of quiet,
  then RESULT or ERROR.  Silence longer than ``silence_seconds`` after accepting is
  ``WorkerLostError``; a worker that does not accept in time is skipped (and told CANCEL) and the
  next least busy one is tried.
- A worker never runs a task id twice (``idempotency.TaskRecord``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import socket
from collections.abc import AsyncGenerator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Literal

from nexus_desktop.bus.axon import (
    Axon,
    JsonDict,
    Piece,
    TaskContext,
    TaskError,
    WorkerLostError,
)
from nexus_desktop.bus.directory import Directory, WorkerInfo, subject_token
from nexus_desktop.bus.serving import AxonHost
from nexus_desktop.bus.signals import ORCHESTRATION, Kind, Signal, error_signal, new_id
from nexus_desktop.bus.stream_call import StreamCall, cancel_signal
from nexus_desktop.bus.synapse import (
    BusError,
    BusTimeoutError,
    Handler,
    NoRespondersError,
    SubjectNames,
    Subscription,
    Synapse,
)
from nexus_desktop.changes import Listeners
from nexus_desktop.llm.contract import CancelToken

log = logging.getLogger(__name__)

__all__ = [
    "Answer",
    "Axon",
    "Dendrite",
    "Piece",
    "TaskContext",
    "TaskError",
    "WorkerInfo",
    "WorkerLostError",
]


@dataclass(frozen=True, slots=True)
class Answer:
    """A finished task: the Neuron's output and the worker that produced it."""

    output: JsonDict
    worker: str
    task_id: str


class Dendrite:
    """One end of the bus.

    ``name`` becomes a subject token (letters, digits, ``-``, ``_``; ``self.name`` is the
    sanitised form) and is what callers see as "answered by".  ``host`` is shown in the directory
    (defaults to the machine's host name).  ``capacity`` is reported to callers (how many tasks
    this end runs well at once); the load they compare is its tasks in flight."""

    def __init__(
        self,
        synapse: Synapse,
        *,
        name: str,
        role: Literal["app", "worker"] = "app",
        prefix: str = "nexus",
        capacity: int = 1,
        host: str = "",
        heartbeat_seconds: float = 1.0,
        silence_seconds: float = 0.75,
        discover_seconds: float = 0.05,
    ) -> None:
        self.synapse = synapse
        self.name = subject_token(name)
        self.role = role
        self.host = host or socket.gethostname()
        self.capacity = capacity
        self.subjects = SubjectNames(prefix)
        self.heartbeat_seconds = heartbeat_seconds
        self.silence_seconds = silence_seconds
        self.discover_seconds = discover_seconds
        self.listeners: Listeners[list[WorkerInfo]] = Listeners()
        """Hears the directory (all workers) whenever a worker comes, goes or changes what it
        serves, on the event loop's thread."""
        self.results: Listeners[Signal] = Listeners()
        """Hears the RESULT or ERROR of every task sent with ``dispatch``."""
        self.host_side = AxonHost(synapse, self.name, beat_seconds=silence_seconds / 3)
        self.directory = Directory(heartbeat_seconds=heartbeat_seconds)
        self._subscriptions: list[Subscription] = []
        self._waiting: dict[str, set[asyncio.Task[Any]]] = {}
        """The callers waiting on each worker's answer to a request."""
        self._abandoned: set[asyncio.Task[Any]] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._started = False
        self._stop_hearing_reconnects: Callable[[], None] | None = None

    # -- life cycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect the synapse, serve the registered Axons, announce them, and learn the workers
        already on the bus (waits ``discover_seconds`` for their REGISTERs)."""
        if self._started:
            return
        await self.synapse.connect()
        self._started = True
        # A worker never dispatches, so it neither keeps a directory nor asks who is there: the
        # least-privilege worker user (docs/examples/nats-server.conf) may do neither.
        if self.role == "app":
            self._subscriptions.append(
                await self.synapse.subscribe(self.subjects.directory, self._on_directory)
            )
        self._subscriptions.append(await self.synapse.subscribe(self.subjects.discover, self._on_discover))
        self._subscriptions.append(
            await self.synapse.subscribe(
                self.subjects.worker_tasks(self.name), self.host_side.on_task_subject
            )
        )
        await self._announce(Kind.REGISTER)
        self._spawn(self._heartbeats())
        reconnected = getattr(self.synapse, "reconnected", None)  # NATS: the server came back
        if isinstance(reconnected, Listeners):
            self._stop_hearing_reconnects = reconnected.subscribe(lambda url: self._spawn(self._rejoin()))
        if self.role == "app":
            await self.synapse.publish(self.subjects.discover, Signal(Kind.REGISTER, sender=self.name))
            await asyncio.sleep(self.discover_seconds)

    async def aclose(self) -> None:
        """DEREGISTER, stop the tasks running here (their callers get ERROR "cancelled"), stop
        listening.  Does not close the synapse (its owner does).  Safe to call twice."""
        if not self._started:
            return
        self._started = False
        if self._stop_hearing_reconnects is not None:
            self._stop_hearing_reconnects()
            self._stop_hearing_reconnects = None
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(BusError):
            if self.host_side.axons:
                await self.synapse.publish(self.subjects.directory, Signal(Kind.DEREGISTER, sender=self.name))
        await self.host_side.aclose()
        for subscription in self._subscriptions:
            with contextlib.suppress(BusError):
                await subscription.unsubscribe()
        self._subscriptions.clear()

    async def __aenter__(self) -> Dendrite:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- the directory ----------------------------------------------------------------------

    def register(self, axon: Axon) -> None:
        """Serve ``axon`` (announced at once when started, else on start)."""
        self.host_side.axons[axon.neuron_id] = axon
        if self._started:
            self._spawn(self._announce(Kind.REGISTER))

    def workers(self) -> list[WorkerInfo]:
        """The live workers, by name (this Dendrite included when it serves Axons)."""
        return self.directory.workers()

    @property
    def load(self) -> int:
        """Tasks running here now."""
        return self.host_side.load

    def _presence(self, kind: Kind) -> Signal:
        payload = {
            "host": self.host,
            "neurons": self.host_side.describe(),
            "load": self.host_side.load,
            "capacity": self.capacity,
            "heartbeat_seconds": self.heartbeat_seconds,
        }
        return Signal(kind, sender=self.name, payload=payload)

    async def _announce(self, kind: Kind) -> None:
        if not self.host_side.axons:
            return
        signal = self._presence(kind)
        self._learn(signal)  # this end knows its own Axons at once
        await self.synapse.publish(self.subjects.directory, signal)

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_seconds)
            try:
                await self._announce(Kind.HEARTBEAT)
            except BusError as error:  # the server went away: the synapse reconnects
                log.debug("No heartbeat sent: %s", error)
            if self.directory.expire():
                self._directory_changed()

    async def _rejoin(self) -> None:
        """Back on a server that may have restarted: say who this is and ask who is there."""
        with contextlib.suppress(BusError):
            await self._announce(Kind.REGISTER)
            if self.role == "app":
                await self.synapse.publish(self.subjects.discover, Signal(Kind.REGISTER, sender=self.name))

    def _learn(self, signal: Signal) -> None:
        if self.directory.update(signal):
            self._directory_changed()

    async def _on_directory(self, signal: Signal, reply: str) -> None:
        if signal.sender != self.name or signal.kind is Kind.DEREGISTER:
            self._learn(signal)

    async def _on_discover(self, signal: Signal, reply: str) -> None:
        if signal.sender != self.name:
            await self._announce(Kind.REGISTER)

    def _directory_changed(self) -> None:
        workers = self.workers()
        # A request to a worker that left (DEREGISTER, missed heartbeats, nobody on its subject)
        # will never be answered: fail it now rather than after its whole timeout.
        live = {info.name for info in workers}
        for name in [name for name in self._waiting if name not in live]:
            for waiter in self._waiting.pop(name):
                self._abandoned.add(waiter)
                waiter.cancel()
        self.listeners.emit(workers)

    def drop_worker(self, worker: str) -> None:
        """Forget ``worker`` until it is heard again (nobody answers on its subject any more)."""
        if self.directory.forget(worker):
            self._directory_changed()

    # -- calling ----------------------------------------------------------------------------

    async def emit(self, subject: str, signal: Signal) -> None:
        """Publish ``signal`` as this Dendrite (its ``sender`` is set to ``self.name``).  A
        ``role="worker"`` Dendrite may not emit ORCHESTRATION kinds: ``BusError``."""
        self._may_emit(signal.kind)
        if signal.sender != self.name:
            signal = dataclasses.replace(signal, sender=self.name)
        await self.synapse.publish(subject, signal)

    async def listen(self, subject: str, handler: Handler) -> Subscription:
        """Subscribe ``handler(signal, reply_subject)`` to ``subject`` (for pathways and views);
        unsubscribed on ``aclose``."""
        subscription = await self.synapse.subscribe(subject, handler)
        self._subscriptions.append(subscription)
        return subscription

    def _may_emit(self, kind: Kind) -> None:
        if self.role == "worker" and kind in ORCHESTRATION:
            raise BusError(
                f"The worker {self.name} may not send {kind.value.upper()} signals: "
                "only the app directs tasks."
            )

    def _candidates(self, neuron: str) -> list[WorkerInfo]:
        self._may_emit(Kind.TASK)
        ranked = self.directory.ranked(neuron)
        if not ranked:
            raise TaskError("unknown_neuron", self.directory.unknown_message(neuron))
        return ranked

    def _new_task(self, neuron: str, input: JsonDict, trace_id: str | None) -> Signal:
        return Signal(
            Kind.TASK,
            task_id=new_id(),
            trace_id=trace_id or new_id(),
            neuron=neuron,
            payload=input,
            sender=self.name,
        )

    async def dispatch(self, neuron: str, input: JsonDict, *, trace_id: str | None = None) -> str:
        """Send a task and return its id at once; its RESULT or ERROR goes to ``results``.
        Raises ``TaskError("unknown_neuron")`` at once when nobody serves ``neuron``."""
        candidates = self._candidates(neuron)
        task = self._new_task(neuron, input, trace_id)

        async def run() -> None:
            try:
                answer = await self._request(candidates, task, 30.0)
            except TaskError as error:
                answer = error_signal(task, error.code, str(error), sender=error.worker)  # type: ignore[arg-type]
            self.results.emit(answer)

        self._spawn(run())
        return task.task_id

    async def dispatch_and_wait(
        self, neuron: str, input: JsonDict, *, timeout: float = 30.0, trace_id: str | None = None
    ) -> Answer:
        """Run ``neuron`` on the least busy worker serving it and return its output.

        Raises ``TaskError`` with ``.code``: ``unknown_neuron`` at once when nobody serves it,
        ``bad_input``/``failed``/``cancelled``/``refused`` as the worker answered, ``timeout``
        after ``timeout`` seconds (the worker is told CANCEL).  A worker that has gone (no
        responders) is skipped and the next one tried."""
        task = self._new_task(neuron, input, trace_id)
        answer = await self._request(self._candidates(neuron), task, timeout)
        return Answer(answer.payload, answer.sender, task.task_id)

    async def _request(self, candidates: list[WorkerInfo], task: Signal, timeout: float) -> Signal:
        in_flight = self.directory.in_flight
        for worker in candidates:
            subject = self.subjects.worker_tasks(worker.name)
            in_flight[worker.name] = in_flight.get(worker.name, 0) + 1
            waiter = asyncio.current_task()
            assert waiter is not None
            self._waiting.setdefault(worker.name, set()).add(waiter)
            try:
                answer = await self.synapse.request(subject, task, timeout)
            except asyncio.CancelledError:
                if waiter not in self._abandoned:
                    raise
                self._abandoned.discard(waiter)
                waiter.uncancel()
                raise WorkerLostError(
                    f"The worker {worker.name} left the bus before answering {task.neuron!r}; "
                    "start it again (or another one) and try again.",
                    worker=worker.name,
                ) from None
            except NoRespondersError:
                self._waiting.get(worker.name, set()).discard(waiter)  # not itself abandoned
                self.drop_worker(worker.name)
                continue
            except BusTimeoutError:
                with contextlib.suppress(BusError):
                    await self.synapse.publish(subject, cancel_signal(task, self.name))
                raise TaskError(
                    "timeout",
                    f"The worker {worker.name} did not answer {task.neuron!r} within {timeout:g} s.",
                    worker=worker.name,
                ) from None
            finally:
                in_flight[worker.name] -= 1
                self._waiting.get(worker.name, set()).discard(waiter)
            if answer.kind is Kind.RESULT:
                return answer
            raise TaskError(answer.error_code(), answer.error_message(), worker=answer.sender or worker.name)
        raise TaskError(
            "unknown_neuron", f"The workers serving {task.neuron!r} have gone. Start one and try again."
        )

    def stream(
        self,
        neuron: str,
        input: JsonDict,
        *,
        cancel: CancelToken | None = None,
        timeout: float = 300.0,
        task_id: str | None = None,
        trace_id: str | None = None,
    ) -> AsyncGenerator[Signal, None]:
        """Run ``neuron`` streaming: yields its TOKEN Signals in ``seq`` order, then the RESULT
        Signal (``.sender`` is the worker's name, ``.payload`` the output).

        Raises ``TaskError`` as ``dispatch_and_wait`` does (an ERROR "cancelled" when ``cancel``
        was set, unless the Neuron returned an output), ``WorkerLostError`` when the worker went
        silent for ``silence_seconds`` after accepting (or no worker accepted),
        ``TaskError("timeout")`` after ``timeout`` seconds in all.  Setting ``cancel`` sends
        CANCEL to the worker; closing the iterator early does too.  ``unknown_neuron`` is raised
        here, before iterating."""
        candidates = self._candidates(neuron)
        task = Signal(
            Kind.TASK,
            task_id=task_id or new_id(),
            trace_id=trace_id or new_id(),
            neuron=neuron,
            payload=input,
            sender=self.name,
            stream=True,
        )
        return StreamCall(self, candidates, task, cancel, timeout).run()
