"""Module panels: every panel a module registers through ``register_dashboard_panels``, rendered in
the module's own process (``ModuleSupervisor.render_panel``) every ``refresh_seconds``.

A panel's content is JSON of a label -> value mapping (shown as a small form) or Markdown text.  A
module that fails shows its error in its own panel; the page and the other panels carry on.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QFormLayout, QFrame, QGridLayout, QLabel, QScrollArea, QVBoxLayout, QWidget

from nexus_desktop.ui.dashboards.plots import Empty
from nexus_desktop.ui.ops import QueryOp

TICK_MS = 500
MIN_REFRESH_SECONDS = 1.0
CARD_WIDTH = 320


def panel_content(text: str) -> dict[str, str] | str:
    """A label -> value mapping when the panel sent one as JSON, else its text (Markdown)."""
    try:
        data = json.loads(text)
    except ValueError:
        return text
    if isinstance(data, dict):
        return {
            str(key): value if isinstance(value, str) else json.dumps(value) for key, value in data.items()
        }
    return text


class PanelCard(QFrame):
    def __init__(self, panel: Any) -> None:
        super().__init__()
        self.setObjectName("PanelCard")
        self.panel = panel
        self.values: dict[str, str] = {}
        self.text = ""
        self.failure = ""
        self._rows: dict[str, QLabel] = {}
        layout = QVBoxLayout(self)
        layout.setContentsMargins(14, 10, 14, 12)
        layout.setSpacing(6)
        title = QLabel(panel.title or panel.name)
        title.setObjectName("PanelTitle")
        every = f"every {panel.refresh_seconds:g} s" if panel.refresh_seconds else "on demand"
        meta = QLabel(f"{panel.module} · {every}")
        meta.setObjectName("DashHint")
        layout.addWidget(title)
        layout.addWidget(meta)
        self.form = QFormLayout()
        self.form.setHorizontalSpacing(14)
        self.form.setVerticalSpacing(4)
        layout.addLayout(self.form)
        self.markdown = QLabel("")
        self.markdown.setTextFormat(Qt.TextFormat.MarkdownText)
        self.markdown.setWordWrap(True)
        self.markdown.hide()
        layout.addWidget(self.markdown)
        self.error = QLabel("")
        self.error.setObjectName("PanelError")
        self.error.setWordWrap(True)
        self.error.hide()
        layout.addWidget(self.error)
        self.waiting = QLabel("Asking the module…")
        self.waiting.setObjectName("DashHint")
        layout.addWidget(self.waiting)
        layout.addStretch(1)

    def show_result(self, result: Any) -> None:
        self.waiting.hide()
        if not result.ok:
            self.show_error(result.error or "The module could not render this panel.")
            return
        self.failure = ""
        self.error.hide()
        content = panel_content(result.content)
        if isinstance(content, dict):
            self._show_values(content)
        else:
            self._show_values({})
            if content != self.text:
                self.text = content
                self.markdown.setText(content)
            self.markdown.show()

    def show_error(self, error: BaseException | str) -> None:
        self.waiting.hide()
        self.failure = str(error) or type(error).__name__
        self.error.setText(f"This panel failed: {self.failure}")
        self.error.show()

    def _show_values(self, values: dict[str, str]) -> None:
        self.values = values
        if values:
            self.markdown.hide()
            self.text = ""
        if list(values) != list(self._rows):
            while self.form.rowCount():
                self.form.removeRow(0)
            self._rows = {}
            for key in values:
                name, field = QLabel(key), QLabel("")
                name.setObjectName("PanelKey")
                field.setObjectName("PanelValue")
                field.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
                self.form.addRow(name, field)
                self._rows[key] = field
        for key, text in values.items():
            if self._rows[key].text() != text:
                self._rows[key].setText(text)


class ModulePanelsView(QWidget):
    title = "Module panels"

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("DashView")
        self.supervisor: Callable[[], Any] = lambda: None
        self.cards: dict[tuple[str, str], PanelCard] = {}
        self._due: dict[tuple[str, str], float] = {}
        self._in_flight: set[tuple[str, str]] = set()
        self._columns = 0
        self.snapshots = 0
        """Panel renders shown (tests wait on it)."""
        self.reads = 0
        self.timer = QTimer(self)
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self.refresh)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 12, 16, 12)
        self.holder = QWidget()
        self.grid = QGridLayout(self.holder)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setSpacing(12)
        self.grid.setAlignment(Qt.AlignmentFlag.AlignTop)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(self.holder)
        self.body = Empty(scroll, "")
        layout.addWidget(self.body, 1)
        self._say_empty()

    def bind(self, supervisor: Callable[[], Any]) -> None:
        """``supervisor()`` is the running ``ModuleSupervisor``, or None until modules started."""
        self.supervisor = supervisor

    def start(self) -> None:
        self.timer.start()
        self.refresh()

    def stop(self) -> None:
        self.timer.stop()

    def _say_empty(self, started: bool = False) -> None:
        self.body.label.setText(
            "No module registers a dashboard panel. Modules add them with register_dashboard_panels; "
            "the bundled system-monitor shows CPU, RAM and VRAM (enable it in Modules)."
            if started
            else "Module panels appear here once modules have started."
        )

    def refresh(self) -> None:
        supervisor = self.supervisor()
        panels = list(supervisor.panels()) if supervisor is not None else []
        keys = [(p.module, p.name) for p in panels]
        if keys != list(self.cards):
            self._rebuild(panels)
        self._say_empty(started=supervisor is not None)
        self.body.set_empty(not panels)
        now = time.monotonic()
        for panel, key in zip(panels, keys, strict=True):
            if key in self._in_flight or now < self._due.get(key, 0.0):
                continue
            self._in_flight.add(key)
            self._due[key] = now + max(MIN_REFRESH_SECONDS, float(panel.refresh_seconds or 0) or 3600.0)
            done = partial(self._rendered, key, self.cards[key])
            op = supervisor.render_panel(panel.module, panel.name)
            QueryOp(parent=self, op=op, success=done).failure(done).run_in_background()

    def _rendered(self, key: tuple[str, str], card: PanelCard, outcome: Any) -> None:
        self._in_flight.discard(key)
        if self.cards.get(key) is not card:
            return  # the module restarted or went away meanwhile
        if isinstance(outcome, BaseException):
            card.show_error(outcome)
        else:
            card.show_result(outcome)
        self.reads += 1
        self.snapshots += 1

    def _rebuild(self, panels: list[Any]) -> None:
        for card in self.cards.values():
            card.setParent(None)
            card.deleteLater()
        self.cards = {(p.module, p.name): PanelCard(p) for p in panels}
        self._due = {k: v for k, v in self._due.items() if k in self.cards}
        self._in_flight &= set(self.cards)
        self._columns = 0
        self._place()

    def _place(self) -> None:
        columns = max(1, (self.width() - 32) // CARD_WIDTH)
        if columns == self._columns:
            return
        self._columns = columns
        for index, card in enumerate(self.cards.values()):
            self.grid.addWidget(card, index // columns, index % columns, Qt.AlignmentFlag.AlignTop)
        for column in range(max(columns, self.grid.columnCount())):
            self.grid.setColumnStretch(column, 1 if column < columns else 0)

    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        self._place()
