"""Training: the loss curves of the most recent jobs side by side (the Training page follows one job
at a time; here the runs compare), training loss as a line and eval loss as dots, one colour a job."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QSplitter, QVBoxLayout, QWidget

from nexus_desktop.control.dashboard_training import TrainingReader, TrainingSnapshot
from nexus_desktop.ui.dashboards.base import LiveView, fill_table, make_table, number, relative
from nexus_desktop.ui.dashboards.plots import Empty, add_curve, add_legend, make_plot
from nexus_desktop.ui.dashboards.style import SERIES_COLOURS
from nexus_desktop.ui.theme import COLORS
from nexus_desktop.ui.training_style import STATE_COLOURS

COLUMNS = ("Job", "Model", "State", "Step", "Loss", "Best", "Started")


class TrainingView(LiveView):
    title = "Training"

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.snapshot = TrainingSnapshot(0, ())
        self.curves: dict[int, tuple[Any, Any]] = {}
        self._plotted: dict[int, Any] = {}
        """The JobCurve each job's items show (an unchanged job keeps the same object)."""
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 12, 16, 12)
        layout.setSpacing(8)
        layout.addWidget(self.error)
        self.plot = make_plot(time_axis=False, bottom="step", left="loss")
        self.plot.setMinimumHeight(140)
        self.legend = add_legend(self.plot, offset=(-8, 6))  # losses start high on the left
        self.table = make_table(COLUMNS, stretch=1)
        self.table.setMinimumHeight(30 + 26 * 3)  # the header and three jobs at least
        split = QSplitter(Qt.Orientation.Vertical)
        split.setChildrenCollapsible(False)
        split.setHandleWidth(10)
        split.addWidget(self.plot)
        split.addWidget(self.table)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 1)
        self.body = Empty(
            split,
            "No training jobs yet: a model trains when its collected examples reach the threshold "
            "(Training page, or the loop's training check), and its loss curve shows here.",
        )
        layout.addWidget(self.body, 1)

    def make_reader(self, engine: Any) -> TrainingReader:
        return TrainingReader(engine)

    def show_snapshot(self, snapshot: TrainingSnapshot) -> None:
        if snapshot.version == self.snapshot.version:
            return
        self.snapshot = snapshot
        self.body.set_empty(not snapshot.jobs)
        ids = {job.id for job in snapshot.jobs}
        for job_id in [j for j in self.curves if j not in ids]:
            for item in self.curves.pop(job_id):
                self.plot.removeItem(item)
            self._plotted.pop(job_id, None)
        # Oldest first, so colours stay with a job as new ones arrive.
        for job in reversed(snapshot.jobs):
            if job.id not in self.curves:
                colour = SERIES_COLOURS[job.id % len(SERIES_COLOURS)]
                line = add_curve(self.plot, colour, f"#{job.id} {job.model_id}")
                dots = self.plot.plot(
                    [], [], pen=None, symbol="o", symbolSize=6, symbolBrush=colour, symbolPen=None
                )
                self.curves[job.id] = (line, dots)
            if self._plotted.get(job.id) is job:
                continue
            self._plotted[job.id] = job
            line, dots = self.curves[job.id]
            line.setData(job.steps, job.losses)
            dots.setData(job.eval_steps, job.eval_losses)
        rows, colours = [], []
        for job in snapshot.jobs:
            step = f"{job.step}/{job.total}" if job.total else str(job.step)
            colour = SERIES_COLOURS[job.id % len(SERIES_COLOURS)]
            rows.append(
                (
                    f"■ #{job.id}",
                    job.model_id,
                    job.state.lower(),
                    step,
                    number(job.loss, 4),
                    number(job.best_loss, 4),
                    relative(job.created_at),
                )
            )
            colours.append((colour, None, STATE_COLOURS.get(job.state, COLORS.text)))
        fill_table(self.table, rows, colours)

    def curve_data(self, job_id: int) -> tuple[Any, Any]:
        """The plotted (steps, losses) of a job's training-loss line."""
        line, _dots = self.curves[job_id]
        return line.getData()
