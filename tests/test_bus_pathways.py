"""Pathways: sequential, reactive and streaming wiring of Neurons over the bus."""

from __future__ import annotations

import asyncio
from typing import Any

from nexus_desktop.bus.axon import Axon, TaskContext
from nexus_desktop.bus.pathways import reactive, sequential, streaming
from nexus_desktop.bus.signals import Kind, Signal
from tests.bus_support import (
    Ends,
    bus_url_fixture,  # noqa: F401
    wait_until,
    words_axon,
)


async def add_one(data: dict[str, Any], context: TaskContext) -> dict[str, Any]:
    return {"value": data["value"] + 1}


async def double(data: dict[str, Any], context: TaskContext) -> dict[str, Any]:
    return {"value": data["value"] * 2}


async def shout(data: dict[str, Any], context: TaskContext) -> dict[str, Any]:
    return {"text": str(data["text"]).upper()}


def test_sequential_feeds_each_output_to_the_next_neuron(bus_url: str) -> None:
    async def scenario() -> None:
        async with Ends(bus_url) as ends:
            await ends.end("worker", Axon("add_one", add_one), Axon("double", double), role="worker")
            app = await ends.end("app")
            assert await sequential(app, ["add_one", "double"], {"value": 1}) == {"value": 4}
            assert await sequential(app, ["double", "add_one"], {"value": 1}) == {"value": 3}  # order matters

    asyncio.run(scenario())


def test_reactive_runs_a_neuron_whenever_a_matching_signal_arrives(bus_url: str) -> None:
    async def scenario() -> None:
        async with Ends(bus_url) as ends:
            await ends.end("worker", Axon("double", double), role="worker")
            app = await ends.end("app")
            results: list[Signal] = []
            app.results.subscribe(results.append)
            await reactive(app, "nexus.events", "double", kind=Kind.RESULT, source="add_one")
            await app.emit("nexus.events", Signal(Kind.RESULT, neuron="other", payload={"value": 100}))
            await app.emit("nexus.events", Signal(Kind.TOKEN, neuron="add_one", payload={"value": 200}))
            await app.emit("nexus.events", Signal(Kind.RESULT, neuron="add_one", payload={"value": 5}))
            await wait_until(lambda: len(results) == 1)
            await asyncio.sleep(0.1)  # the two signals that do not match run nothing
            assert [result.payload for result in results] == [{"value": 10}]

    asyncio.run(scenario())


def test_streaming_passes_each_token_through_the_transforms_in_order(bus_url: str) -> None:
    async def scenario() -> None:
        async with Ends(bus_url) as ends:
            await ends.end("worker", words_axon(), Axon("shout", shout), role="worker")
            app = await ends.end("app")
            signals = [
                signal async for signal in streaming(app, "words", {"text": "one two three"}, ["shout"])
            ]
            assert [signal.payload["text"] for signal in signals[:-1]] == ["ONE", "TWO", "THREE"]
            assert (signals[-1].kind, signals[-1].payload) == (Kind.RESULT, {"words": 3})

    asyncio.run(scenario())
