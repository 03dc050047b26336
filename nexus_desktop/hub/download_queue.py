"""``DownloadQueue``: the downloads the app is running, for the Models page and the CLI.

Each download runs in its own thread (``download.download_model``); start, pause, resume and
cancel are safe from any thread.  Every state change is emitted to ``changes`` as the job's
new ``DownloadJob`` snapshot, ON THE DOWNLOAD'S THREAD: a Qt view must hand it to the Qt thread
(a queued signal) before touching widgets.

A new queue (after a restart) finds unfinished downloads in the models folder and lists them as
paused; ``resume`` continues them from their ``.part`` files.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from nexus_desktop.changes import Listeners
from nexus_desktop.hub.download import (
    Progress,
    bytes_on_disk,
    discard_download,
    download_model,
    pending_downloads,
)
from nexus_desktop.hub.errors import DownloadPaused, HubError
from nexus_desktop.hub.search import RemoteModel

log = logging.getLogger(__name__)

JobStatus = Literal["downloading", "paused", "failed", "done", "cancelled"]


@dataclass(frozen=True)
class DownloadJob:
    """A snapshot of one download; a new one is emitted on every change."""

    key: str
    """``RemoteModel.key``: the handle for pause, resume and cancel."""
    model: RemoteModel
    status: JobStatus
    progress: Progress
    error: str | None = None
    """Why it stopped (one sentence) when status is "failed"."""
    path: Path | None = None
    """The model file once status is "done"."""


class DownloadQueue:
    """Start, pause, resume and cancel model downloads into one models folder."""

    def __init__(self, models_dir: Path) -> None:
        """Lists the unfinished downloads already in ``models_dir`` as paused (nothing starts)."""
        self.models_dir = Path(models_dir)
        self.changes: Listeners[DownloadJob] = Listeners()
        """Hears every job's new snapshot, on the download's thread (see the module docstring)."""
        self._lock = threading.Lock()
        self._jobs: dict[str, DownloadJob] = {}
        self._stops: dict[str, threading.Event] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._cancelled: set[str] = set()
        if self.models_dir.is_dir():
            for model in pending_downloads(self.models_dir):
                self._jobs[model.key] = DownloadJob(model.key, model, "paused", self._idle_progress(model))

    def jobs(self) -> list[DownloadJob]:
        """Every download this queue knows, oldest first (done and cancelled ones included)."""
        with self._lock:
            return list(self._jobs.values())

    def job(self, key: str) -> DownloadJob | None:
        with self._lock:
            return self._jobs.get(key)

    def start(self, model: RemoteModel) -> DownloadJob:
        """Download ``model`` (continuing any ``.part`` already there); returns at once.

        Starting a model that is already downloading returns its job unchanged.
        """
        with self._lock:
            running = self._threads.get(model.key)
            if running is not None and running.is_alive():
                return self._jobs[model.key]
            job = DownloadJob(model.key, model, "downloading", self._idle_progress(model))
            self._jobs[model.key] = job
            stop = threading.Event()
            self._stops[model.key] = stop
            self._cancelled.discard(model.key)
            thread = threading.Thread(
                target=self._run, args=(model, stop), name=f"download {model.name}", daemon=True
            )
            self._threads[model.key] = thread
        self.changes.emit(job)
        thread.start()
        return job

    def pause(self, key: str) -> None:
        """Stop a running download, keeping its ``.part``; its job turns "paused" shortly after."""
        with self._lock:
            stop = self._stops.get(key)
        if stop is not None:
            stop.set()

    def resume(self, key: str) -> DownloadJob:
        """Continue a paused or failed download from where it stopped."""
        job = self.job(key)
        if job is None:
            raise HubError(f"No download named {key}; start it again from the model's repo.")
        return self.start(job.model)

    def cancel(self, key: str) -> None:
        """Stop a download and delete what it fetched so far; its job turns "cancelled".

        Returns at once: a running download deletes its files when its thread notices.
        """
        with self._lock:
            job = self._jobs.get(key)
            thread = self._threads.get(key)
            running = thread is not None and thread.is_alive()
            if running:
                self._cancelled.add(key)
                self._stops[key].set()
        if job is not None and not running:
            self._discard(job)

    def _discard(self, job: DownloadJob) -> None:
        discard_download(self.models_dir, job.model)
        self._set(replace(job, status="cancelled", progress=self._idle_progress(job.model), error=None))

    def wait(self, key: str, timeout: float | None = None) -> DownloadJob | None:
        """Block until the download's thread ends (tests and the CLI); returns its last snapshot."""
        self._join(key, timeout)
        return self.job(key)

    def close(self, timeout: float = 10.0) -> None:
        """Pause every running download (their ``.part`` files stay) and wait for the threads."""
        with self._lock:
            stops = list(self._stops.values())
            keys = list(self._threads)
        for stop in stops:
            stop.set()
        for key in keys:
            self._join(key, timeout)

    def _join(self, key: str, timeout: float | None) -> None:
        with self._lock:
            thread = self._threads.get(key)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _idle_progress(self, model: RemoteModel) -> Progress:
        done = bytes_on_disk(self.models_dir, model) if self.models_dir.is_dir() else 0
        return Progress(done, model.size, 0.0, None, model.name)

    def _set(self, job: DownloadJob) -> None:
        with self._lock:
            self._jobs[job.key] = job
        self.changes.emit(job)

    def _run(self, model: RemoteModel, stop: threading.Event) -> None:
        key = model.key

        def progressed(progress: Progress) -> None:
            current = self.job(key)
            if current is not None and current.status == "downloading":
                self._set(replace(current, progress=progress))

        try:
            path = download_model(model, self.models_dir, on_progress=progressed, stop=stop)
        except DownloadPaused:
            with self._lock:
                cancelled = key in self._cancelled
                self._cancelled.discard(key)
            job = self.job(key)
            if cancelled and job is not None:
                self._discard(job)
            else:
                self._finish(key, "paused", None, None)
        except HubError as error:
            self._finish(key, "failed", str(error), None)
        except Exception as error:  # a bug must not leave a job "downloading" forever
            log.exception("The download of %s failed", key)
            self._finish(key, "failed", f"The download stopped unexpectedly ({type(error).__name__}).", None)
        else:
            self._finish(key, "done", None, path)

    def _finish(self, key: str, status: JobStatus, error: str | None, path: Path | None) -> None:
        job = self.job(key)
        if job is None:
            return
        if status == "done":
            progress = Progress(
                job.model.size, job.model.size, job.progress.bytes_per_second, 0.0, job.model.name
            )
        else:
            progress = replace(self._idle_progress(job.model), bytes_per_second=0.0)
        self._set(replace(job, status=status, error=error, path=path, progress=progress))
