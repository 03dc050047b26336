"""Plots in the app's colours, set up for long series: downsampled to the pixels (peak mode keeps
spikes visible), clipped to the view, float64 x (pyqtgraph's searchsorted is slow on anything else).
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QLabel, QStackedWidget, QWidget

from nexus_desktop.ui.theme import COLORS


def make_plot(*, time_axis: bool = True, left: str = "", bottom: str = "") -> pg.PlotWidget:
    axes = {"bottom": pg.DateAxisItem(orientation="bottom")} if time_axis else {}
    plot = pg.PlotWidget(background=COLORS.surface, axisItems=axes)
    plot.setMenuEnabled(False)
    plot.hideButtons()
    plot.setMouseEnabled(x=True, y=False)
    # No grid: pyqtgraph draws grid lines into the axes' cached pictures, and replaying them cost
    # 8-16 ms per repaint (against about 1 ms without), most of a redraw of a day of eight series.
    plot.showGrid(x=False, y=False)
    font = QFont()
    font.setPointSizeF(8)
    for name in ("left", "bottom"):
        axis = plot.getAxis(name)
        axis.setPen(pg.mkPen(COLORS.border))
        axis.setTextPen(pg.mkPen(COLORS.muted))
        axis.setStyle(tickFont=font, tickLength=-4)
        axis.enableAutoSIPrefix(False)  # "0.91", not "910 (x0.001)"
    if left:
        plot.setLabel("left", left, color=COLORS.muted, size="8pt")
    if bottom:
        plot.setLabel("bottom", bottom, color=COLORS.muted, size="8pt")
    item = plot.getPlotItem()
    item.layout.setContentsMargins(4, 8, 12, 4)
    item.setDownsampling(auto=True, mode="peak")
    item.setClipToView(True)
    return plot


def add_curve(plot: pg.PlotWidget, colour: str, name: str | None = None, **style: object) -> pg.PlotDataItem:
    """One series: one curve item for all its points (many short curves draw far slower).

    A one-pixel pen: Qt draws it on its fast path (a wider one costs several times as much for a
    long curve).  One peak-downsampled bin per pixel (pyqtgraph draws five by default): a day at
    one-second resolution then paints about 2 x width points, and peak mode keeps every spike."""
    curve = plot.plot(
        np.empty(0), np.empty(0), pen=pg.mkPen(colour, width=1), name=name, connect="finite", **style
    )
    curve.setDownsampling(auto=True, method="peak")
    curve.setClipToView(True)
    curve.opts["autoDownsampleFactor"] = 1.0  # no setter for it in pyqtgraph
    return curve


def add_legend(plot: pg.PlotWidget, offset: tuple[int, int] = (8, 6)) -> pg.LegendItem:
    """``offset``: from the top left corner; negative x counts from the right."""
    legend = plot.addLegend(offset=offset, labelTextColor=COLORS.text_dim, labelTextSize="8pt")
    legend.setBrush(pg.mkBrush(COLORS.sidebar + "d0"))
    return legend


class Empty(QStackedWidget):
    """The content, or one sentence saying what will fill it while there is nothing to show."""

    def __init__(self, content: QWidget, text: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.label = QLabel(text)
        self.label.setObjectName("EmptyState")
        self.label.setWordWrap(True)
        self.label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.label.setMargin(16)
        self.content = content
        self.addWidget(self.label)
        self.addWidget(content)

    def set_empty(self, empty: bool) -> None:
        self.setCurrentIndex(0 if empty else 1)

    @property
    def empty(self) -> bool:
        return self.currentIndex() == 0
