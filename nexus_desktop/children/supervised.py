"""A contained child that speaks JSON lines: the one supervisor for the model worker and modules.

No asyncio subprocess API is used: a plain thread reads each pipe and hands messages to the
event loop with ``call_soon_threadsafe``, so this works the same under qasync and plain asyncio.

Everything a child sends is untrusted and bounded before it reaches the event loop:
- a line over ``MAX_LINE_BYTES`` ends the child;
- ``refused`` events (its audit hook explaining a refusal) are counted on the reader thread and
  reach the loop at most every ``_REFUSAL_REPORT_SECONDS`` as one summary,
  ``{"event": "refused", "counts": {text: count}}``, of at most ``_DISTINCT_REFUSALS`` texts;
- more than ``flood_limit`` unsolicited events (or refusals) within ``_FLOOD_WINDOW_SECONDS``
  ends the child with ``flooded`` set, and its supervisor puts it aside;
- stderr is kept as a short tail and logged at most ``_STDERR_LOG_LINES`` lines per window;
  more than ``flood_limit`` lines within ``_FLOOD_WINDOW_SECONDS`` is a flood too.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from nexus_desktop.children.jsonlines import MAX_LINE_BYTES, decode, encode
from nexus_desktop.children.launch import exit_code, kill_tree, launch
from nexus_desktop.logs import redact
from nexus_desktop.sandbox.profile import Profile

log = logging.getLogger(__name__)

_STDERR_TAIL_LINES = 40
_STDERR_LINE_CHARS = 500
_STDERR_LOG_LINES = 200
_FLOOD_WINDOW_SECONDS = 2.0
_REFUSAL_REPORT_SECONDS = 0.25
_STOP_GRACE_SECONDS = 2.0
_DISTINCT_REFUSALS = 20
_OTHERS = "(other refusals)"
DEFAULT_FLOOD_LIMIT = 2000


class ChildProcess:
    """A running child; ``on_message`` and ``on_exit`` are called on the event loop's thread."""

    def __init__(
        self,
        name: str,
        command: list[str],
        profile: Profile,
        *,
        env: dict[str, str],
        cwd: str | os.PathLike[str] | None,
        loop: asyncio.AbstractEventLoop,
        on_message: Callable[[dict[str, Any]], None],
        on_exit: Callable[[int], None],
        flood_limit: int | None = DEFAULT_FLOOD_LIMIT,
        log_level: int = logging.DEBUG,
    ) -> None:
        self.name = name
        self.loop = loop
        self.stderr_tail: deque[str] = deque(maxlen=_STDERR_TAIL_LINES)
        self.stderr_lines = 0
        self.returncode: int | None = None
        self.violation: str | None = None
        """Why the host ended the process for breaking the protocol, if it did."""
        self.flooded = False
        """It sent more than its budget of events: a sign of a module gone wrong, not a crash."""
        self._on_message = on_message
        self._on_exit = on_exit
        self._flood_limit = flood_limit
        self._log_level = log_level
        self._write_lock = threading.Lock()
        self._refusals: dict[str, int] = {}
        self._refusal_lock = threading.Lock()
        self.process = launch(command, profile, env=env, cwd=cwd)
        self._stderr_reader = threading.Thread(target=self._read_stderr, name=f"{name}-err", daemon=True)
        self._stderr_reader.start()
        threading.Thread(target=self._read_stdout, name=f"{name}-out", daemon=True).start()

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.returncode is None and self.process.poll() is None

    # Reading ------------------------------------------------------------------------------

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        window_start, events = time.monotonic(), 0
        with self.process.stdout:
            while line := self.process.stdout.readline(MAX_LINE_BYTES):
                if not line.endswith(b"\n") and len(line) >= MAX_LINE_BYTES:
                    self._violate(f"sent a message over {MAX_LINE_BYTES // 2**20} MB, so it was stopped")
                    break
                message = decode(line)
                if message is None:
                    continue  # stray output is not a message
                if "event" in message and self._flood_limit is not None:
                    now = time.monotonic()
                    if now - window_start > _FLOOD_WINDOW_SECONDS:
                        window_start, events = now, 0
                    events += 1
                    if events > self._flood_limit:
                        self.flooded = True
                        self._violate(
                            f"sent more than {self._flood_limit} events in {_FLOOD_WINDOW_SECONDS:g} s, "
                            "so it was stopped"
                        )
                        break
                    if message.get("event") == "refused":
                        self._count_refusal(str(message.get("message", "")))
                        continue
                if "event" not in message:
                    self._flush_refusals()  # the refusals behind an answer arrive before it
                self._post(self._on_message, message)
        self.process.wait()
        returncode = exit_code(self.process)
        assert returncode is not None
        self._stderr_reader.join(timeout=2.0)  # its last words explain a crash
        self._flush_refusals()
        self._post(self._exited, returncode)

    def _count_refusal(self, text: str) -> None:
        with self._refusal_lock:
            first = not self._refusals
            text = text[:_STDERR_LINE_CHARS]
            if text in self._refusals or len(self._refusals) < _DISTINCT_REFUSALS:
                self._refusals[text] = self._refusals.get(text, 0) + 1
            else:
                self._refusals[_OTHERS] = self._refusals.get(_OTHERS, 0) + 1
        if first:
            timer = threading.Timer(_REFUSAL_REPORT_SECONDS, self._flush_refusals)
            timer.daemon = True
            timer.start()

    def _flush_refusals(self) -> None:
        with self._refusal_lock:
            counts, self._refusals = self._refusals, {}
        if counts:
            self._post(self._on_message, {"event": "refused", "counts": counts})

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        log_start, logged = time.monotonic(), 0
        flood_start, lines = log_start, 0
        with self.process.stderr:
            while raw := self.process.stderr.readline(64 * 1024):
                now = time.monotonic()
                if now - flood_start > _FLOOD_WINDOW_SECONDS:
                    flood_start, lines = now, 0
                lines += 1
                if self._flood_limit is not None and lines > self._flood_limit and not self.flooded:
                    self.flooded = True
                    self._violate(
                        f"wrote more than {self._flood_limit} lines to stderr in "
                        f"{_FLOOD_WINDOW_SECONDS:g} s, so it was stopped"
                    )
                line = raw.decode("utf-8", "replace").rstrip()[:_STDERR_LINE_CHARS]
                if not line:
                    continue
                self.stderr_tail.append(line)
                self.stderr_lines += 1
                if now - log_start > 10 * _FLOOD_WINDOW_SECONDS:
                    log_start, logged = now, 0
                logged += 1
                if logged <= _STDERR_LOG_LINES:
                    log.log(self._log_level, "[%s] %s", self.name, redact(line))

    def _violate(self, why: str) -> None:
        log.warning("%s %s", self.name, why)
        self.violation = why
        self.kill()

    def _post(self, callback: Callable[[Any], None], argument: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(callback, argument)
        except RuntimeError:
            pass  # the loop is closed: nobody is waiting any more

    def _exited(self, returncode: int) -> None:
        self.returncode = returncode
        self._close_stdin()
        kill_tree(self.process)  # whatever it started and left behind ends with it
        self._on_exit(returncode)

    # Writing and stopping -----------------------------------------------------------------

    def send(self, message: dict[str, Any] | bytes) -> bool:
        """Write one message; False when the child is gone (its exit is reported separately).

        Blocks while the pipe is full: callers on the event loop send big messages from an executor.
        """
        assert self.process.stdin is not None
        data = message if isinstance(message, bytes) else encode(message)
        try:
            with self._write_lock:
                self.process.stdin.write(data)
                self.process.stdin.flush()
        except (OSError, ValueError):
            return False
        return True

    def _close_stdin(self) -> None:
        if self.process.stdin is not None:
            try:
                self.process.stdin.close()
            except OSError:
                pass  # flushing into a dead process fails; the pipe is closed anyway

    def kill(self) -> None:
        """Kill the child and everything it started."""
        kill_tree(self.process)

    def stop(self, shutdown: dict[str, Any], grace: float = _STOP_GRACE_SECONDS) -> None:
        """Send ``shutdown``, wait ``grace`` seconds, then kill.  Blocks: run it in an executor."""
        self.send(shutdown)
        self._close_stdin()
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        self.kill()
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            log.warning("%s did not end after SIGKILL", self.name)
