"""The exactly-once record: which task ids a worker has seen, and their answers.

A redelivered TASK (the same ``task_id`` again: a retried publish, a reconnect, a test that
publishes twice) is never run again.  A duplicate request gets the stored answer, or waits for
the one still running; a duplicate stream TASK is ignored (its first delivery is already
answering on its inbox).  A CANCEL for a task not yet seen is recorded too, so a TASK that
arrives after its CANCEL is not started.  The record is bounded: the oldest ids are forgotten
after ``limit`` newer ones.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict

from nexus_desktop.bus.signals import Signal

CANCELLED_BEFORE_START = "cancelled"


class TaskRecord:
    def __init__(self, limit: int = 100_000) -> None:
        self._seen: OrderedDict[str, asyncio.Future[Signal] | str] = OrderedDict()
        self._limit = limit

    def __len__(self) -> int:
        return len(self._seen)

    def claim(self, task_id: str) -> asyncio.Future[Signal] | str | None:
        """None when ``task_id`` is new (it is now recorded as running: run it and ``finish`` it);
        otherwise what is known: the running or finished answer's future, or
        ``CANCELLED_BEFORE_START``."""
        known = self._seen.get(task_id)
        if known is not None:
            return known
        self._remember(task_id, asyncio.get_running_loop().create_future())
        return None

    def finish(self, task_id: str, answer: Signal) -> None:
        """Store the answer a duplicate request will get."""
        known = self._seen.get(task_id)
        if isinstance(known, asyncio.Future):
            if not known.done():
                known.set_result(answer)
        else:
            future: asyncio.Future[Signal] = asyncio.get_running_loop().create_future()
            future.set_result(answer)
            self._remember(task_id, future)

    def cancel_unseen(self, task_id: str) -> bool:
        """Record a CANCEL for a task not seen yet; False when the task is known already."""
        if task_id in self._seen:
            return False
        self._remember(task_id, CANCELLED_BEFORE_START)
        return True

    def _remember(self, task_id: str, value: asyncio.Future[Signal] | str) -> None:
        self._seen[task_id] = value
        while len(self._seen) > self._limit:
            self._seen.popitem(last=False)
