"""The keyboard shortcuts, listed from the table they are registered from (``shortcuts.SHORTCUTS``)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QGridLayout, QHBoxLayout, QLabel, QScrollArea, QVBoxLayout, QWidget

from nexus_desktop.ui.shortcuts import SHORTCUTS, TYPING_KEYS
from nexus_desktop.ui.widgets import fit_to_screen, push_button


class ShortcutsDialog(QDialog):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        self.setAccessibleName("Keyboard shortcuts")
        fit_to_screen(self, 560, 480)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(24, 20, 24, 18)
        layout.setSpacing(12)
        title = QLabel("Keyboard shortcuts")
        title.setObjectName("DialogTitle")
        layout.addWidget(title)

        body = QWidget()
        self.grid = QGridLayout(body)
        self.grid.setContentsMargins(0, 0, 8, 0)
        self.grid.setHorizontalSpacing(18)
        self.grid.setVerticalSpacing(8)
        self.grid.setColumnStretch(1, 1)
        self.rows: list[tuple[str, str]] = []
        """(keys, what they do) as listed, in order."""
        self._section("In the chat")
        for shortcut in SHORTCUTS:
            self._row(shortcut.label, shortcut.does)
        self._section("While typing")
        for keys, does in TYPING_KEYS:
            self._row(keys, does)
        self.grid.setRowStretch(self.grid.rowCount(), 1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setWidget(body)
        layout.addWidget(scroll, 1)

        footer = QHBoxLayout()
        footer.addStretch(1)
        self.close_button = push_button("Close", role="primary")
        self.close_button.clicked.connect(self.close)
        footer.addWidget(self.close_button)
        layout.addLayout(footer)

    def _section(self, title: str) -> None:
        label = QLabel(title.upper())
        label.setObjectName("SectionLabel")
        row = self.grid.rowCount()
        self.grid.addWidget(label, row, 0, 1, 2)

    def _row(self, keys: str, does: str) -> None:
        row = self.grid.rowCount()
        key_label = QLabel(keys)
        key_label.setObjectName("ShortcutKeys")
        text = QLabel(does)
        text.setWordWrap(True)
        self.grid.addWidget(key_label, row, 0, Qt.AlignmentFlag.AlignTop)
        self.grid.addWidget(text, row, 1)
        self.rows.append((keys, does))
