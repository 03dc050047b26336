"""Garbage that holds Qt objects is collected on the Qt thread, never on a worker thread.

A worker thread's automatic collection destroying Qt objects deadlocked the app against the Qt
thread (Qt's signal-slot lock one way, the GIL the other: the settings dialog hung for good).
"""

from __future__ import annotations

import gc
import threading
import weakref
from typing import Any

from PySide6.QtCore import QObject

from nexus_desktop.ui.gc_pause import collect_garbage_on_qt_thread


class _InACycle(QObject):
    def __init__(self) -> None:
        super().__init__()
        self.me = self  # only the cyclic collector frees it


def _drop_qt_garbage(where: list[str]) -> None:
    garbage = _InACycle()
    weakref.finalize(garbage, lambda: where.append(threading.current_thread().name))
    del garbage


def _allocate_on_a_worker() -> None:
    def churn() -> None:
        for _ in range(5_000):  # cyclic garbage, far past the collection threshold
            cycle: list[Any] = []
            cycle.append(cycle)

    worker = threading.Thread(target=churn, name="worker")
    worker.start()
    worker.join()


def test_qt_garbage_made_while_a_worker_allocates_is_collected_on_the_qt_thread(qtbot: Any) -> None:
    collector = collect_garbage_on_qt_thread()
    where: list[str] = []
    _drop_qt_garbage(where)
    _allocate_on_a_worker()
    assert where == []  # the worker allocated plenty, and collected nothing
    qtbot.waitUntil(lambda: where == [threading.current_thread().name], timeout=5000)
    assert threading.current_thread() is threading.main_thread()
    assert sum(collector.collections) >= 1


def test_without_it_a_worker_thread_would_collect_the_qt_garbage() -> None:
    # The control: Python's automatic collection (what the app ran before) collects wherever
    # allocation happens to cross the threshold, here on the worker.
    was_enabled = gc.isenabled()
    gc.enable()
    try:
        where: list[str] = []
        _drop_qt_garbage(where)
        _allocate_on_a_worker()
        assert where == ["worker"]
    finally:
        if not was_enabled:
            gc.disable()
