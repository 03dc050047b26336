"""Pathways: the three ways of wiring Neurons together, as in the seed design.

- ``sequential``: each Neuron's output is the next one's input.
- ``reactive``: run a Neuron whenever a Signal of a kind (and from a Neuron) arrives on a subject.
- ``streaming``: a stream whose every TOKEN passes through a chain of transform Neurons.

Each goes through a Dendrite, so the Neurons may run in this process or on another PC.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncGenerator, Sequence

from nexus_desktop.bus.axon import JsonDict, TaskError
from nexus_desktop.bus.dendrite import Dendrite
from nexus_desktop.bus.signals import Kind, Signal, new_id
from nexus_desktop.bus.synapse import Subscription

log = logging.getLogger(__name__)


async def sequential(
    dendrite: Dendrite, neurons: Sequence[str], input: JsonDict, *, timeout: float = 30.0
) -> JsonDict:
    """Run ``neurons`` one after another, each on the previous one's output; the last output.
    A step that fails raises its ``TaskError`` (the later steps do not run)."""
    trace_id = new_id()
    data = input
    for neuron in neurons:
        data = (await dendrite.dispatch_and_wait(neuron, data, timeout=timeout, trace_id=trace_id)).output
    return data


async def reactive(
    dendrite: Dendrite, subject: str, neuron: str, *, kind: Kind | None = None, source: str | None = None
) -> Subscription:
    """Whenever a Signal of ``kind`` (any kind when None) from the Neuron ``source`` (any when
    None) arrives on ``subject``, dispatch ``neuron`` with its payload, on the same trace; the
    answers reach ``dendrite.results``.  Unsubscribe the returned Subscription to stop."""

    async def on_signal(signal: Signal, reply: str) -> None:
        if (kind is not None and signal.kind is not kind) or (source is not None and signal.neuron != source):
            return
        try:
            await dendrite.dispatch(neuron, signal.payload, trace_id=signal.trace_id)
        except TaskError as error:
            log.warning("A reactive pathway could not run %s: %s", neuron, error)

    return await dendrite.listen(subject, on_signal)


async def streaming(
    dendrite: Dendrite, neuron: str, input: JsonDict, transforms: Sequence[str], *, timeout: float = 300.0
) -> AsyncGenerator[Signal, None]:
    """Stream ``neuron`` and pass each TOKEN's payload through ``transforms`` in order (each a
    Neuron taking the payload and returning the new one); yields the transformed TOKENs, then the
    RESULT as the source Neuron sent it."""
    async for signal in dendrite.stream(neuron, input, timeout=timeout):
        if signal.kind is Kind.TOKEN and transforms:
            payload = await sequential(dendrite, transforms, signal.payload)
            signal = dataclasses.replace(signal, payload=payload)
        yield signal
