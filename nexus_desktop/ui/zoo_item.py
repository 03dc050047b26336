"""One row of the Training page's model zoo: name, task, active adapter, examples vs threshold."""

from __future__ import annotations

from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QVBoxLayout, QWidget

from nexus_desktop.training.service import ZooRow
from nexus_desktop.ui.widgets import set_style_property

TASK_NAMES = {
    "chat_persona": "chat persona",
    "classifier": "classifier",
    "tool_dispatch": "tool dispatch",
    "evaluator": "evaluator",
}


class ZooItem(QWidget):
    """One zoo model: name, task and active adapter, and collected examples against its threshold."""

    def __init__(self, row: ZooRow) -> None:
        super().__init__()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 9, 12, 10)
        layout.setSpacing(3)
        top = QHBoxLayout()
        self.name = QLabel(row.name)
        self.name.setObjectName("ZooName")
        self.count = QLabel()
        self.count.setObjectName("ZooCount")
        top.addWidget(self.name, 1)
        top.addWidget(self.count)
        layout.addLayout(top)
        self.meta = QLabel()
        self.meta.setObjectName("ZooMeta")
        layout.addWidget(self.meta)
        self.bar = QProgressBar()
        self.bar.setTextVisible(False)
        self.bar.setFixedHeight(6)
        layout.addSpacing(3)
        layout.addWidget(self.bar)
        self.update_row(row)

    def update_row(self, row: ZooRow) -> None:
        self.row = row
        self.count.setText(f"{row.new_examples} / {row.threshold}")
        self.meta.setText(f"{TASK_NAMES.get(row.task, row.task)} · {row.active_label}")
        self.bar.setRange(0, max(1, row.threshold))
        self.bar.setValue(min(row.new_examples, row.threshold))
        set_style_property(self.bar, "ready", row.ready)
        ready = "ready to train" if row.ready else f"{row.threshold - row.new_examples} more to train"
        self.setToolTip(
            f"{row.new_examples} new examples since the last run ({row.total_examples} collected); "
            f"{ready}. "
            + ("Promotes on its own when the gate approves." if row.auto_promote else "A person promotes.")
        )
