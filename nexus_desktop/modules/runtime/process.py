"""One module's child process: starting it isolated, and the threads that read its pipes.

No asyncio subprocess API is used: a plain thread reads each pipe and hands messages to the
event loop with ``call_soon_threadsafe`` (as ``llm/local.py`` does), so this works the same
under qasync and plain asyncio and a flood of output never blocks the loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nexus_desktop
from nexus_desktop.logs import redact
from nexus_desktop.modules.runtime.child import BOOTSTRAP
from nexus_desktop.modules.runtime.protocol import MAX_LINE_BYTES, decode, encode
from nexus_desktop.processes import exit_signal, separate_session

log = logging.getLogger(__name__)

_STDERR_TAIL_LINES = 40
_STDERR_LINE_CHARS = 500
_STOP_GRACE_SECONDS = 2.0


def package_root() -> str:
    return str(Path(nexus_desktop.__file__).resolve().parent.parent)


def child_command(mode: str, python: str = sys.executable) -> list[str]:
    # -B: no byte-code written (it would change the module's hash); -I: no user site, no PYTHON* env.
    return [python, "-B", "-I", "-c", BOOTSTRAP, package_root(), mode]


def child_environment(home: Path) -> dict[str, str]:
    """A bare environment: no D-Bus address, no display, no tokens from the user's shell."""
    env = {
        "PATH": os.defpath,
        "HOME": str(home),
        "PYTHONIOENCODING": "utf-8",
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
        "LANG": os.environ.get("LANG", "C.UTF-8"),
    }
    if sys.platform == "win32":
        env["SYSTEMROOT"] = os.environ.get("SYSTEMROOT", "")
    return env


def kill_session(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process and everything in its session (it leads one: ``separate_session``)."""
    if sys.platform == "win32":
        process.kill()
        return
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # all gone already


def describe_exit(returncode: int) -> str:
    name = exit_signal(returncode)
    if name is None:
        return f"exited with code {returncode}"
    if name == "SIGKILL":
        return "was killed (SIGKILL, often for using too much memory)"
    if name == "SIGXCPU":
        return "used up its CPU time"
    return f"crashed ({name})"


class ChildProcess:
    """A running child; ``on_message`` and ``on_exit`` are called on the event loop's thread."""

    def __init__(
        self,
        name: str,
        command: list[str],
        env: dict[str, str],
        cwd: Path,
        loop: asyncio.AbstractEventLoop,
        on_message: Callable[[dict[str, Any]], None],
        on_exit: Callable[[int], None],
    ) -> None:
        self.name = name
        self.loop = loop
        self.stderr_tail: deque[str] = deque(maxlen=_STDERR_TAIL_LINES)
        self.returncode: int | None = None
        self.violation: str | None = None
        """Why the host ended the process for breaking the protocol, if it did."""
        self._on_message = on_message
        self._on_exit = on_exit
        self._write_lock = threading.Lock()
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=cwd,
            **separate_session(),
        )
        self._stderr_reader = threading.Thread(
            target=self._read_stderr, name=f"module-{name}-err", daemon=True
        )
        self._stderr_reader.start()
        threading.Thread(target=self._read_stdout, name=f"module-{name}-out", daemon=True).start()

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.returncode is None and self.process.poll() is None

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        with self.process.stdout:
            while line := self.process.stdout.readline(MAX_LINE_BYTES):
                if not line.endswith(b"\n") and len(line) >= MAX_LINE_BYTES:
                    log.warning("Module %s sent an over-long line; stopping it.", self.name)
                    self.violation = f"sent a message over {MAX_LINE_BYTES // 2**20} MB, so it was stopped"
                    self.kill()
                    break
                message = decode(line)
                if message is None:
                    log.debug("Module %s wrote something that is not a message: %r", self.name, line[:200])
                    continue
                self._post(self._on_message, message)
        returncode = self.process.wait()
        self._stderr_reader.join(timeout=2.0)  # its last words explain a crash
        self._post(self._exited, returncode)

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        with self.process.stderr:
            while raw := self.process.stderr.readline(64 * 1024):
                line = raw.decode("utf-8", "replace").rstrip()[:_STDERR_LINE_CHARS]
                if line:
                    self.stderr_tail.append(line)
                    log.debug("[module %s] %s", self.name, redact(line))

    def _post(self, callback: Callable[[Any], None], argument: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(callback, argument)
        except RuntimeError:
            pass  # the loop is closed: nobody is waiting any more

    def _exited(self, returncode: int) -> None:
        self.returncode = returncode
        self._on_exit(returncode)

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

    def kill(self) -> None:
        """Kill the module's process and anything it started (its own session)."""
        kill_session(self.process)

    def stop(self) -> None:
        """Ask the module to shut down, then kill it.  Blocks: run it in an executor."""
        self.send({"id": -1, "op": "shutdown"})
        try:
            self.process.wait(timeout=_STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            self.kill()
            self.process.wait(timeout=_STOP_GRACE_SECONDS)
        kill_session(self.process)  # programs it started and left behind
        if self.process.stdin is not None:
            try:
                self.process.stdin.close()
            except OSError:
                pass
