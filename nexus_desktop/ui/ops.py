"""Run work off the Qt thread and get the result back on it (in the spirit of Anki's QueryOp).

    QueryOp(parent=self, op=lambda: store.list_characters(), success=self.show_list).failure(
        self.show_error
    ).run_in_background()

``op`` is an ``async def`` function or a coroutine object (awaited on the qasync loop: use it
for work that is already asynchronous, like ``AppCore.db.call`` or a model source) or a plain
function (run in a worker thread).  ``op`` must not touch widgets.  ``success`` / ``failure``
run on the Qt thread, outside any asyncio task, so they may open dialogs; they are skipped when
``parent`` has been deleted in the meantime.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import shiboken6
from PySide6.QtCore import QObject

if TYPE_CHECKING:
    # asyncio is imported where it is used: the window is built (and painted) before it loads.
    import asyncio

log = logging.getLogger(__name__)

T = TypeVar("T")

# Tasks are only weakly referenced by asyncio; keep running ops alive until they finish.
_running: set[asyncio.Task[Any]] = set()


def _is_async(fn: Callable[..., object]) -> bool:
    while isinstance(fn, functools.partial):
        fn = fn.func
    return inspect.iscoroutinefunction(fn)


def _log_failure(error: BaseException) -> None:
    log.error("Background operation failed", exc_info=error)


class QueryOp(Generic[T]):
    def __init__(
        self,
        *,
        parent: QObject | None,
        op: Callable[[], Awaitable[T]] | Callable[[], T] | Awaitable[T],
        success: Callable[[T], object] | None = None,
    ) -> None:
        self._parent = parent
        self._op = op
        self._success = success
        self._failure: Callable[[BaseException], object] = _log_failure
        self.task: asyncio.Task[T] | None = None

    def failure(self, callback: Callable[[BaseException], object]) -> QueryOp[T]:
        self._failure = callback
        return self

    def run_in_background(self) -> asyncio.Task[T]:
        import asyncio

        self.task = asyncio.ensure_future(self._run())
        _running.add(self.task)
        self.task.add_done_callback(self._finished)
        return self.task

    async def _run(self) -> T:
        if inspect.isawaitable(self._op):
            return await self._op
        if _is_async(self._op):
            return await self._op()  # type: ignore[misc]
        import asyncio

        return await asyncio.to_thread(self._op)  # type: ignore[arg-type]

    def _parent_alive(self) -> bool:
        return self._parent is None or shiboken6.isValid(self._parent)

    def _finished(self, task: asyncio.Task[T]) -> None:
        _running.discard(task)
        if task.cancelled():
            return
        error = task.exception()  # always retrieved, so asyncio never complains at garbage collection
        if not self._parent_alive():
            if error is not None:
                log.debug("A background operation failed after its window closed", exc_info=error)
            return
        try:
            if error is not None:
                self._failure(error)
            elif self._success is not None:
                self._success(task.result())
        except Exception:
            log.exception("A background operation's callback failed")


async def wait_for_running_ops(timeout: float = 30.0) -> None:
    """Wait until every op started so far has finished (used on quit and in tests)."""
    import asyncio

    pending = [task for task in _running if not task.done()]
    if pending:
        await asyncio.wait(pending, timeout=timeout)
