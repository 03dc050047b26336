"""Training progress in the tray: the percentage drawn on the icon, a tooltip, and a notification
when a job finishes or an adapter is promoted.

Works without a tray too (offscreen, some desktops): it still tracks the progress and hands each
notice to ``on_notice`` (the window can show it as a banner) instead of a tray balloon.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, QRectF, Qt, QTimer
from PySide6.QtGui import QColor, QFont, QIcon, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QSystemTrayIcon

from nexus_desktop.training.service import JobView, Notice, TrainingService
from nexus_desktop.ui.ops import QueryOp
from nexus_desktop.ui.theme import COLORS, app_icon, draw_logo

POLL_MS = 1000
IDLE_TOOLTIP = "NEXUS Desktop"
NOTIFY_KINDS = frozenset({"finished", "failed", "promoted", "approved", "rejected", "judge_failed", "paused"})


def progress_icon(percent: int, size: int = 64) -> QIcon:
    """The app logo dimmed, a progress ring around it and the percentage on top."""
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setOpacity(0.45)
    draw_logo(painter, size)
    painter.setOpacity(1.0)
    ring = QRectF(2, 2, size - 4, size - 4)
    pen = QPen(QColor(COLORS.success), size * 0.09)
    pen.setCapStyle(Qt.PenCapStyle.RoundCap)
    painter.setPen(pen)
    painter.setBrush(Qt.BrushStyle.NoBrush)
    painter.drawArc(ring, 90 * 16, -int(360 * 16 * max(0, min(100, percent)) / 100))
    font = QFont()
    font.setPixelSize(int(size * 0.36))
    font.setBold(True)
    painter.setFont(font)
    painter.setPen(QColor("#ffffff"))
    painter.drawText(QRectF(0, 0, size, size), Qt.AlignmentFlag.AlignCenter, f"{percent}")
    painter.end()
    return QIcon(pixmap)


def progress_tooltip(job: JobView) -> str:
    loss = f", loss {job.loss:.3f}" if job.loss is not None else ""
    return f"NEXUS: training {job.model_id}: {int(job.progress * 100)}% (step {job.step}/{job.total}{loss})"


class TrainingTray(QObject):
    """Polls the service once a second; ``icon`` is the app's tray icon, or None without a tray."""

    def __init__(
        self,
        service: TrainingService,
        icon: QSystemTrayIcon | None,
        *,
        on_notice: Callable[[Notice], object] | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.service = service
        self.icon = icon
        self.on_notice = on_notice
        self.percent: int | None = None
        self.tooltip = IDLE_TOOLTIP
        self.shown: list[Notice] = []
        self._last_notice = 0
        self._polling = False
        self.timer = QTimer(self)
        self.timer.setInterval(POLL_MS)
        self.timer.timeout.connect(self.poll)

    def start(self) -> None:
        self.timer.start()
        self.poll()

    def stop(self) -> None:
        self.timer.stop()
        self._show_progress(None)

    def poll(self) -> None:
        if self._polling:
            return
        self._polling = True
        service, after = self.service, self._last_notice

        async def fetch() -> tuple[JobView | None, list[Notice]]:
            return await service.running(), await service.notices(after)

        QueryOp(parent=self, op=fetch, success=self._update).failure(self._failed).run_in_background()

    def _failed(self, _error: BaseException) -> None:
        self._polling = False

    def _update(self, result: tuple[JobView | None, list[Notice]]) -> None:
        self._polling = False
        job, notices = result
        self._show_progress(job)
        for notice in notices:
            self._last_notice = max(self._last_notice, notice.id)
            if notice.kind in NOTIFY_KINDS:
                self.notify(notice)

    def _show_progress(self, job: JobView | None) -> None:
        percent = int(job.progress * 100) if job is not None and job.state == "RUNNING" else None
        tooltip = progress_tooltip(job) if job is not None and percent is not None else IDLE_TOOLTIP
        if (percent, tooltip) == (self.percent, self.tooltip):
            return
        self.percent, self.tooltip = percent, tooltip
        if self.icon is not None:
            self.icon.setIcon(progress_icon(percent) if percent is not None else app_icon())
            self.icon.setToolTip(tooltip)

    def notify(self, notice: Notice) -> None:
        self.shown.append(notice)
        if self.icon is not None and self.icon.isVisible() and self.icon.supportsMessages():
            level = (
                QSystemTrayIcon.MessageIcon.Warning
                if notice.kind in ("failed", "rejected", "judge_failed")
                else QSystemTrayIcon.MessageIcon.Information
            )
            self.icon.showMessage(notice.title, notice.text or notice.title, level, 8000)
        elif self.on_notice is not None:
            self.on_notice(notice)
