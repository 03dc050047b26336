"""Test Neurons and set-up for the bus tests, on ``memory://`` and on a real nats-server.

``Ends`` opens Dendrites (each on its own Synapse, as separate processes would) and closes them
all, also when a test fails.  ``Counting`` records which task ids its Neurons ran, so the
exactly-once tests count executions.  ``serve`` is a worker process
serving ``words`` over NATS: the SIGKILL test's victim.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, Literal

import pytest

from nexus_desktop.bus.axon import Axon, Piece, TaskContext
from nexus_desktop.bus.dendrite import Dendrite
from nexus_desktop.bus.synapse import Connection, Synapse, open_synapse
from tests.nats_support import start_nats

TRANSPORTS = ["memory", "nats"]
Data = dict[str, Any]
Item = Piece | dict[str, Any]


@pytest.fixture(params=TRANSPORTS, name="bus_url")
def bus_url_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The test runs twice: on ``memory://`` and on a real nats-server on a loopback port."""
    if request.param == "memory":
        yield f"memory://{request.node.name}"
        return
    server = start_nats(tmp_path)
    try:
        yield server.url
    finally:
        server.stop()


class Ends:
    """Dendrites on one bus; ``close()`` stops them and their Synapses."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.dendrites: list[Dendrite] = []
        self.synapses: list[Synapse] = []

    async def synapse(self) -> Synapse:
        synapse = open_synapse(Connection(self.url))
        await synapse.connect()
        self.synapses.append(synapse)
        return synapse

    async def end(
        self,
        name: str,
        *axons: Axon,
        role: Literal["app", "worker"] = "app",
        **options: Any,
    ) -> Dendrite:
        dendrite = Dendrite(await self.synapse(), name=name, role=role, **options)
        for axon in axons:
            dendrite.register(axon)
        self.dendrites.append(dendrite)
        await dendrite.start()
        return dendrite

    async def close(self) -> None:
        for dendrite in reversed(self.dendrites):
            await dendrite.aclose()
        for synapse in self.synapses:
            await synapse.close()

    async def __aenter__(self) -> Ends:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def wait_until(condition: Any, seconds: float = 3.0) -> None:
    """Poll ``condition()`` until true; AssertionError after ``seconds``."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("the condition did not hold in time")
        await asyncio.sleep(0.01)


async def echo(data: Data, context: TaskContext) -> Data:
    return {"echo": data, "caller": context.caller}


async def words(data: Data, context: TaskContext) -> AsyncIterator[Item]:
    """One TOKEN per word of ``text`` (``delay`` seconds apart), then ``{"words": n}``."""
    sent = 0
    for word in str(data["text"]).split():
        if context.cancel.cancelled:
            yield {"words": sent, "stopped": True}
            return
        yield Piece({"text": word})
        sent += 1
        await asyncio.sleep(float(data.get("delay", 0)))
    yield {"words": sent}


async def words_once(data: Data, context: TaskContext) -> Data:
    return {"words": len(str(data["text"]).split())}


def words_axon() -> Axon:
    return Axon("words", words_once, stream=words)


class Counting:
    """Neurons that record each task id they run (``runs``) and can be held until released."""

    def __init__(self) -> None:
        self.runs: Counter[str] = Counter()
        self.release = asyncio.Event()
        self.release.set()
        self.started = asyncio.Event()

    async def call(self, data: Data, context: TaskContext) -> Data:
        self.runs[context.task_id] += 1
        self.started.set()
        await self.release.wait()
        return {"n": data.get("n"), "runs": self.runs[context.task_id]}

    async def stream(self, data: Data, context: TaskContext) -> AsyncIterator[Item]:
        self.runs[context.task_id] += 1
        self.started.set()
        for index in range(int(data.get("tokens", 3))):
            yield Piece({"i": index})
        await self.release.wait()
        yield {"n": data.get("n")}

    def axon(self, neuron_id: str = "count") -> Axon:
        return Axon(neuron_id, self.call, stream=self.stream)

    @property
    def executions(self) -> int:
        return sum(self.runs.values())


async def until_cancelled(data: Data, context: TaskContext) -> AsyncIterator[Item]:
    """TOKENs every 20 ms until Stop; then returns what it has (or raises when asked to)."""
    sent = 0
    while not context.cancel.cancelled:
        yield Piece({"i": sent})
        sent += 1
        await asyncio.sleep(0.02)
    if data.get("raise_on_cancel"):
        raise RuntimeError("stopped")
    yield {"sent": sent, "stopped": True}


async def nap(data: Data, context: TaskContext) -> Data:
    """Answers after ``seconds``: a request still running when its worker dies."""
    await asyncio.sleep(float(data["seconds"]))
    return {"slept": data["seconds"]}


async def _serve_forever(url: str, name: str) -> None:
    synapse = open_synapse(Connection(url))
    await synapse.connect()
    dendrite = Dendrite(synapse, name=name, role="worker")
    dendrite.register(words_axon())
    dendrite.register(Axon("nap", nap))
    await dendrite.start()
    print("ready", flush=True)
    await asyncio.Event().wait()


def serve(url: str, name: str) -> None:
    """Run a worker serving ``words`` and ``nap`` until killed (``python -c`` in the SIGKILL tests)."""
    asyncio.run(_serve_forever(url, name))
