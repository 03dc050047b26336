"""One download in the Downloads list: a progress bar, bytes, speed and time left, and the buttons
its state allows (Pause; Resume or Retry; Cancel).

``show_job`` redraws the row from a ``DownloadJob`` snapshot; the buttons come out as
``requested(action, key)`` with action "pause", "resume" or "cancel".  A failed download shows
its error on the row; Retry continues from what is on disk (a file whose SHA-256 did not match
was deleted, so it starts over).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QProgressBar, QVBoxLayout, QWidget

from nexus_desktop.ui.model_card import size_text
from nexus_desktop.ui.widgets import ElidedLabel, push_button, set_style_property

if TYPE_CHECKING:
    from nexus_desktop.hub.download import Progress
    from nexus_desktop.hub.download_queue import DownloadJob

PROGRESS_STEPS = 1000


def duration_text(seconds: float) -> str:
    """``45 s``, ``3 min 20 s``, ``2 h 5 min``: the time left, as precise as it is useful."""
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole // 3600} h {whole % 3600 // 60} min"


def progress_text(progress: Progress) -> str:
    """``412 MB of 1.2 GB · 8 MB/s · 1 min 32 s left`` (speed and time only once they are known)."""
    words = [f"{size_text(progress.done)} of {size_text(progress.total)}"]
    if progress.verifying:
        return f"{words[0]} · checking the SHA-256…"
    if progress.bytes_per_second > 0:
        words.append(f"{size_text(int(progress.bytes_per_second))}/s")
    if progress.eta_seconds is not None:
        words.append(f"{duration_text(progress.eta_seconds)} left")
    return " · ".join(words)


def status_text(job: DownloadJob) -> str:
    """The row's line under the bar, by the job's state."""
    done_of_total = f"{size_text(job.progress.done)} of {size_text(job.progress.total)}"
    if job.status == "downloading":
        return progress_text(job.progress)
    if job.status == "paused":
        return f"Paused · {done_of_total}; Resume continues where it stopped."
    if job.status == "failed":
        return job.error or "The download stopped; Retry continues it."
    if job.status == "done":
        size = size_text(job.progress.total)
        return f"Downloaded · {size} · checked against the hub's SHA-256 · in My models"
    return "Cancelled; what was downloaded is deleted."


class DownloadRow(QFrame):
    requested = Signal(str, str)
    """(action, job key): "pause", "resume" or "cancel"."""

    def __init__(self, job: DownloadJob, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.key = job.key
        self.job = job
        self.setObjectName("DownloadRow")
        self.setAccessibleName(f"Download of {job.model.name}")
        outer = QVBoxLayout(self)
        outer.setContentsMargins(14, 10, 10, 10)
        outer.setSpacing(5)

        top = QHBoxLayout()
        top.setSpacing(8)
        names = QVBoxLayout()
        names.setSpacing(0)
        self.title = ElidedLabel(job.model.name)
        self.title.setObjectName("CardTitle")
        repo = ElidedLabel(job.model.repo_id)
        repo.setObjectName("CardPath")
        names.addWidget(self.title)
        names.addWidget(repo)
        top.addLayout(names, 1)
        self.pause_button = push_button("Pause")
        self.pause_button.setAccessibleName(f"Pause {job.model.name}")
        self.pause_button.clicked.connect(lambda: self.requested.emit("pause", self.key))
        self.resume_button = push_button("Resume", role="primary")
        self.resume_button.setAccessibleName(f"Resume {job.model.name}")
        self.resume_button.clicked.connect(lambda: self.requested.emit("resume", self.key))
        self.cancel_button = push_button("Cancel")
        self.cancel_button.setAccessibleName(f"Cancel {job.model.name}")
        self.cancel_button.setToolTip("Stop and delete what was downloaded so far")
        self.cancel_button.clicked.connect(lambda: self.requested.emit("cancel", self.key))
        for button in (self.pause_button, self.resume_button, self.cancel_button):
            top.addWidget(button)
        outer.addLayout(top)

        self.bar = QProgressBar()
        self.bar.setRange(0, PROGRESS_STEPS)
        self.bar.setTextVisible(False)
        self.bar.setAccessibleName(f"Progress of {job.model.name}")
        outer.addWidget(self.bar)
        self.status = QLabel()
        self.status.setObjectName("CardMeta")
        self.status.setWordWrap(True)
        outer.addWidget(self.status)
        self.show_job(job)

    def show_job(self, job: DownloadJob) -> None:
        self.job = job
        set_style_property(self, "state", job.status)
        self.bar.setValue(round(job.progress.fraction * PROGRESS_STEPS))
        self.bar.setVisible(job.status != "cancelled")
        self.status.setText(status_text(job))
        self.status.setObjectName("CardError" if job.status == "failed" else "CardMeta")
        self.status.style().unpolish(self.status)  # the stylesheet selects on the name
        self.status.style().polish(self.status)
        self.pause_button.setVisible(job.status == "downloading")
        self.resume_button.setVisible(job.status in ("paused", "failed"))
        self.resume_button.setText("Retry" if job.status == "failed" else "Resume")
        self.resume_button.setAccessibleName(f"{self.resume_button.text()} {job.model.name}")
        self.cancel_button.setVisible(job.status in ("downloading", "paused", "failed"))
