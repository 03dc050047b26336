"""Gate decisions: per zoo model, candidate against incumbent, base and the lexical (bag-of-words)
baseline for one metric over time, with a marker per decision (promoted, approved or rejected);
clicking a marker shows that decision's numbers in the Training page's own decision view."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QSplitter, QVBoxLayout, QWidget

from nexus_desktop.control.dashboard_data import GateReader, GateSnapshot
from nexus_desktop.training.gate import LOWER_IS_BETTER
from nexus_desktop.ui.dashboards.base import LiveView
from nexus_desktop.ui.dashboards.plots import Empty, add_curve, add_legend, make_plot
from nexus_desktop.ui.gate_view import GateDecisionView
from nexus_desktop.ui.theme import COLORS

LINES = (
    ("candidate", COLORS.accent),
    ("incumbent", "#2fc4b2"),
    ("base", COLORS.text_dim),
    ("baseline", COLORS.warning),
)
LEGEND = {"baseline": "bag of words"}
GLYPHS = {"t1": "▲", "o": "●", "x": "✕"}
MARKERS = {
    "promoted": ("t1", COLORS.success),
    "approved": ("o", COLORS.accent_hover),
    "rejected": ("x", COLORS.danger),
}


def _verdict(view: Any) -> str:
    return "promoted" if view.promoted else "approved" if view.approved else "rejected"


class GatesView(LiveView):
    title = "Gate decisions"

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.snapshot = GateSnapshot(0, {})
        self.shown: tuple[Any, ...] = ()
        """The decisions plotted now (the chosen model's, oldest first): marker i is shown[i]."""
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 12, 16, 12)
        layout.setSpacing(8)
        controls = QHBoxLayout()
        controls.setSpacing(8)
        self.model_picker = QComboBox()
        self.model_picker.setMinimumWidth(140)
        self.model_picker.currentTextChanged.connect(lambda _text: self._replot())
        self.metric_picker = QComboBox()
        self.metric_picker.setMinimumWidth(140)
        self.metric_picker.currentTextChanged.connect(lambda _text: self._replot())
        controls.addWidget(QLabel("Model"))
        controls.addWidget(self.model_picker)
        controls.addSpacing(8)
        controls.addWidget(QLabel("Metric"))
        controls.addWidget(self.metric_picker)
        legend = "   ".join(
            f'<span style="color:{colour}">{GLYPHS[symbol]}</span> {name}'
            for name, (symbol, colour) in MARKERS.items()
        )
        markers = QLabel(legend)
        markers.setObjectName("DashLegend")
        controls.addStretch(1)
        controls.addWidget(markers)
        layout.addLayout(controls)
        layout.addWidget(self.error)

        self.plot = make_plot()
        self.plot.setMinimumHeight(140)
        add_legend(self.plot, offset=(-8, -6))  # bottom right: gate numbers tend to climb
        self.curves = {
            name: add_curve(
                self.plot,
                colour,
                LEGEND.get(name, name),
                symbol="o",
                symbolSize=5,
                symbolBrush=colour,
                symbolPen=None,
            )
            for name, colour in LINES
        }
        self.curves["base"].setPen(pg.mkPen(COLORS.text_dim, width=1.4, style=Qt.PenStyle.DashLine))
        self.curves["baseline"].setPen(pg.mkPen(COLORS.warning, width=1.4, style=Qt.PenStyle.DotLine))
        self.markers = pg.ScatterPlotItem(size=15, hoverable=True, tip=None)
        self.markers.setZValue(10)
        self.markers.sigClicked.connect(self._clicked)
        self.plot.addItem(self.markers)

        self.decision = GateDecisionView()
        split = QSplitter(Qt.Orientation.Vertical)
        split.setChildrenCollapsible(False)
        split.setHandleWidth(10)
        split.addWidget(self.plot)
        split.addWidget(self.decision)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 1)
        self.body = Empty(
            split,
            "No gate decisions yet: when a training job finishes, the gate benchmarks its adapter "
            "against the incumbent and the base model, and each decision shows here.",
        )
        layout.addWidget(self.body, 1)

    def make_reader(self, engine: Any) -> GateReader:
        return GateReader(engine)

    def show_snapshot(self, snapshot: GateSnapshot) -> None:
        if snapshot.version == self.snapshot.version:
            return
        self.snapshot = snapshot
        self.body.set_empty(not snapshot.decisions)
        current = self.model_picker.currentText()
        if snapshot.models != [self.model_picker.itemText(i) for i in range(self.model_picker.count())]:
            self.model_picker.blockSignals(True)
            self.model_picker.clear()
            self.model_picker.addItems(snapshot.models)
            if current in snapshot.models:
                self.model_picker.setCurrentText(current)
            self.model_picker.blockSignals(False)
        self._replot(show_latest=True)

    def _replot(self, show_latest: bool = False) -> None:
        decisions = self.snapshot.decisions.get(self.model_picker.currentText(), ())
        metrics: list[str] = []
        for view in decisions:
            for values in (view.candidate, view.incumbent or {}, view.base or {}, view.baseline or {}):
                metrics.extend(m for m in values if m not in metrics)
        if metrics != [self.metric_picker.itemText(i) for i in range(self.metric_picker.count())]:
            chosen = self.metric_picker.currentText()
            self.metric_picker.blockSignals(True)
            self.metric_picker.clear()
            self.metric_picker.addItems(metrics)
            if chosen in metrics:
                self.metric_picker.setCurrentText(chosen)
            self.metric_picker.blockSignals(False)
        metric = self.metric_picker.currentText()
        self.shown = decisions
        x = np.array([view.at.timestamp() for view in decisions], dtype=np.float64)

        def numbers(side: str) -> np.ndarray:
            found = [(getattr(view, side) or {}).get(metric) for view in decisions]
            return np.array([math.nan if v is None else v for v in found], dtype=np.float64)

        for side, curve in self.curves.items():
            values = numbers(side)
            if np.isnan(values).all():  # e.g. no bag-of-words baseline: chat models, older decisions
                curve.setData([], [])
            else:
                curve.setData(x, values)
        arrow = "↓" if metric in LOWER_IS_BETTER else "↑"  # as the decision's table marks it
        self.plot.setLabel("left", f"{metric} {arrow}" if metric else "", color=COLORS.muted, size="8pt")
        candidate = numbers("candidate")
        verdicts = [_verdict(view) for view in decisions]
        self.markers.setData(
            x=x,
            y=np.where(
                np.isfinite(candidate), candidate, np.nanmin(candidate) if np.isfinite(candidate).any() else 0
            ),
            symbol=[MARKERS[v][0] for v in verdicts],
            brush=[pg.mkBrush(MARKERS[v][1]) for v in verdicts],
            pen=[pg.mkPen(MARKERS[v][1], width=2) for v in verdicts],
        )
        if len(x):
            self.plot.getPlotItem().enableAutoRange()
            if x.max() - x.min() < 3600:  # one decision (or a few close ones): show the hour around
                self.plot.setXRange(x.min() - 1800, x.max() + 1800, padding=0)
        if show_latest or self.decision.view not in decisions:
            self.show_decision(len(decisions) - 1)

    def _clicked(self, _item: Any, points: Any, *_: Any) -> None:
        if len(points):
            self.show_decision(points[0].index())

    def show_decision(self, index: int) -> None:
        """Show decision ``index`` of the chosen model (what clicking its marker does)."""
        if not 0 <= index < len(self.shown):
            self.decision.show_decision(None)
            return
        self.decision.show_decision(self.shown[index])
        self.decision.show_history(list(reversed(self.shown)))
