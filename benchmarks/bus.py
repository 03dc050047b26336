"""The bus: dispatch round trips, overheads against the raw parts, and exactly-once, in one run.

- (a) In-memory: an app Dendrite's ``dispatch_and_wait`` to an echo Neuron served by a worker
  Dendrite on the same ``memory://`` bus, p50.  Target < 50 µs.
- (b) NATS: the same over a real nats-server on loopback (two connections, as two PCs would have),
  against raw nats-py request/reply on the same server with payloads of the same sizes (the
  encoded TASK and RESULT), in alternating blocks.  Target <= 1.3x.  Also printed: the Synapse
  alone (``NatsSynapse.request`` answered by a handler, no Dendrite), to show where the time goes.
- (c) Time to first token of a chat reply served by a worker over NATS against the same model
  called directly: ``benchmarks/worker_ttft.measure()``.  Target overhead < 10 ms.
- (d) Tokens/s through the OpenAI-compatible gateway against raw llama.cpp:
  ``benchmarks/gateway_speed.measure()``.  Target >= 0.95.
- (e) Exactly-once over NATS: 10,000 tasks to two replicas serving the same Neuron, 64 in flight,
  with about 10% of the TASKs published a second time straight on the synapse to the worker that
  was sent it (half at once, racing the first delivery, half after its answer: a redelivery).
  Executions are counted per task id across both replicas.  Target: 0 duplicates, every task
  answered.

    .venv/bin/python benchmarks/bus.py [--round-trips 5000] [--tasks 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import nats  # noqa: E402

from nexus_desktop.bus.axon import Axon, JsonDict, TaskContext  # noqa: E402
from nexus_desktop.bus.dendrite import Dendrite  # noqa: E402
from nexus_desktop.bus.signals import Kind, Signal, encode, new_id  # noqa: E402
from nexus_desktop.bus.synapse import Connection, Handler, Subscription, Synapse, open_synapse  # noqa: E402
from tests.nats_support import NatsServer  # noqa: E402

INPUT: JsonDict = {"text": "Where to, captain?", "n": 0}
BLOCKS = 10
IN_FLIGHT = 64
REDELIVERED = 0.10


async def echo(data: JsonDict, context: TaskContext) -> JsonDict:
    return {"text": data["text"]}


def p50_us(samples: list[float]) -> float:
    return statistics.median(samples) * 1e6


def p95_us(samples: list[float]) -> float:
    return sorted(samples)[int(len(samples) * 0.95) - 1] * 1e6


async def timed(call: Callable[[], Awaitable[Any]], rounds: int) -> list[float]:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - started)
    return samples


async def pair(url: str) -> tuple[Dendrite, Dendrite, list[Synapse]]:
    """An app Dendrite and a worker Dendrite serving ``echo``, each on its own connection."""
    synapses = [open_synapse(Connection(url)), open_synapse(Connection(url))]
    worker = Dendrite(synapses[0], name="bench-worker", role="worker", capacity=IN_FLIGHT)
    worker.register(Axon("echo", echo))
    await worker.start()
    app = Dendrite(synapses[1], name="bench-app")
    await app.start()
    return app, worker, synapses


async def close_all(dendrites: list[Dendrite], synapses: list[Synapse]) -> None:
    for dendrite in dendrites:
        await dendrite.aclose()
    for synapse in synapses:
        await synapse.close()


async def in_memory(rounds: int) -> list[float]:
    app, worker, synapses = await pair("memory://bench")
    try:
        await timed(lambda: app.dispatch_and_wait("echo", INPUT), 500)  # warm-up
        return await timed(lambda: app.dispatch_and_wait("echo", INPUT), rounds)
    finally:
        await close_all([app, worker], synapses)


async def over_nats(url: str, rounds: int) -> tuple[dict[str, list[float]], int, int]:
    """Round trips, in alternating blocks: raw nats-py, the Synapse alone (encode, request, decode
    at the edge, a handler answering), and a Dendrite's ``dispatch_and_wait``."""
    app, worker, synapses = await pair(url)
    task = Signal(Kind.TASK, task_id=new_id(), neuron="echo", payload=INPUT, sender=app.name)
    task_bytes = len(encode(task))
    result = Signal(Kind.RESULT, task_id=new_id(), neuron="echo", payload=echo_output(), sender=worker.name)
    result_bytes = encode(result)
    raw_requester, raw_responder = await nats.connect(url), await nats.connect(url)

    async def respond(message: Any) -> None:
        await message.respond(result_bytes)

    async def answer(signal: Signal, reply: str) -> None:
        await synapses[0].publish(reply, result)

    await raw_responder.subscribe("raw.echo", cb=respond)
    await raw_responder.flush()
    await synapses[0].subscribe("synapse.echo", answer)
    request_bytes = b"x" * task_bytes
    calls: dict[str, Callable[[], Awaitable[Any]]] = {
        "raw": lambda: raw_requester.request("raw.echo", request_bytes, timeout=5),
        "synapse": lambda: synapses[1].request("synapse.echo", task, 5),
        "dendrite": lambda: app.dispatch_and_wait("echo", INPUT),
    }
    try:
        await asyncio.sleep(0.1)  # the subscriptions have reached the server
        samples: dict[str, list[float]] = {name: [] for name in calls}
        for call in calls.values():
            await timed(call, 500)  # warm-up
        for _ in range(BLOCKS):
            for name, call in calls.items():
                samples[name] += await timed(call, rounds // BLOCKS)
        return samples, task_bytes, len(result_bytes)
    finally:
        await raw_requester.close()
        await raw_responder.close()
        await close_all([app, worker], synapses)


def echo_output() -> JsonDict:
    return {"text": INPUT["text"]}


class Redelivering:
    """A Synapse that publishes some TASKs a second time straight on the bus (a redelivery)."""

    def __init__(self, inner: Synapse, share: float, seed: int = 15) -> None:
        self.inner = inner
        self.url = inner.url
        self.share = share
        self.random = random.Random(seed)
        self.injected = 0

    async def connect(self) -> None:
        await self.inner.connect()

    async def close(self) -> None:
        await self.inner.close()

    async def publish(self, subject: str, signal: Signal, reply: str = "") -> None:
        await self.inner.publish(subject, signal, reply)

    async def subscribe(self, subject: str, handler: Handler) -> Subscription:
        return await self.inner.subscribe(subject, handler)

    def inbox(self) -> str:
        return self.inner.inbox()

    async def request(self, subject: str, signal: Signal, timeout: float) -> Signal:
        if signal.kind is not Kind.TASK or self.random.random() >= self.share:
            return await self.inner.request(subject, signal, timeout)
        self.injected += 1
        if self.injected % 2:  # racing the first delivery
            await self.inner.publish(subject, signal)
            return await self.inner.request(subject, signal, timeout)
        answer = await self.inner.request(subject, signal, timeout)
        await self.inner.publish(subject, signal)  # after the answer: a late redelivery
        return answer


async def exactly_once(url: str, tasks: int) -> dict[str, Any]:
    executions: Counter[str] = Counter()
    per_replica: Counter[str] = Counter()

    def replica_neuron(name: str) -> Callable[[JsonDict, TaskContext], Awaitable[JsonDict]]:
        async def run(data: JsonDict, context: TaskContext) -> JsonDict:
            executions[context.task_id] += 1
            per_replica[name] += 1
            await asyncio.sleep(0)
            return {"n": data["n"]}

        return run

    synapses: list[Synapse] = []
    replicas: list[Dendrite] = []
    for name in ("replica-a", "replica-b"):
        synapse = open_synapse(Connection(url))
        synapses.append(synapse)
        replica = Dendrite(synapse, name=name, role="worker", capacity=IN_FLIGHT)
        replica.register(Axon("work", replica_neuron(name)))
        replicas.append(replica)
        await replica.start()
    injecting = Redelivering(open_synapse(Connection(url)), REDELIVERED)
    synapses.append(injecting)  # type: ignore[arg-type]
    app = Dendrite(injecting, name="bench-app")  # type: ignore[arg-type]
    await app.start()
    gate = asyncio.Semaphore(IN_FLIGHT)
    answered: list[int] = []

    async def one(number: int) -> None:
        async with gate:
            answer = await app.dispatch_and_wait("work", {"n": number}, timeout=30)
            answered.append(answer.output["n"])

    started = time.perf_counter()
    try:
        await asyncio.gather(*(one(number) for number in range(tasks)))
        elapsed = time.perf_counter() - started
        await asyncio.sleep(0.5)  # late redeliveries still on the way
    finally:
        await close_all([app, *replicas], synapses)
    duplicates = sum(count - 1 for count in executions.values() if count > 1)
    return {
        "tasks": tasks,
        "answered": len(set(answered)),
        "executed": len(executions),
        "duplicates": duplicates,
        "injected": injecting.injected,
        "per_replica": dict(per_replica),
        "seconds": elapsed,
    }


def external(module: str, label: str) -> Any:
    """Runs ``benchmarks/<module>.measure()`` (another helper's), or None when it is not there."""
    try:
        measure = importlib.import_module(module).measure
    except (ImportError, AttributeError):
        print(f"{label}: not measured (benchmarks/{module}.py has no measure() yet)")
        return None
    return measure()


async def run_bus(rounds: int, tasks: int) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    memory = await in_memory(rounds)
    figures["memory_p50"] = p50_us(memory)
    print(
        f"(a) in-memory dispatch_and_wait: p50 {p50_us(memory):.1f} µs, "
        f"p95 {p95_us(memory):.1f} µs (N={rounds})"
    )
    with tempfile.TemporaryDirectory(prefix="nexus-bench-nats-") as folder:
        server = NatsServer(Path(folder))
        server.start()
        try:
            samples, task_bytes, result_bytes = await over_nats(server.url, rounds)
            for name, label in (
                ("raw", f"raw nats-py request/reply ({task_bytes} B out, {result_bytes} B back)"),
                ("synapse", "NatsSynapse.request alone, same signals"),
                ("dendrite", "NATS dispatch_and_wait, same sizes"),
            ):
                figures[f"{name}_p50"] = p50_us(samples[name])
                print(
                    f"(b) {label}: p50 {p50_us(samples[name]):.1f} µs, "
                    f"p95 {p95_us(samples[name]):.1f} µs (N={len(samples[name])})"
                )
            once = await exactly_once(server.url, tasks)
            figures["once"] = once
            print(
                f"(e) exactly-once: {once['tasks']} tasks, {once['injected']} redelivered, "
                f"{once['answered']} answered, {once['executed']} executed, duplicates {once['duplicates']}, "
                f"per replica {once['per_replica']} ({once['tasks'] / once['seconds']:.0f} tasks/s)"
            )
        finally:
            server.stop()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--round-trips", type=int, default=5000)
    parser.add_argument("--tasks", type=int, default=10_000)
    args = parser.parse_args()
    figures = asyncio.run(run_bus(args.round_trips, args.tasks))
    ttft = external("worker_ttft", "(c) time to first token over a worker")
    speed = external("gateway_speed", "(d) tokens/s through the gateway")

    print()
    print(f"(a) in-memory dispatch p50: {figures['memory_p50']:.1f} µs (target < 50 µs)")
    ratio = figures["dendrite_p50"] / figures["raw_p50"]
    synapse_ratio = figures["synapse_p50"] / figures["raw_p50"]
    print(
        f"(b) NATS dispatch / raw nats-py request, p50: {ratio:.2f}x (target <= 1.3x; "
        f"the Synapse alone {synapse_ratio:.2f}x)"
    )
    print(f"(c) worker TTFT overhead: {describe(ttft)} (target < 10 ms)")
    print(f"(d) gateway tokens/s / raw llama.cpp: {describe(speed)} (target >= 0.95)")
    once = figures["once"]
    print(
        f"(e) duplicate executions: {once['duplicates']} of {once['tasks']} tasks "
        f"({once['answered']} answered; target 0 duplicates, all answered)"
    )


def describe(result: Any) -> str:
    """One line for another helper's ``measure()`` result (None: not measured)."""
    if result is None:
        return "not measured"
    if isinstance(result, dict) and "overhead_ms" in result:  # worker_ttft
        return (
            f"{result['overhead_ms']:.1f} ms ({result['worker_ms']:.1f} ms through a worker vs "
            f"{result['direct_ms']:.1f} ms direct, medians)"
        )
    ratio = getattr(result, "ratio", None)  # gateway_speed
    if isinstance(ratio, float):
        return (
            f"{ratio:.3f} ({result.gateway_tokens_per_second:.1f} vs "
            f"{result.raw_tokens_per_second:.1f} tok/s, medians)"
        )
    return str(result)


if __name__ == "__main__":
    main()
