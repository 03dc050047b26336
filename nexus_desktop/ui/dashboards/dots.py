"""A scatter of many same-size dots, coloured by group, as one plot item.

pyqtgraph's ScatterPlotItem styles every point in Python: redrawing a day of scheduler runs (a few
thousand points) cost 15-50 ms on the Qt thread each time a run was added.  Here each colour is one
QPolygonF filled from numpy and drawn with one ``drawPoints`` call, so a redraw costs well under a
millisecond of Python whatever the number of points.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyqtgraph as pg
from pyqtgraph import functions as fn
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPen, QPolygonF


class Dots(pg.GraphicsObject):
    clicked = Signal(int)
    """The index (into the arrays last given to ``set_points``) of the dot clicked."""

    def __init__(self, colours: Sequence[str], size: float = 8.0) -> None:
        super().__init__()
        self.size = size
        self._pens = []
        for colour in colours:
            pen = QPen(QColor(colour), size)
            pen.setCosmetic(True)  # the size is in pixels, whatever the zoom
            pen.setCapStyle(Qt.PenCapStyle.RoundCap)
            self._pens.append(pen)
        self._polygons: list[QPolygonF] = []
        self.x = np.empty(0)
        self.y = np.empty(0)
        self._rect = QRectF()

    def set_points(self, x: np.ndarray, y: np.ndarray, group: np.ndarray) -> None:
        """``group[i]`` is the index of point i's colour."""
        self.prepareGeometryChange()
        self.x, self.y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        self._polygons = []
        for index in range(len(self._pens)):
            chosen = group == index
            polygon = fn.create_qpolygonf(int(chosen.sum()))
            if polygon.size():
                points = fn.ndarray_from_qpolygonf(polygon)
                points[:, 0], points[:, 1] = self.x[chosen], self.y[chosen]
            self._polygons.append(polygon)
        if len(self.x):
            left, right = float(self.x.min()), float(self.x.max())
            top, bottom = float(self.y.min()), float(self.y.max())
            self._rect = QRectF(left, top, max(right - left, 1e-9), max(bottom - top, 1e-9))
        else:
            self._rect = QRectF()
        self.informViewBoundsChanged()
        self.update()

    def dataBounds(self, axis: int, frac: float = 1.0, orthoRange: Any = None) -> tuple[float, float] | None:
        values = self.x if axis == 0 else self.y
        if not len(values):
            return None
        return float(values.min()), float(values.max())

    def pixelPadding(self) -> float:
        return self.size / 2

    def boundingRect(self) -> QRectF:
        if self._rect.isNull():
            return QRectF()
        pixel_w, pixel_h = self.pixelWidth() or 0.0, self.pixelHeight() or 0.0
        pad_x, pad_y = pixel_w * self.size, pixel_h * self.size
        return self._rect.adjusted(-pad_x, -pad_y, pad_x, pad_y)

    def paint(self, painter: QPainter, *_: Any) -> None:
        for pen, polygon in zip(self._pens, self._polygons, strict=False):
            if polygon.size():
                painter.setPen(pen)
                painter.drawPoints(polygon)

    def nearest(self, pos: QPointF, within_pixels: float | None = None) -> int | None:
        """The dot under ``pos`` (item coordinates), if one is within a dot's size of it."""
        if not len(self.x):
            return None
        pixel_w, pixel_h = self.pixelWidth() or 1.0, self.pixelHeight() or 1.0
        distance = np.hypot((self.x - pos.x()) / pixel_w, (self.y - pos.y()) / pixel_h)
        index = int(np.argmin(distance))
        return index if distance[index] <= (within_pixels or self.size) else None

    def mouseClickEvent(self, event: Any) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            return
        index = self.nearest(event.pos())
        if index is None:
            event.ignore()
            return
        event.accept()
        self.clicked.emit(index)
