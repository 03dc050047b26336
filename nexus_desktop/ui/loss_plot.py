"""A live loss curve (pyqtgraph) in the app's colours: training loss in violet, eval loss in teal.

Points are appended as the poller fetches them; a re-render costs one ``setData`` per curve, so
streaming a long run never stalls the window.
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import QVBoxLayout, QWidget

from nexus_desktop.ui.theme import COLORS

EVAL_COLOUR = "#2fc4b2"


class LossPlot(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("LossPlot")
        self.steps: list[int] = []
        self.losses: list[float] = []
        self.eval_steps: list[int] = []
        self.eval_losses: list[float] = []

        self.plot = pg.PlotWidget(background=COLORS.surface)
        self.plot.setMenuEnabled(False)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        self.plot.showGrid(x=True, y=True, alpha=0.12)
        font = QFont()
        font.setPointSizeF(8)
        for name in ("left", "bottom"):
            axis = self.plot.getAxis(name)
            axis.setPen(pg.mkPen(COLORS.border_strong))
            axis.setTextPen(pg.mkPen(COLORS.muted))
            axis.setStyle(tickFont=font, tickLength=-4)
        self.plot.setLabel("bottom", "step", color=COLORS.muted, size="8pt")
        self.plot.getPlotItem().layout.setContentsMargins(4, 8, 12, 4)
        self.train_curve = self.plot.plot(
            [], [], pen=pg.mkPen(COLORS.accent, width=2), name="loss", antialias=True
        )
        fill = QColor(COLORS.accent)
        fill.setAlpha(40)
        self.train_curve.setFillLevel(0)
        self.train_curve.setBrush(fill)
        self.eval_curve = self.plot.plot(
            [],
            [],
            pen=pg.mkPen(EVAL_COLOUR, width=2, style=Qt.PenStyle.DashLine),
            symbol="o",
            symbolSize=6,
            symbolBrush=EVAL_COLOUR,
            symbolPen=None,
            name="eval loss",
        )
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot)

    def clear(self) -> None:
        self.steps, self.losses, self.eval_steps, self.eval_losses = [], [], [], []
        self._redraw()

    @property
    def last_step(self) -> int:
        return max(self.steps[-1] if self.steps else -1, self.eval_steps[-1] if self.eval_steps else -1)

    def append(self, points: list[tuple[int, float | None, float | None]]) -> None:
        """Add ``(step, loss, eval_loss)`` points (a step seen before is updated in place)."""
        if not points:
            return
        for step, loss, eval_loss in points:
            if loss is not None:
                if self.steps and self.steps[-1] == step:
                    self.losses[-1] = loss
                elif not self.steps or step > self.steps[-1]:
                    self.steps.append(step)
                    self.losses.append(loss)
            if eval_loss is not None and (not self.eval_steps or step > self.eval_steps[-1]):
                self.eval_steps.append(step)
                self.eval_losses.append(eval_loss)
        self._redraw()

    def _redraw(self) -> None:
        self.train_curve.setData(self.steps, self.losses)
        self.eval_curve.setData(self.eval_steps, self.eval_losses)
