"""Downloads: a row per download of the ``DownloadQueue``, newest first, following its changes.

The queue emits each job's snapshot on the download's own thread; ``_Bridge`` re-emits it as a
Qt signal, which Qt queues to the Qt thread, where the row is drawn.  Pause, resume, cancel and
start run off the Qt thread (cancel waits for the download's thread and deletes files).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import shiboken6
from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QWidget

from nexus_desktop.ui.card_list import CardList
from nexus_desktop.ui.download_row import DownloadRow
from nexus_desktop.ui.ops import QueryOp

if TYPE_CHECKING:
    from nexus_desktop.hub.download_queue import DownloadJob, DownloadQueue
    from nexus_desktop.hub.search import RemoteModel

LISTED = frozenset({"downloading", "paused", "failed", "done"})
"""The states a row stays for; a cancelled download's row goes."""


class _Bridge(QObject):
    """Carries the queue's snapshots from the download threads to the Qt thread."""

    job_changed = Signal(object)


class DownloadsView(CardList):
    job_finished = Signal(object)
    """A ``DownloadJob`` that just finished: its model is on disk."""
    count_changed = Signal(int)
    """How many downloads are running, paused or failed (the tab's title shows it)."""
    row_shown = Signal(str)
    """A row was added or redrawn (tests and screenshots wait on it)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("No downloads. Find a model under Discover and press Download.", parent)
        self.queue: DownloadQueue | None = None
        self.rows: dict[str, DownloadRow] = {}
        self._unsubscribe = lambda: None
        self._bridge = _Bridge(self)
        self._bridge.job_changed.connect(self.show_job)
        self.destroyed.connect(lambda: self._unsubscribe())

    def bind(self, queue: DownloadQueue) -> None:
        """Show ``queue``'s downloads (unfinished ones from before a restart come paused), in
        place of an earlier queue's."""
        self._unsubscribe()
        for row in self.rows.values():
            row.hide()
            row.deleteLater()
        self.rows = {}
        self.queue = queue
        bridge = self._bridge

        def heard(job: DownloadJob) -> None:
            if shiboken6.isValid(bridge):  # the page may be gone while a download still runs
                bridge.job_changed.emit(job)

        self._unsubscribe = queue.changes.subscribe(heard)
        for job in queue.jobs():
            self.show_job(job)
        self._counted()

    def listed_keys(self) -> set[str]:
        """The models downloading, paused or done: Discover offers no second Download for them.
        A failed one may be downloaded again from a fresh listing (the hub may have fixed it)."""
        return {key for key, row in self.rows.items() if row.job.status != "failed"}

    # Drawing -------------------------------------------------------------------------------

    def show_job(self, job: DownloadJob) -> None:
        row = self.rows.get(job.key)
        if job.status not in LISTED:
            if row is not None:
                del self.rows[job.key]
                row.hide()
                row.deleteLater()
        elif row is None:
            row = DownloadRow(job)
            row.requested.connect(self.do)
            self.rows[job.key] = row
            self.card_layout.insertWidget(2, row)  # newest first, under the banners and the empty note
        else:
            finished = job.status == "done" and row.job.status != "done"
            row.show_job(job)
            if finished:
                self.job_finished.emit(job)
        self._counted()
        self.row_shown.emit(job.key)

    def _counted(self) -> None:
        self.empty.setVisible(not self.rows)
        self.count_changed.emit(sum(1 for r in self.rows.values() if r.job.status != "done"))

    # Acting --------------------------------------------------------------------------------

    def start(self, model: RemoteModel) -> None:
        queue = self.queue
        if queue is None:
            self.banners.show_banner("error", "Downloads are not ready yet; try again in a moment.")
            return
        QueryOp(parent=self, op=lambda: queue.start(model)).failure(self._failed).run_in_background()

    def do(self, action: str, key: str) -> None:
        """Pause, resume or cancel the download ``key`` (``DownloadRow.requested``)."""
        queue = self.queue
        if queue is None:
            return
        work = {"pause": queue.pause, "resume": queue.resume, "cancel": queue.cancel}[action]
        QueryOp(parent=self, op=lambda: work(key)).failure(self._failed).run_in_background()

    def _failed(self, error: BaseException) -> None:
        self.banners.show_banner("error", str(error) or type(error).__name__)
