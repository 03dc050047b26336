"""Scheduler health: the loop's health label and why, the task grid, a timeline of recent runs (one
scatter item coloured by outcome) and the latest daily improvement report."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QTextCharFormat, QTextCursor, QTextDocument, QTextFormat
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSplitter, QTextBrowser, QVBoxLayout, QWidget

from nexus_desktop.control.dashboard_data import OUTCOMES, SchedulerReader, SchedulerSnapshot, TaskRow
from nexus_desktop.ui.dashboards.base import LiveView, duration, fill_table, hint, make_table, relative
from nexus_desktop.ui.dashboards.dots import Dots
from nexus_desktop.ui.dashboards.plots import Empty, make_plot
from nexus_desktop.ui.dashboards.style import HEALTH_COLOURS, OUTCOME_COLOURS
from nexus_desktop.ui.theme import COLORS

COLUMNS = (
    "Task",
    "State",
    "Cadence",
    "Next due",
    "Last run",
    "Took",
    "Runs",
    "Errors",
    "Timeouts",
    "Skipped",
)
STATE_COLOURS = {"not_implemented": COLORS.warning, "disabled": COLORS.muted, "running": COLORS.accent_hover}


HEADING_POINTS = {1: 13.0, 2: 11.5, 3: 10.5}


def shrink_headings(document: QTextDocument) -> None:
    """Markdown headings at report scale: Qt draws a level-one heading at twice the text size."""
    block = document.begin()
    while block.isValid():
        level = block.blockFormat().headingLevel()
        if level:
            cursor = QTextCursor(block)
            cursor.movePosition(QTextCursor.MoveOperation.EndOfBlock, QTextCursor.MoveMode.KeepAnchor)
            heading = QTextCharFormat()
            heading.setProperty(QTextFormat.Property.FontSizeAdjustment, 0)
            heading.setFontPointSize(HEADING_POINTS.get(level, 10.0))
            cursor.mergeCharFormat(heading)
        block = block.next()


class SchedulerView(LiveView):
    title = "Scheduler"

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tasks: tuple[TaskRow, ...] = ()
        self._timeline_version = -1
        self._runs: tuple[Any, ...] = ()
        self._report_text: str | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 12, 16, 12)
        layout.setSpacing(8)

        head = QHBoxLayout()
        head.setSpacing(10)
        self.health_pill = QLabel("UNKNOWN")
        self.health_pill.setObjectName("HealthPill")
        self.health_pill.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.health_reason = QLabel("Reading the loop's health…")
        self.health_reason.setObjectName("HealthReason")
        self.health_reason.setWordWrap(True)
        head.addWidget(self.health_pill, 0, Qt.AlignmentFlag.AlignTop)
        head.addWidget(self.health_reason, 1)
        layout.addLayout(head)
        layout.addWidget(self.error)

        self.table = make_table(COLUMNS)
        self.grid = Empty(
            self.table,
            "No scheduled tasks yet: the scheduler registers the loop's tasks (and modules' tasks) "
            "when the app starts.",
        )

        self.plot = make_plot(left="")
        self.plot.setMinimumHeight(120)
        self.plot.invertY(True)  # the first task on top, as in the grid above
        self.dots = Dots([OUTCOME_COLOURS[o] for o in OUTCOMES])
        self.dots.clicked.connect(self.show_run)
        self.plot.addItem(self.dots)
        timeline = QWidget()
        timeline_layout = QVBoxLayout(timeline)
        timeline_layout.setContentsMargins(0, 0, 0, 0)
        timeline_layout.setSpacing(4)
        legend = "   ".join(f'<span style="color:{OUTCOME_COLOURS[o]}">●</span> {o}' for o in OUTCOMES)
        legend_label = QLabel(f"RECENT RUNS &nbsp;&nbsp; {legend}")
        legend_label.setObjectName("DashLegend")
        timeline_layout.addWidget(legend_label)
        self.runs_box = Empty(self.plot, "No scheduled runs yet: the scheduler starts with the app.")
        timeline_layout.addWidget(self.runs_box, 1)
        self.run_detail = hint("Click a run to see what it did.")
        timeline_layout.addWidget(self.run_detail)

        self.report = QTextBrowser()
        self.report.setObjectName("ReportView")
        self.report.setOpenExternalLinks(False)
        self.report_box = Empty(
            self.report,
            "No daily report yet: the loop's daily cycle writes one each day (or run 'nexus report daily').",
        )
        report_side = QWidget()
        report_layout = QVBoxLayout(report_side)
        report_layout.setContentsMargins(0, 0, 0, 0)
        report_layout.setSpacing(4)
        self.report_title = QLabel("DAILY REPORT")
        self.report_title.setObjectName("SectionLabel")
        report_layout.addWidget(self.report_title)
        report_layout.addWidget(self.report_box, 1)

        bottom = QSplitter(Qt.Orientation.Horizontal)
        bottom.setChildrenCollapsible(False)
        bottom.setHandleWidth(10)
        bottom.addWidget(timeline)
        bottom.addWidget(report_side)
        bottom.setStretchFactor(0, 3)
        bottom.setStretchFactor(1, 2)
        split = QSplitter(Qt.Orientation.Vertical)
        split.setChildrenCollapsible(False)
        split.setHandleWidth(10)
        split.addWidget(self.grid)
        split.addWidget(bottom)
        split.setStretchFactor(0, 2)
        split.setStretchFactor(1, 3)
        layout.addWidget(split, 1)

    def make_reader(self, engine: Any) -> SchedulerReader:
        return SchedulerReader(engine)

    def show_snapshot(self, snapshot: SchedulerSnapshot) -> None:
        self._show_health(snapshot.health.label, snapshot.health.reason)
        self._show_tasks(snapshot.tasks)
        if snapshot.timeline_version != self._timeline_version:
            self._show_timeline(snapshot)
        self._show_report(snapshot)

    def _show_health(self, label: str, reason: str) -> None:
        if self.health_pill.text() != label.upper():
            self.health_pill.setText(label.upper())
            colour = HEALTH_COLOURS.get(label, COLORS.muted)
            self.health_pill.setStyleSheet(f"background: {colour};")
        if self.health_reason.text() != reason:
            self.health_reason.setText(reason)

    def _show_tasks(self, tasks: tuple[TaskRow, ...]) -> None:
        self.tasks = tasks
        self.grid.set_empty(not tasks)
        now = datetime.now(UTC)
        rows, colours = [], []
        for task in tasks:
            last = relative(task.last_started, now)
            outcome = task.last_outcome or ""
            last_text = (f"{last[0]} · {outcome}" if outcome else last[0], task.last_error or last[1])
            owner = f"{task.name} ({task.owner})" if task.owner != "nexus" else task.name
            rows.append(
                (
                    owner,
                    task.state.replace("_", " "),
                    task.cadence,
                    relative(task.next_due, now)
                    if task.state not in ("disabled", "not_implemented")
                    else "—",
                    last_text,
                    duration(task.last_duration),
                    str(task.run_count),
                    str(task.error_count),
                    str(task.timeout_count),
                    str(task.skipped_count),
                )
            )
            colours.append(
                (
                    None,
                    STATE_COLOURS.get(task.state, COLORS.text),
                    None,
                    None,
                    OUTCOME_COLOURS.get(outcome, COLORS.text),
                    None,
                    None,
                    COLORS.danger if task.error_count else COLORS.text,
                    COLORS.warning if task.timeout_count else COLORS.text,
                    None,
                )
            )
        fill_table(self.table, rows, colours)

    def _show_timeline(self, snapshot: SchedulerSnapshot) -> None:
        self._timeline_version = snapshot.timeline_version
        timeline = snapshot.timeline
        self._runs = timeline.runs
        self.runs_box.set_empty(len(timeline.runs) == 0)
        self.dots.set_points(timeline.x, timeline.y, timeline.outcome)
        names = [t.name for t in snapshot.tasks]
        for run in timeline.runs:
            if run.task not in names:
                names.append(run.task)
        self.plot.getAxis("left").setTicks([list(enumerate(names))])
        self.plot.setYRange(-0.7, max(len(names), 1) - 0.3, padding=0)

    def show_run(self, index: int) -> None:
        """Say what run ``index`` of the timeline did (what clicking its dot does)."""
        if not 0 <= index < len(self._runs):
            return
        run = self._runs[index]
        when = relative(run.started_at)[1]
        took = f" in {duration(run.seconds)}" if run.seconds is not None else ""
        detail = f": {run.detail}" if run.detail else ""
        self.run_detail.setText(f"{run.task} · {when} · {run.outcome}{took}{detail}")

    def _show_report(self, snapshot: SchedulerSnapshot) -> None:
        report = snapshot.report
        self.report_box.set_empty(report is None)
        if report is None or report.text == self._report_text:
            return
        self._report_text = report.text
        self.report.setMarkdown(report.text)
        shrink_headings(self.report.document())
        when = f" · {report.written_at.astimezone():%Y-%m-%d %H:%M}" if report.written_at else ""
        self.report_title.setText(f"DAILY REPORT{when}")
        self.report_title.setToolTip(report.path)
