"""One gate decision: the verdict, the policy, the reason and the numbers side by side
(candidate vs incumbent vs base model vs the lexical baseline, a bag-of-words classifier trained on
the same data; older decisions and chat models have no baseline: "—")."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from nexus_desktop.training.gate import LOWER_IS_BETTER
from nexus_desktop.training.service import GateView
from nexus_desktop.ui.theme import COLORS
from nexus_desktop.ui.widgets import set_style_property

COLUMNS = ("Metric", "Candidate", "Incumbent", "Base model", "Bag of words")


def verdict_text(view: GateView) -> tuple[str, str]:
    """The pill's words and its state (promoted, approved, rejected)."""
    if view.promoted:
        return "PROMOTED", "promoted"
    if view.approved:
        return "APPROVED", "approved"
    return "REJECTED", "rejected"


def _number(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.4g}" if abs(value) >= 1 or value == 0 else f"{value:.3f}"


class GateDecisionView(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("GateView")
        self.view: GateView | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 14, 16, 14)
        layout.setSpacing(10)

        head = QHBoxLayout()
        head.setSpacing(10)
        self.verdict = QLabel("—")
        self.verdict.setObjectName("VerdictPill")
        self.verdict.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.title = QLabel("No gate decision yet")
        self.title.setObjectName("GateTitle")
        head.addWidget(self.verdict)
        head.addWidget(self.title, 1)
        self.policy = QLabel("")
        self.policy.setObjectName("GatePolicy")
        head.addWidget(self.policy)
        layout.addLayout(head)

        self.reason = QLabel("A finished job is benchmarked and judged here before its adapter goes live.")
        self.reason.setObjectName("GateReason")
        self.reason.setWordWrap(True)
        self.reason.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.reason)

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("GateTable")
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.verticalHeader().setDefaultSectionSize(30)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.horizontalHeader().setDefaultAlignment(
            Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
        )
        metric_header = self.table.horizontalHeaderItem(0)
        assert metric_header is not None
        metric_header.setTextAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.table.setShowGrid(False)
        self.table.setFrameShape(QFrame.Shape.NoFrame)
        layout.addWidget(self.table, 2)

        history_label = QLabel("DECISION HISTORY")
        history_label.setObjectName("SectionLabel")
        layout.addWidget(history_label)
        self.history = QListWidget()
        self.history.setObjectName("GateHistory")
        self.history.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.history.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        layout.addWidget(self.history, 1)

        self.override = QLabel("")
        self.override.setObjectName("GateOverride")
        self.override.setWordWrap(True)
        self.override.hide()
        layout.addWidget(self.override)
        self.show_decision(None)

    def show_decision(self, view: GateView | None, judging: bool = False) -> None:
        self.view = view
        if view is None:
            self.verdict.setText("JUDGING" if judging else "PENDING")
            set_style_property(self.verdict, "state", "pending")
            self.title.setText(
                "The gate is benchmarking this adapter…" if judging else "No gate decision yet"
            )
            self.policy.setText("")
            self.table.setRowCount(0)
            self.override.hide()
            return
        text, state = verdict_text(view)
        self.verdict.setText(text)
        set_style_property(self.verdict, "state", state)
        job = f"job {view.job_id}" if view.job_id is not None else "a hand-picked adapter"
        self.title.setText(f"{view.model_id} · {job} · {view.at.astimezone():%Y-%m-%d %H:%M}")
        params = ", ".join(f"{k} {v}" for k, v in view.parameters.items())
        self.policy.setText(f"{view.policy}  ({params})" if params else view.policy)
        self.reason.setText(view.reason)
        self._fill_table(view)
        self.override.setText(view.override)
        self.override.setVisible(bool(view.override))

    def show_history(self, views: list[GateView]) -> None:
        """Every decision for the model, newest first, one line each."""
        lines = []
        for view in views:
            text, _ = verdict_text(view)
            job = f"job {view.job_id}" if view.job_id is not None else "by hand"
            lines.append(f"{view.at.astimezone():%m-%d %H:%M}  {text.lower():<9} {job} · {view.reason}")
        if lines != [self.history.item(i).text() for i in range(self.history.count())]:
            self.history.clear()
            self.history.addItems(lines)

    def _fill_table(self, view: GateView) -> None:
        columns = (view.candidate, view.incumbent, view.base, view.baseline)
        metrics: list[str] = []
        for values in columns:
            for name in values or {}:
                if name not in metrics:
                    metrics.append(name)
        self.table.setRowCount(len(metrics))
        for row, metric in enumerate(metrics):
            label = QTableWidgetItem(f"{metric} {'↓' if metric in LOWER_IS_BETTER else '↑'}")
            label.setForeground(QColor(COLORS.text_dim))
            self.table.setItem(row, 0, label)
            candidate = view.candidate.get(metric)
            for column, values in enumerate(columns, start=1):
                item = QTableWidgetItem(_number((values or {}).get(metric)))
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                others = [
                    v[metric]
                    for v in (view.incumbent, view.base, view.baseline)
                    if v and v.get(metric) is not None
                ]
                if column == 1 and candidate is not None and others:
                    lower = metric in LOWER_IS_BETTER
                    best = all(candidate <= o if lower else candidate >= o for o in others)
                    item.setForeground(QColor(COLORS.success if best else COLORS.danger))
                self.table.setItem(row, column, item)
