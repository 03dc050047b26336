"""Where a scheduled task runs, so that one that hangs can be left behind or killed.

A :data:`Runner` takes the run's time limit in seconds and returns one line saying what it did;
it raises on error and raises :class:`TaskTimeout` when it ran out of time.  Three places:

- :func:`in_thread`: a thread of its own with an event loop of its own.  Python cannot kill a
  thread, so on timeout the run is cancelled where it can be and the thread is abandoned
  (counted by :func:`abandoned_threads`): it no longer holds up anything.
- :func:`in_process`: a child process through the app's one launcher; on timeout its whole
  process tree is killed.
- :func:`in_module`: a module's task in the module's own process, under the module supervisor's
  time limit (which kills the module's child when it does not answer).
"""

from __future__ import annotations

import asyncio
import inspect
import os
import queue
import shutil
import subprocess
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from nexus_desktop.children.exits import describe_exit
from nexus_desktop.children.launch import exit_code, kill_tree, launch
from nexus_desktop.sandbox.profile import (
    Profile,
    import_root,
    package_dir,
    python_read_paths,
    system_read_paths,
    system_write_paths,
)

if TYPE_CHECKING:
    from nexus_desktop.modules.runtime.supervisor import ModuleSupervisor

Runner = Callable[[float], Awaitable[str]]
"""Runs a task once: takes the time limit in seconds, returns a one-line detail."""

_DETAIL_CHARS = 300
_left_behind: list[threading.Thread] = []
_left_behind_lock = threading.Lock()


class TaskTimeout(Exception):
    """The run did not finish within its time limit."""


class TaskFailed(Exception):
    """The run finished but failed: a non-zero exit, or a module reporting an error."""


class TaskSkipped(Exception):
    """The task chose not to run (its setting is off...): a ``skipped`` run with this reason."""


def abandoned_threads() -> int:
    """How many task threads left behind after a timeout are still running in this process."""
    with _left_behind_lock:
        _left_behind[:] = [thread for thread in _left_behind if thread.is_alive()]
        return len(_left_behind)


def one_line(value: object) -> str:
    """A run's result as the single line the task grid shows."""
    text = "" if value is None else str(value)
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    line = lines[-1] if lines else ""
    return line if len(line) <= _DETAIL_CHARS else line[: _DETAIL_CHARS - 1] + "…"


