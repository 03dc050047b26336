"""The VRAM bar: weights on the GPU, KV cache, compute buffers, the game reserve and what is left,
as coloured segments with a legend and ``plan_fit``'s sentence.  On a CPU-only build it shows
only the sentence, which says how to get a GPU build, instead of a bar of zeros."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QGridLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

from nexus_desktop.llm.vram_fit import format_bytes
from nexus_desktop.ui.palettes import COLORS
from nexus_desktop.ui.theme import appearance_changed
from nexus_desktop.ui.widgets import help_label

if TYPE_CHECKING:
    from nexus_desktop.llm.vram_fit import FitPlan

SEGMENT_COLOURS = {
    "weights": "accent",
    "kv": "success",
    "compute": "warning",
    "reserve": "muted",
    "left": "surface_active",
}
"""Each segment's palette colour name, so both themes colour the bar."""


class SegmentedBar(QWidget):
    """The bar itself: one rounded strip split in proportion to the segments' sizes."""

    def __init__(self) -> None:
        super().__init__()
        self.segments: list[tuple[str, str, int]] = []
        self.over = False
        self.setMinimumHeight(18)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setAccessibleName("VRAM use")

    def sizeHint(self) -> QSize:
        return QSize(320, 18)

    def paintEvent(self, _event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        rect = QRectF(self.rect()).adjusted(1, 1, -1, -1)
        total = sum(size for _key, _label, size in self.segments)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(COLORS.surface_active))
        painter.drawRoundedRect(rect, 5, 5)
        if total:
            painter.save()
            painter.setClipRect(rect)
            x = rect.left()
            for key, _label, size in self.segments:
                width = rect.width() * size / total
                if size and width < 2:
                    width = 2  # a small buffer must still show
                painter.setBrush(QColor(getattr(COLORS, SEGMENT_COLOURS[key])))
                painter.drawRect(QRectF(x, rect.top(), width, rect.height()))
                x += width
            painter.restore()
        border = QColor(COLORS.danger if self.over else COLORS.border_strong)
        painter.setPen(QPen(border, 2 if self.over else 1))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRoundedRect(rect, 5, 5)


class VramBar(QWidget):
    """The bar, its legend and the sentence; ``set_plan`` shows a plan, ``set_message`` a state
    without one (the header being read, a file that cannot be read)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        self.title = QLabel("")
        self.title.setObjectName("FieldHelp")
        self.title.setWordWrap(True)
        self.bar = SegmentedBar()
        self.legend_holder = QWidget()
        self.legend = QGridLayout(self.legend_holder)
        self.legend.setContentsMargins(0, 0, 0, 0)
        self.legend.setHorizontalSpacing(14)
        self.legend.setVerticalSpacing(2)
        self.legend_labels: dict[str, QLabel] = {}
        for index, key in enumerate(SEGMENT_COLOURS):
            label = QLabel()
            label.setObjectName("FieldHelp")
            self.legend_labels[key] = label
            self.legend.addWidget(label, index // 3, index % 3)
        self.sentence = help_label("")
        self.sentence.setAccessibleName("VRAM fit")
        self.sentence.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        for widget in (self.title, self.bar, self.legend_holder, self.sentence):
            layout.addWidget(widget)
        self.plan: FitPlan | None = None
        appearance_changed().connect(self._restyle)
        self.set_message("")

    def set_plan(self, plan: FitPlan) -> None:
        self.plan = plan
        shows_bar = plan.gpu_build and bool(plan.gpu_total)
        self.bar.setVisible(shows_bar)
        self.legend_holder.setVisible(shows_bar)
        self.title.setVisible(shows_bar)
        self.sentence.setText(plan.sentence)
        if shows_bar:
            self.bar.segments = plan.segments()
            self.bar.over = plan.over > 0
            self.title.setText(
                f"{plan.layers} of {plan.n_layers} layers · {plan.n_ctx:,} tokens · KV cache {plan.kv_type}"
                f" · {format_bytes(plan.gpu_total or 0)} VRAM"
            )
            summary = ", ".join(f"{label} {format_bytes(size)}" for _key, label, size in plan.segments())
            self.bar.setAccessibleDescription(summary)
            self.bar.setToolTip(summary)
        self._restyle()

    def set_message(self, text: str) -> None:
        self.plan = None
        for widget in (self.bar, self.legend_holder, self.title):
            widget.setVisible(False)
        self.sentence.setText(text)

    def _restyle(self) -> None:
        self.bar.update()
        if self.plan is None:
            return
        for key, label, size in self.plan.segments():
            colour = getattr(COLORS, SEGMENT_COLOURS[key])
            self.legend_labels[key].setText(
                f"<span style='color:{colour}'>■</span> {label} <b>{format_bytes(size)}</b>"
            )
        if self.plan.over:
            self.legend_labels["left"].setText(
                f"<span style='color:{COLORS.danger}'>■</span> Over by <b>{format_bytes(self.plan.over)}</b>"
            )
