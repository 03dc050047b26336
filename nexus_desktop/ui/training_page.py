"""The Training page: the model zoo, the job queue with a live loss curve, and the gate's decisions.

Everything comes from a ``TrainingService`` (Qt-free, async); a 500 ms timer polls it through
``QueryOp`` (never more than one poll in flight), fetching only the loss points after the last one
shown, so a running job streams into the plot without the window ever waiting on SQLite.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QProgressBar,
    QScrollArea,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from nexus_desktop.training.service import EXPORT_FORMATS, GateView, JobView, TrainingService, ZooRow
from nexus_desktop.ui.gate_view import GateDecisionView
from nexus_desktop.ui.layouts import tight
from nexus_desktop.ui.loss_plot import LossPlot
from nexus_desktop.ui.ops import QueryOp
from nexus_desktop.ui.theme import COLORS, set_style
from nexus_desktop.ui.training_style import STATE_COLOURS, page_style
from nexus_desktop.ui.widgets import BannerArea, brand_row, push_button, title_block
from nexus_desktop.ui.zoo_item import TASK_NAMES, ZooItem

POLL_MS = 500
ZOO_EVERY = 6
"""The zoo (counts of collected examples) is refreshed every sixth poll: it changes slowly."""
JOB_COLUMNS = ("Job", "Model", "State", "Progress", "Loss", "Best", "ETA")


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s"


def _loss(value: float | None) -> str:
    return f"{value:.4f}" if value is not None else "—"


class Stat(QWidget):
    def __init__(self, label: str) -> None:
        super().__init__()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(1)
        caption = QLabel(label.upper())
        caption.setObjectName("StatLabel")
        self.value = QLabel("—")
        self.value.setObjectName("StatValue")
        layout.addWidget(caption)
        layout.addWidget(self.value)


class TrainingPage(QWidget):
    error = Signal(str)
    """One sentence for the window to show when an action fails (the page shows it too)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("TrainingPage")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        set_style(self, page_style)
        self.service: TrainingService | None = None
        self.zoo_rows: list[ZooRow] = []
        self.jobs: list[JobView] = []
        self.decisions: list[GateView] = []
        self.selected_job_id: int | None = None
        self._plotted_job_id: int | None = None
        self._polling = False
        self._polls = 0
        self.timer = QTimer(self)
        self.timer.setInterval(POLL_MS)
        self.timer.timeout.connect(self.poll)

        root = tight(QHBoxLayout(self))
        root.addWidget(self._build_zoo_pane())
        root.addWidget(self._build_main(), 1)

    # Layout -------------------------------------------------------------------------------------

    def _build_zoo_pane(self) -> QWidget:
        pane = QFrame()
        pane.setObjectName("ZooPane")
        pane.setFixedWidth(284)
        layout = QVBoxLayout(pane)
        layout.setContentsMargins(14, 16, 14, 14)
        layout.setSpacing(8)
        layout.addLayout(brand_row("TRAINING", "SELF-IMPROVEMENT"))
        layout.addSpacing(12)
        heading = QHBoxLayout()
        label = QLabel("MODEL ZOO")
        label.setObjectName("SectionLabel")
        self.zoo_total = QLabel("")
        self.zoo_total.setObjectName("SectionLabel")
        heading.addWidget(label, 1)
        heading.addWidget(self.zoo_total)
        layout.addLayout(heading)
        self.zoo_list = QListWidget()
        self.zoo_list.setObjectName("ZooList")
        self.zoo_list.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.zoo_list.currentRowChanged.connect(self._zoo_selected)
        layout.addWidget(self.zoo_list, 1)

        self.train_button = push_button("Train now", role="primary", icon_name="regenerate")
        self.train_button.clicked.connect(self.train_now)
        layout.addWidget(self.train_button)
        export_row = QHBoxLayout()
        export_row.setSpacing(8)
        self.format_picker = QComboBox()
        self.format_picker.addItems(list(EXPORT_FORMATS))
        self.format_picker.setToolTip("Dataset format: alpaca, sharegpt or dpo (preference pairs)")
        self.export_button = push_button("Export", icon_name="export")
        self.export_button.clicked.connect(self.export_dataset)
        export_row.addWidget(self.format_picker, 1)
        export_row.addWidget(self.export_button, 1)
        layout.addLayout(export_row)
        self.import_button = push_button("Import data…", icon_name="import")
        self.import_button.setToolTip(
            "Add your own examples to this model: a JSONL file of Alpaca, ShareGPT or text/label rows"
        )
        self.import_button.clicked.connect(lambda: self.import_dataset())
        layout.addWidget(self.import_button)
        self.rollback_button = push_button("Roll back adapter", icon_name="left")
        self.rollback_button.setToolTip("Return to the previous adapter (or the base model); recorded")
        self.rollback_button.clicked.connect(self.rollback)
        layout.addWidget(self.rollback_button)
        return pane

    def _build_main(self) -> QWidget:
        main = QWidget()
        layout = tight(QVBoxLayout(main))

        top = QFrame()
        top.setObjectName("TopBar")
        top_layout = QHBoxLayout(top)
        top_layout.setContentsMargins(24, 12, 16, 12)
        titles, self.title, self.subtitle = title_block("Training", "", names=("ChatTitle", "ChatSubtitle"))
        top_layout.addLayout(titles, 1)
        self.promote_button = push_button("Promote", icon_name="check")
        self.promote_button.setToolTip("Make this job's adapter active whatever the gate said (recorded)")
        self.promote_button.clicked.connect(self.promote)
        self.cancel_button = push_button("Cancel job", role="danger", icon_name="stop")
        self.cancel_button.clicked.connect(self.cancel)
        top_layout.addWidget(self.promote_button)
        top_layout.addWidget(self.cancel_button)
        layout.addWidget(top)

        body = QVBoxLayout()
        body.setContentsMargins(24, 16, 24, 16)
        body.setSpacing(14)
        self.banners = BannerArea()
        body.addWidget(self.banners)

        stats = QFrame()
        stats.setObjectName("Card")
        stats_layout = QHBoxLayout(stats)
        stats_layout.setContentsMargins(16, 12, 16, 12)
        self.state_stat, self.step_stat = Stat("State"), Stat("Step")
        self.loss_stat, self.best_stat, self.eta_stat = Stat("Loss"), Stat("Best loss"), Stat("ETA")
        for stat in (self.state_stat, self.step_stat, self.loss_stat, self.best_stat, self.eta_stat):
            stats_layout.addWidget(stat, 1)
        self.job_progress = QProgressBar()
        self.job_progress.setTextVisible(False)
        self.job_progress.setFixedHeight(6)
        stats_box = QVBoxLayout()
        stats_box.setSpacing(8)
        stats_box.addWidget(stats)
        stats_box.addWidget(self.job_progress)
        body.addLayout(stats_box)

        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.setChildrenCollapsible(False)
        splitter.setHandleWidth(1)
        self.tabs = QTabWidget()
        self.loss_plot = LossPlot()
        self.log_tail = QPlainTextEdit()
        self.log_tail.setObjectName("LogTail")
        self.log_tail.setReadOnly(True)
        self.log_tail.setMaximumBlockCount(200)
        self.log_tail.setMinimumHeight(56)  # the plot keeps its room in an 800x500 window
        self.log_tail.setPlaceholderText(
            "No training job selected. Rate replies in chat (thumbs, corrections, swipes): a model "
            "trains when its bar on the left fills, or press Train now. Its loss curve and log show here."
        )
        loss_tab = QWidget()
        loss_tab.setObjectName("LossTab")
        loss_layout = QVBoxLayout(loss_tab)
        loss_layout.setContentsMargins(10, 10, 10, 10)
        loss_layout.setSpacing(8)
        loss_layout.addWidget(self.loss_plot, 3)
        loss_layout.addWidget(self.log_tail, 1)
        self.gate_view = GateDecisionView()
        self.tabs.addTab(loss_tab, "Loss curve")
        gate_scroll = QScrollArea()  # tall; in a short window it scrolls instead of squeezing the plot
        gate_scroll.setWidget(self.gate_view)
        gate_scroll.setWidgetResizable(True)
        gate_scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.tabs.addTab(gate_scroll, "Gate decision")
        splitter.addWidget(self.tabs)

        self.job_table = QTableWidget(0, len(JOB_COLUMNS))
        self.job_table.setObjectName("JobTable")
        self.job_table.setHorizontalHeaderLabels(list(JOB_COLUMNS))
        self.job_table.verticalHeader().hide()
        self.job_table.verticalHeader().setDefaultSectionSize(30)
        header = self.job_table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        self.job_table.setShowGrid(False)
        self.job_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.job_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.job_table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.job_table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.job_table.itemSelectionChanged.connect(self._job_selected)
        splitter.addWidget(self.job_table)
        splitter.setSizes([420, 170])
        body.addWidget(splitter, 1)
        layout.addLayout(body, 1)
        return main

    # Binding and polling ------------------------------------------------------------------------

    def bind(self, service: TrainingService) -> None:
        """Show this service's zoo and jobs and start polling it (stops when the page is hidden)."""
        self.service = service
        self._polls = 0
        self.poll()
        self.timer.start()

    def showEvent(self, event: Any) -> None:
        super().showEvent(event)
        if self.service is not None and not self.timer.isActive():
            self.timer.start()
            self.poll()

    def hideEvent(self, event: Any) -> None:
        super().hideEvent(event)
        self.timer.stop()

    def poll(self) -> None:
        if self.service is None or self._polling:
            return
        self._polling = True
        service = self.service
        with_zoo = self._polls % ZOO_EVERY == 0 or not self.zoo_rows
        self._polls += 1
        job_id = self.selected_job_id
        after = self.loss_plot.last_step if job_id == self._plotted_job_id else -1

        async def fetch() -> dict[str, Any]:
            result: dict[str, Any] = {"jobs": await service.jobs(), "job_id": job_id}
            if with_zoo:
                result["zoo"] = await service.zoo()
                result["decisions"] = await service.gate_history()
            if job_id is not None:
                result["points"] = await service.loss_curve(job_id, after)
                result["log"] = await service.log_tail(job_id)
            return result

        QueryOp(parent=self, op=fetch, success=self._show).failure(self._poll_failed).run_in_background()

    def _poll_failed(self, error: BaseException) -> None:
        self._polling = False
        self.banners.show_banner("error", str(error))

    def _show(self, result: dict[str, Any]) -> None:
        self._polling = False
        if "zoo" in result:
            self._show_zoo(result["zoo"])
            self.decisions = result["decisions"]
        previous = {job.id: job.state for job in self.jobs}
        self._show_jobs(result["jobs"])
        if any(previous.get(job.id) not in (None, job.state) and job.finished for job in self.jobs):
            self._polls = 0  # a job just ended: refresh the zoo and gate on the next poll
        job_id = result["job_id"]
        if job_id is not None and job_id == self.selected_job_id and "points" in result:
            if job_id != self._plotted_job_id:
                self.loss_plot.clear()
                self._plotted_job_id = job_id
            self.loss_plot.append([(p.step, p.loss, p.eval_loss) for p in result["points"]])
            text = "\n".join(result["log"])
            if text != self.log_tail.toPlainText():
                self.log_tail.setPlainText(text)
                bar = self.log_tail.verticalScrollBar()
                bar.setValue(bar.maximum())
        self._show_selected_job()

    def _show_zoo(self, rows: list[ZooRow]) -> None:
        current = self.current_model_id()
        same = [r.model_id for r in rows] == [r.model_id for r in self.zoo_rows]
        self.zoo_rows = rows
        self.zoo_total.setText(str(len(rows)))
        if same:
            for index, row in enumerate(rows):
                widget = self.zoo_list.itemWidget(self.zoo_list.item(index))
                if isinstance(widget, ZooItem):
                    widget.update_row(row)
        else:
            self.zoo_list.clear()
            for row in rows:
                item = QListWidgetItem()
                widget = ZooItem(row)
                item.setSizeHint(QSize(0, widget.sizeHint().height() + 4))
                item.setData(Qt.ItemDataRole.UserRole, row.model_id)
                self.zoo_list.addItem(item)
                self.zoo_list.setItemWidget(item, widget)
            ids = [r.model_id for r in rows]
            self.zoo_list.setCurrentRow(ids.index(current) if current in ids else 0 if rows else -1)
        self._show_header()
        self._show_promote(self.selected_job())

    def _show_jobs(self, jobs: list[JobView]) -> None:
        self.jobs = jobs
        table = self.job_table
        table.blockSignals(True)
        table.setRowCount(len(jobs))
        for row, job in enumerate(jobs):
            step = f"{job.step}/{job.total}" if job.total else str(job.step)
            values = (
                f"#{job.id}",
                job.model_id,
                job.state.lower(),
                step,
                _loss(job.loss),
                _loss(job.best_loss),
            )
            for column, text in enumerate((*values, format_eta(job.eta_seconds))):
                item = table.item(row, column)
                if item is None:
                    item = QTableWidgetItem()
                    table.setItem(row, column, item)
                if item.text() != text:
                    item.setText(text)
                if column == 2:
                    item.setForeground(QColor(STATE_COLOURS.get(job.state, COLORS.text)))
        ids = [job.id for job in jobs]
        if self.selected_job_id not in ids:
            model = self.current_model_id()
            mine = [job.id for job in jobs if job.model_id == model]
            choices: list[int | None] = [*mine, *ids, None]
            self.selected_job_id = choices[0]
        if self.selected_job_id is not None:
            table.selectRow(ids.index(self.selected_job_id))
        table.blockSignals(False)

    def _show_selected_job(self) -> None:
        job = self.selected_job()
        self.cancel_button.setEnabled(job is not None and not job.finished)
        self._show_promote(job)
        if job is None:
            for stat in (self.state_stat, self.step_stat, self.loss_stat, self.best_stat, self.eta_stat):
                stat.value.setText("—")
            self.job_progress.setValue(0)
            self.gate_view.show_decision(None)
            return
        self.state_stat.value.setText(job.state.capitalize() + (" · judging" if job.judging else ""))
        self.state_stat.value.setStyleSheet(f"color: {STATE_COLOURS.get(job.state, COLORS.text)};")
        self.step_stat.value.setText(f"{job.step} / {job.total}" if job.total else str(job.step))
        self.loss_stat.value.setText(_loss(job.loss))
        self.best_stat.value.setText(_loss(job.best_loss))
        self.eta_stat.value.setText(format_eta(job.eta_seconds) if job.state == "RUNNING" else "—")
        self.job_progress.setRange(0, 1000)
        self.job_progress.setValue(int(job.progress * 1000))
        if job.error and job.state == "FAILED":
            self.banners.show_banner("error", f"Job {job.id}: {job.error}")
        decision = next((d for d in self.decisions if d.job_id == job.id), None)
        self.gate_view.show_decision(decision, judging=job.judging)
        self.gate_view.show_history([d for d in self.decisions if d.model_id == job.model_id])

    def _show_promote(self, job: JobView | None) -> None:
        row = next((r for r in self.zoo_rows if job is not None and r.model_id == job.model_id), None)
        live = job is not None and row is not None and row.active_job_id == job.id
        self.promote_button.setEnabled(
            job is not None and job.state == "DONE" and bool(job.gguf_adapter) and not live
        )
        self.promote_button.setText("Active" if live else "Promote")
        self.promote_button.setToolTip(
            "This job's adapter is the one in use"
            if live
            else "Make this job's adapter active whatever the gate said (recorded)"
        )

    def _show_header(self) -> None:
        row = self.current_row()
        if row is None:
            self.title.setText("Training")
            self.subtitle.setText("No models in the zoo")
            return
        self.title.setText(row.name)
        promote = "goes live when the gate approves" if row.auto_promote else "a person promotes"
        self.subtitle.setText(f"{TASK_NAMES.get(row.task, row.task)} · {row.active_label} · {promote}")
        self.rollback_button.setEnabled(row.active_adapter is not None)

    # Selection ----------------------------------------------------------------------------------

    def current_row(self) -> ZooRow | None:
        index = self.zoo_list.currentRow()
        return self.zoo_rows[index] if 0 <= index < len(self.zoo_rows) else None

    def current_model_id(self) -> str | None:
        row = self.current_row()
        return row.model_id if row else None

    def selected_job(self) -> JobView | None:
        return next((job for job in self.jobs if job.id == self.selected_job_id), None)

    def _zoo_selected(self, _index: int) -> None:
        self._show_header()

    def _job_selected(self) -> None:
        rows = self.job_table.selectionModel().selectedRows()
        if rows and rows[0].row() < len(self.jobs):
            self.selected_job_id = self.jobs[rows[0].row()].id
            self._show_selected_job()
            self.poll()

    # Actions --------------------------------------------------------------------------------------

    def _act(self, op: Any, done: Any = None) -> None:
        def success(result: Any) -> None:
            if done is not None:
                done(result)
            self._polls = 0
            self.poll()

        QueryOp(parent=self, op=op, success=success).failure(self._failed).run_in_background()

    def _failed(self, error: BaseException) -> None:
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        self.banners.show_banner("error", message)
        self.error.emit(message)

    def train_now(self) -> None:
        model_id = self.current_model_id()
        if self.service is None or model_id is None:
            return
        service = self.service

        def queued(job: JobView) -> None:
            self.selected_job_id = job.id
            self.tabs.setCurrentIndex(0)

        self._act(service.train_now(model_id), queued)

    def cancel(self) -> None:
        job = self.selected_job()
        if self.service is not None and job is not None:
            service = self.service
            self._act(service.cancel(job.id))

    def promote(self) -> None:
        job = self.selected_job()
        if self.service is not None and job is not None:
            service = self.service
            self._act(service.promote(job.id))

    def rollback(self) -> None:
        model_id = self.current_model_id()
        if self.service is not None and model_id is not None:
            service = self.service
            self._act(service.rollback(model_id))

    def import_dataset(self, path: Path | None = None) -> None:
        """Ask for a JSONL file and add its good rows to the current model (``path`` skips the dialog)."""
        model_id = self.current_model_id()
        if self.service is None or model_id is None:
            return
        if path is None:
            chosen, _ = QFileDialog.getOpenFileName(
                self, f"Import examples for {model_id}", "", "JSON lines (*.jsonl *.json);;All files (*)"
            )
            if not chosen:
                return
            path = Path(chosen)
        service = self.service

        def imported(report: Any) -> None:
            summary = report.summary(model_id)
            kind = "warning" if report.problems or report.missing_labels else "info"
            self.banners.show_banner(kind, summary.replace("\n", " "))

        self._act(service.import_dataset(model_id, path), imported)

    def export_dataset(self, path: Path | None = None) -> None:
        """Ask where to write the current model's dataset (``path`` skips the dialog)."""
        model_id = self.current_model_id()
        if self.service is None or model_id is None:
            return
        fmt = self.format_picker.currentText()
        if path is None:
            chosen, _ = QFileDialog.getSaveFileName(
                self, "Export dataset", f"{model_id}-{fmt}.jsonl", "JSON lines (*.jsonl)"
            )
            if not chosen:
                return
            path = Path(chosen)
        service, target = self.service, path

        def exported(count: int) -> None:
            self.banners.show_banner("info", f"Wrote {count} {fmt} records to {target}.")

        self._act(service.export(model_id, fmt, target), exported)
