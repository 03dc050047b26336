"""What every dashboard view shares: a refresh timer, one read in flight at a time (run off the Qt
thread through ``QueryOp``), an error line, and small table and time helpers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QLabel, QTableWidget, QTableWidgetItem, QWidget

from nexus_desktop.ui.ops import QueryOp

DEFAULT_INTERVAL_MS = 1000


class LiveView(QWidget):
    """Subclasses set ``title``, make their reader in ``make_reader`` and draw in ``show_snapshot``."""

    title = ""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("DashView")
        self.reader: Any = None
        self.reads = 0
        """How many reads came back."""
        self.snapshots = 0
        """How many snapshots were drawn (tests wait on it)."""
        self._busy = False
        self._pending: Any = None
        self.timer = QTimer(self)
        self.timer.setInterval(DEFAULT_INTERVAL_MS)
        self.timer.timeout.connect(self.refresh)
        self.error = QLabel("")
        self.error.setObjectName("DashError")
        self.error.setWordWrap(True)
        self.error.hide()

    def make_reader(self, engine: Any) -> Any:
        raise NotImplementedError

    def read(self) -> Callable[[], Any]:
        """The blocking read to run in a worker thread (the reader's ``read`` by default)."""
        return self.reader.read  # type: ignore[no-any-return]

    def show_snapshot(self, snapshot: Any) -> None:
        raise NotImplementedError

    def bind(self, engine: Any) -> None:
        self.reader = self.make_reader(engine)

    def start(self) -> None:
        if self.reader is not None:
            self.timer.start()
            self.refresh()

    def stop(self) -> None:
        self.timer.stop()

    def refresh(self) -> None:
        if self._busy or self.reader is None:
            return
        self._busy = True
        QueryOp(parent=self, op=self.read(), success=self._drawn).failure(self._failed).run_in_background()

    def _drawn(self, snapshot: Any) -> None:
        self._busy = False
        self.reads += 1
        self.error.hide()
        if not self.isVisible():
            # Drawing into a hidden view is work nobody sees: keep the latest, draw it when shown.
            self._pending = snapshot
            return
        self._draw(snapshot)

    def _draw(self, snapshot: Any) -> None:
        self._pending = None
        self.show_snapshot(snapshot)
        self.snapshots += 1

    def showEvent(self, event: Any) -> None:
        super().showEvent(event)
        if self._pending is not None:
            # After the view's first paint: two short waits instead of one long one.
            QTimer.singleShot(0, self, self._draw_pending)

    def _draw_pending(self) -> None:
        if self._pending is not None and self.isVisible():
            self._draw(self._pending)

    def _failed(self, error: BaseException) -> None:
        self._busy = False
        self.error.setText(f"Could not read this dashboard's data: {error}")
        self.error.show()


def make_table(columns: Sequence[str], *, stretch: int | None = 0) -> QTableWidget:
    table = QTableWidget(0, len(columns))
    table.setObjectName("DashTable")
    table.setHorizontalHeaderLabels(list(columns))
    table.verticalHeader().hide()
    table.verticalHeader().setDefaultSectionSize(26)
    header = table.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    if stretch is not None:
        header.setSectionResizeMode(stretch, QHeaderView.ResizeMode.Stretch)
    header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
    table.setShowGrid(False)
    table.setWordWrap(False)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
    table.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
    table.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
    return table


def fill_table(table: QTableWidget, rows: Sequence[Sequence[Any]], colours: Sequence[Any] = ()) -> None:
    """Put text in place, touching only cells that changed (a refresh that changes nothing costs
    nothing); a cell is ``text`` or ``(text, tooltip)``; ``colours[row][column]`` may tint it."""
    if table.rowCount() != len(rows):
        table.setRowCount(len(rows))
    for r, row in enumerate(rows):
        for c, cell in enumerate(row):
            text, tip = (cell, "") if isinstance(cell, str) else cell
            item = table.item(r, c)
            if item is None:
                item = QTableWidgetItem()
                table.setItem(r, c, item)
            if item.text() != text:
                item.setText(text)
            if item.toolTip() != tip:
                item.setToolTip(tip)
            colour = colours[r][c] if r < len(colours) and c < len(colours[r]) else None
            if colour is not None:
                item.setForeground(QColor(colour))


def hint(text: str) -> QLabel:
    label = QLabel(text)
    label.setObjectName("DashHint")
    label.setWordWrap(True)
    return label


def _span(seconds: float) -> str:
    seconds = abs(seconds)
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s" if minutes < 10 else f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes:02d}m"
    return f"{hours // 24}d"


def relative(moment: datetime | None, now: datetime | None = None) -> tuple[str, str]:
    """``3m ago`` / ``in 12m``, with the local date and time as the tooltip."""
    if moment is None:
        return "—", ""
    now = now or datetime.now(UTC)
    delta = (moment - now).total_seconds()
    text = "now" if abs(delta) < 1 else (f"in {_span(delta)}" if delta > 0 else f"{_span(delta)} ago")
    return text, f"{moment.astimezone():%Y-%m-%d %H:%M:%S}"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return (
        f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s" if seconds < 60 else _span(seconds)
    )


def number(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "—"
    return f"{value:.{digits}g}" if abs(value) < 1000 else f"{value:,.0f}"
