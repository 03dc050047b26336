"""Installs and validations in the background, one at a time, each in its own ``QProcess``.

After napari-plugin-manager's ``InstallerQueue``: a deque of frozen jobs; the running one is a
child process (``python -m nexus_desktop.modules.job ...``), so cancelling is killing it and the
UI never waits on it.  The job prints JSON lines: progress, then its outcome.
"""

from __future__ import annotations

import itertools
import json
from collections import deque
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, QProcess, Signal


@dataclass(frozen=True)
class InstallJob:
    id: int
    kind: str
    """install or validate"""
    target: str
    """a folder/.zip/.whl (install) or a module name (validate)"""
    command: tuple[str, ...]

    @property
    def label(self) -> str:
        return f"{'Installing' if self.kind == 'install' else 'Validating'} {self.target.rsplit('/', 1)[-1]}"


class InstallQueue(QObject):
    started = Signal(object)
    """InstallJob: it began running."""
    progress = Signal(object, str)
    """InstallJob, a line saying what it does now."""
    finished = Signal(object, dict)
    """InstallJob, {"ok": bool, "result" or "error", "cancelled": bool}."""
    allFinished = Signal(tuple)
    """(job id, ...) of every job finished since the queue was last empty."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._queue: deque[InstallJob] = deque()
        self._current: tuple[InstallJob, QProcess] | None = None
        self._outcome: dict[str, Any] = {}
        self._buffer = b""
        self._done: list[int] = []
        self._ids = itertools.count(1)
        self._cancelled: set[int] = set()

    def add(self, kind: str, target: str, command: list[str]) -> InstallJob:
        job = InstallJob(next(self._ids), kind, target, tuple(command))
        self._queue.append(job)
        self._next()
        return job

    def jobs(self) -> list[InstallJob]:
        running = [self._current[0]] if self._current else []
        return running + list(self._queue)

    def busy(self) -> bool:
        return self._current is not None or bool(self._queue)

    def cancel(self, job_id: int) -> None:
        for job in list(self._queue):
            if job.id == job_id:
                self._queue.remove(job)
                self._finish(job, {"ok": False, "cancelled": True, "error": "Cancelled."})
                return
        if self._current is not None and self._current[0].id == job_id:
            self._cancelled.add(job_id)
            self._current[1].kill()  # finished() follows and reports it as cancelled

    def cancel_all(self) -> None:
        for job in list(self._queue):
            self.cancel(job.id)
        if self._current is not None:
            self.cancel(self._current[0].id)

    def wait_idle(self, msecs: int = 30_000) -> None:
        """Block until the running job ends (quit and tests only)."""
        if self._current is not None:
            self._current[1].waitForFinished(msecs)

    # Internals ----------------------------------------------------------------------------

    def _next(self) -> None:
        if self._current is not None or not self._queue:
            return
        job = self._queue.popleft()
        process = QProcess(self)
        process.setProcessChannelMode(QProcess.ProcessChannelMode.SeparateChannels)
        process.readyReadStandardOutput.connect(lambda: self._read(job, process))
        process.finished.connect(lambda code, _status: self._exited(job, process, code))
        process.errorOccurred.connect(lambda error: self._failed_to_start(job, process, error))
        self._current = (job, process)
        self._outcome, self._buffer = {}, b""
        self.started.emit(job)
        process.start(job.command[0], list(job.command[1:]))

    def _read(self, job: InstallJob, process: QProcess) -> None:
        self._buffer += bytes(process.readAllStandardOutput().data())
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if isinstance(message, dict) and "progress" in message:
                self.progress.emit(job, str(message["progress"]))
            elif isinstance(message, dict) and "ok" in message:
                self._outcome = message

    def _exited(self, job: InstallJob, process: QProcess, code: int) -> None:
        self._read(job, process)
        if job.id in self._cancelled:
            outcome: dict[str, Any] = {"ok": False, "cancelled": True, "error": "Cancelled."}
        elif self._outcome:
            outcome = {**self._outcome, "cancelled": False}
        else:
            stderr = bytes(process.readAllStandardError().data()).decode("utf-8", "replace").strip()
            last = stderr.splitlines()[-1] if stderr else f"exit code {code}"
            outcome = {"ok": False, "cancelled": False, "error": f"The job stopped unexpectedly ({last})."}
        self._end(job, process, outcome)

    def _failed_to_start(self, job: InstallJob, process: QProcess, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self._end(job, process, {"ok": False, "cancelled": False, "error": "The job could not start."})

    def _end(self, job: InstallJob, process: QProcess, outcome: dict[str, Any]) -> None:
        if self._current is None or self._current[0].id != job.id:
            return
        self._current = None
        process.deleteLater()
        self._finish(job, outcome)
        self._next()

    def _finish(self, job: InstallJob, outcome: dict[str, Any]) -> None:
        self._cancelled.discard(job.id)
        self._done.append(job.id)
        self.finished.emit(job, outcome)
        if not self.busy():
            done, self._done = tuple(self._done), []
            self.allFinished.emit(done)
