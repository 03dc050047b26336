"""The worker directory: who serves which Neurons, how busy they are, and who to pick.

Every Dendrite keeps one, fed by the REGISTER, HEARTBEAT and DEREGISTER Signals on
``{prefix}.directory``.  A worker that misses ``missed_beats`` heartbeats in a row is dropped, as
is one that said DEREGISTER.  ``pick`` is the least busy live worker serving a Neuron: its
reported load plus what this Dendrite itself has in flight to it, ties broken round-robin.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

from nexus_desktop.bus.signals import Kind, Signal

_NOT_SUBJECT_SAFE = re.compile(r"[^A-Za-z0-9_-]+")


def subject_token(name: str) -> str:
    """``name`` as one NATS subject token: letters, digits, ``-`` and ``_`` (others become ``-``)."""
    token = _NOT_SUBJECT_SAFE.sub("-", name).strip("-")
    return token[:64] or "worker"


@dataclass(frozen=True)
class WorkerInfo:
    """One worker as its last REGISTER or HEARTBEAT described it."""

    name: str
    host: str
    neurons: tuple[str, ...]
    load: int
    """Tasks in flight there when it last reported."""
    capacity: int
    last_seen: float
    """``time.monotonic()`` of its last REGISTER or HEARTBEAT."""
    streaming: frozenset[str] = frozenset()
    """The neurons that stream TOKENs (the others answer in one piece)."""
    capabilities: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Each neuron's capabilities."""

    def serves(self, neuron: str) -> bool:
        return neuron in self.neurons


def worker_from_signal(signal: Signal, now: float) -> WorkerInfo | None:
    """The WorkerInfo a REGISTER/HEARTBEAT describes, or None when its payload is malformed."""
    payload = signal.payload
    try:
        described: list[dict[str, Any]] = list(payload.get("neurons", []))
        neurons = tuple(str(item["id"]) for item in described)
        streaming = frozenset(str(item["id"]) for item in described if item.get("streaming"))
        capabilities = {
            str(item["id"]): tuple(str(c) for c in item.get("capabilities", ())) for item in described
        }
        return WorkerInfo(
            name=signal.sender,
            host=str(payload.get("host", "")),
            neurons=neurons,
            load=int(payload.get("load", 0)),
            capacity=int(payload.get("capacity", 1)),
            last_seen=now,
            streaming=streaming,
            capabilities=capabilities,
        )
    except (KeyError, TypeError, ValueError):
        return None


class Directory:
    def __init__(self, *, heartbeat_seconds: float = 1.0, missed_beats: int = 3) -> None:
        self._workers: dict[str, WorkerInfo] = {}
        self._heartbeat_seconds = heartbeat_seconds
        self._missed_beats = missed_beats
        self._expiry: dict[str, float] = {}
        """How long each worker may stay silent: its own heartbeat interval times missed_beats."""
        self._turn = 0
        self.in_flight: dict[str, int] = {}
        """What this Dendrite has in flight to each worker (its own share of their load)."""

    def update(self, signal: Signal) -> bool:
        """Apply a REGISTER, HEARTBEAT or DEREGISTER; True when the set of workers or what they
        serve changed (a load change alone is not news)."""
        name = signal.sender
        if not name:
            return False
        if signal.kind is Kind.DEREGISTER:
            return self.forget(name)
        if signal.kind not in (Kind.REGISTER, Kind.HEARTBEAT):
            return False
        info = worker_from_signal(signal, time.monotonic())
        if info is None:
            return False
        beat = signal.payload.get("heartbeat_seconds", self._heartbeat_seconds)
        if isinstance(beat, int | float) and 0 < beat < 3600:
            self._expiry[name] = beat * self._missed_beats
        before = self._workers.get(name)
        self._workers[name] = info
        return before is None or before.neurons != info.neurons or before.host != info.host

    def expire(self) -> bool:
        """Drop the workers that missed their heartbeats; True when any went."""
        now = time.monotonic()
        default = self._heartbeat_seconds * self._missed_beats
        gone = [
            name
            for name, info in self._workers.items()
            if now - info.last_seen > self._expiry.get(name, default)
        ]
        for name in gone:
            self.forget(name)
        return bool(gone)

    def forget(self, name: str) -> bool:
        self._expiry.pop(name, None)
        return self._workers.pop(name, None) is not None

    def workers(self) -> list[WorkerInfo]:
        return sorted(self._workers.values(), key=lambda info: info.name)

    def ranked(self, neuron: str) -> list[WorkerInfo]:
        """The live workers serving ``neuron``, least busy first (ties in round-robin order)."""
        candidates = sorted(
            (info for info in self._workers.values() if neuron in info.neurons),
            key=lambda info: info.name,
        )
        if not candidates:
            return []
        self._turn += 1
        start = self._turn % len(candidates)
        rotated = candidates[start:] + candidates[:start]
        return sorted(rotated, key=lambda info: info.load + self.in_flight.get(info.name, 0))

    def unknown_message(self, neuron: str) -> str:
        """One sentence: nobody serves ``neuron``, and who serves what."""
        if not self._workers:
            return (
                f"No worker serves the neuron {neuron!r}: no worker is connected to the bus. "
                "Start one (nexus worker --connect URL) and try again."
            )
        served = "; ".join(
            f"{info.name} serves {', '.join(info.neurons) or 'nothing'}" for info in self.workers()
        )
        return (
            f"No worker serves the neuron {neuron!r} ({served}). "
            "Pick one of those or start a worker that serves it."
        )
