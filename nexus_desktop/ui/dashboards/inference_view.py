"""Inference: tokens per second, time to first token and latency per model and source, as a table
of percentiles over the last 24 hours and one curve per model and source over time."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QSplitter, QVBoxLayout, QWidget

from nexus_desktop.control.dashboard_series import InferenceReader, InferenceSnapshot, SeriesKey
from nexus_desktop.ui.dashboards.base import LiveView, fill_table, make_table, number
from nexus_desktop.ui.dashboards.plots import Empty, add_curve, add_legend, make_plot
from nexus_desktop.ui.dashboards.style import SERIES_COLOURS
from nexus_desktop.ui.theme import COLORS

METRIC_NAMES = {
    "tokens_per_second": "Tokens per second",
    "first_token_seconds": "Time to first token (s)",
    "seconds": "Latency, request to last token (s)",
}
COLUMNS = (
    "Model",
    "Source",
    "Adapter",
    "Calls",
    "Errors",
    "tok/s",
    "TTFT p50",
    "TTFT p95",
    "Lat p50",
    "Lat p95",
    "Lat p99",
)


class InferenceView(LiveView):
    title = "Inference"

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.snapshot: InferenceSnapshot | None = None
        self.curves: dict[SeriesKey, Any] = {}
        self._plotted: tuple[int, str] = (-1, "")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 12, 16, 12)
        layout.setSpacing(8)
        controls = QHBoxLayout()
        self.metric_picker = QComboBox()
        for key, name in METRIC_NAMES.items():
            self.metric_picker.addItem(name, key)
        self.metric_picker.currentIndexChanged.connect(lambda _index: self._draw_curves(force=True))
        controls.addWidget(QLabel("Plot"))
        controls.addWidget(self.metric_picker)
        controls.addStretch(1)
        self.window_label = QLabel("Last 24 hours")
        self.window_label.setObjectName("DashLegend")
        controls.addWidget(self.window_label)
        layout.addLayout(controls)
        layout.addWidget(self.error)

        self.table = make_table(COLUMNS)
        self.table.setMinimumHeight(30 + 26 * 3)  # the header and three series at least
        self.plot = make_plot()
        self.plot.setMinimumHeight(140)
        add_legend(self.plot)
        split = QSplitter(Qt.Orientation.Vertical)
        split.setChildrenCollapsible(False)
        split.setHandleWidth(10)
        split.addWidget(self.table)
        split.addWidget(self.plot)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 3)
        self.body = Empty(
            split,
            "No model calls yet: every chat reply, tool choice, routing decision and gate benchmark "
            "is measured here (tokens per second, time to first token, latency).",
        )
        layout.addWidget(self.body, 1)

    @property
    def shown_metric(self) -> str:
        return str(self.metric_picker.currentData())

    def make_reader(self, engine: Any) -> InferenceReader:
        return InferenceReader(engine)

    def show_snapshot(self, snapshot: InferenceSnapshot) -> None:
        self.snapshot = snapshot
        self.body.set_empty(not snapshot.series)
        rows = [
            (
                row.model or "—",
                row.source,
                row.adapter or "—",
                f"{row.calls:,}",
                f"{row.errors:,}",
                number(row.tokens_per_second),
                number(row.first_token_p50),
                number(row.first_token_p95),
                number(row.latency_p50),
                number(row.latency_p95),
                number(row.latency_p99),
            )
            for row in snapshot.summary
            if row.calls or row.errors
        ]
        fill_table(self.table, rows)
        self._draw_curves()

    def _draw_curves(self, force: bool = False) -> None:
        snapshot = self.snapshot
        if snapshot is None or (not force and self._plotted == (snapshot.version, self.shown_metric)):
            return
        self._plotted = (snapshot.version, self.shown_metric)
        for key in sorted(snapshot.series, key=lambda k: (k.model, k.source)):
            if key not in self.curves:
                colour = SERIES_COLOURS[len(self.curves) % len(SERIES_COLOURS)]
                self.curves[key] = add_curve(self.plot, colour, key.label)
            x, y = snapshot.series[key][self.shown_metric]
            self.curves[key].setData(x, y)
        self.plot.setLabel("left", METRIC_NAMES[self.shown_metric], color=COLORS.muted, size="8pt")