class _ThreadRun:
    """One run in its thread, as far as the caller can reach it to cancel or count it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.task: asyncio.Task[object] | None = None
        self.given_up = False


def in_thread(fn: Callable[[], Any], *, name: str = "task") -> Runner:
    """Run ``fn`` (a plain function, or a coroutine function) in a new daemon thread per run.

    A coroutine gets an event loop of its own in that thread, so a task that blocks
    (``time.sleep``, a CPU loop, a coroutine that never awaits) blocks only itself.  On timeout a
    coroutine is cancelled in its loop; the thread is then abandoned, never waited for.  Python
    cannot stop a thread, and a pure-Python loop still takes its share of the GIL: CPU-bound work
    belongs in :func:`in_process`.
    """

    async def run(timeout: float) -> str:
        caller = asyncio.get_running_loop()
        result: asyncio.Future[object] = caller.create_future()
        here = _ThreadRun()

        def deliver(outcome: object, error: BaseException | None) -> None:
            if result.done():
                return
            if error is not None:
                result.set_exception(error)
            else:
                result.set_result(outcome)

        def report(outcome: object, error: BaseException | None) -> None:
            try:
                caller.call_soon_threadsafe(deliver, outcome, error)
            except RuntimeError:
                pass  # the app's loop closed while this ran: nobody is waiting any more

        def body() -> None:
            with here.lock:
                if here.given_up:  # timed out before its thread even started
                    return
                here.thread = threading.current_thread()
            loop: asyncio.AbstractEventLoop | None = None
            try:
                value = fn()
                if inspect.isawaitable(value):
                    # A loop only for a coroutine: creating one costs more than a small task.
                    loop = asyncio.new_event_loop()
                    task = loop.create_task(_awaited(value))
                    with here.lock:
                        here.loop, here.task = loop, task
                    value = loop.run_until_complete(task)
                report(value, None)
            except asyncio.CancelledError:
                report(None, TaskTimeout("cancelled"))
            except BaseException as error:
                report(None, error)
            finally:
                if loop is not None:
                    loop.close()

        _spawn(body, f"nexus-task-{name}")
        try:
            value = await asyncio.wait_for(asyncio.shield(result), timeout)
        except (TimeoutError, asyncio.CancelledError) as stop:
            result.cancel()  # what the thread reports later is dropped
            _give_up(here)
            if isinstance(stop, asyncio.CancelledError):
                raise
            raise TaskTimeout(f"did not finish within {timeout:g} s; its thread was left behind") from None
        return one_line(value) or "done"

    return run


async def _awaited(value: Awaitable[object]) -> object:
    return await value


def _give_up(here: _ThreadRun) -> None:
    """Cancel the thread's coroutine if it has one (it may still never yield); the thread is
    counted by :func:`abandoned_threads` for as long as it runs."""
    with here.lock:
        here.given_up = True
        loop, task, thread = here.loop, here.task, here.thread
    if loop is not None and task is not None:
        try:
            loop.call_soon_threadsafe(task.cancel)
        except RuntimeError:
            pass  # its loop already closed: it finished just now
    if thread is not None:
        with _left_behind_lock:
            _left_behind.append(thread)


# Threads are started by a thread of their own: ``Thread.start()`` waits until the new thread
# holds the GIL, and with a hundred runs due at once that wait, on the event loop, added up to
# tenths of a second.
_spawn_queue: queue.SimpleQueue[tuple[Callable[[], None], str]] = queue.SimpleQueue()
_spawner: threading.Thread | None = None
_spawner_lock = threading.Lock()


def _spawn(body: Callable[[], None], name: str) -> None:
    global _spawner
    with _spawner_lock:
        if _spawner is None or not _spawner.is_alive():
            _spawner = threading.Thread(target=_spawn_threads, name="nexus-task-starter", daemon=True)
            _spawner.start()
    _spawn_queue.put((body, name))


def _spawn_threads() -> None:
    while True:
        body, name = _spawn_queue.get()
        threading.Thread(target=body, name=name, daemon=True).start()


def task_profile(program: str) -> Profile:
    """What a task's child may reach by default: Python, NEXUS's packages and the system's files,
    read only; the program itself may execute; no network and nothing to write."""
    return Profile(
        "scheduled task",
        read=(*system_read_paths(), *python_read_paths(), package_dir(), import_root()),
        write=tuple(system_write_paths()),
        execute=(os.path.realpath(program),),
    )


def in_process(
    argv: list[str],
    env: dict[str, str] | None = None,
    *,
    profile: Profile | None = None,
    cwd: str | None = None,
) -> Runner:
    """Run ``argv`` as a contained child (the default profile is :func:`task_profile`).

    Its last line of standard output is the run's detail; a non-zero exit raises
    :class:`TaskFailed` with its last line of standard error.  On timeout the child and
    everything it started are killed.
    """

    async def run(timeout: float) -> str:
        environment = dict(os.environ) if env is None else dict(env)
        environment.setdefault("PYTHONPATH", import_root())
        program = shutil.which(argv[0], path=environment.get("PATH", os.defpath)) or argv[0]
        contained = profile or task_profile(program)
        deadline = asyncio.get_running_loop().time() + timeout
        # Starting may probe the sandbox (a bwrap run): off the event loop.
        starting = asyncio.ensure_future(
            asyncio.to_thread(launch, argv, contained, env=environment, cwd=cwd, stdin=subprocess.DEVNULL)
        )
        try:
            process = await asyncio.shield(starting)
        except asyncio.CancelledError:
            starting.add_done_callback(_kill_when_started)
            raise
        talk = asyncio.ensure_future(asyncio.to_thread(process.communicate))
        try:
            remaining = max(0.0, deadline - asyncio.get_running_loop().time())
            out, err = await asyncio.wait_for(asyncio.shield(talk), remaining)
        except (TimeoutError, asyncio.CancelledError) as stop:
            kill_tree(process)
            await asyncio.shield(talk)  # returns once the killed tree has closed its pipes
            if isinstance(stop, asyncio.CancelledError):
                raise
            raise TaskTimeout(f"did not finish within {timeout:g} s; its process was killed") from None
        code = exit_code(process)
        if code:
            last = one_line(err.decode("utf-8", "replace"))
            raise TaskFailed(
                f"{os.path.basename(argv[0])} {describe_exit(code)}" + (f": {last}" if last else "")
            )
        return one_line(out.decode("utf-8", "replace")) or "exited normally"

    return run


def _kill_when_started(starting: asyncio.Future[subprocess.Popen[bytes]]) -> None:
    if not starting.cancelled() and starting.exception() is None:
        kill_tree(starting.result())


def in_module(supervisor: ModuleSupervisor, module: str, task: str) -> Runner:
    """Run a module's scheduled task in the module's own process."""

    async def run(timeout: float) -> str:
        result = await supervisor.run_task(module, task, timeout=timeout)
        if not result.ok:
            reason = result.error or f"The module {module} failed in its task {task}."
            if "did not answer within" in reason:  # the supervisor's words for its time limit
                raise TaskTimeout(reason)
            raise TaskFailed(reason)
        return one_line(result.content) or "done"

    return run
