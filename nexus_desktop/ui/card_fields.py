"""Editors for the list-shaped parts of a card: alternate greetings and lorebook entries."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QScrollArea,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from nexus_desktop.ui.widgets import icon_button, push_button


class GreetingsEditor(QWidget):
    """One text box per alternate greeting, each removable, plus "Add greeting"."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        body = QWidget()
        self._rows = QVBoxLayout(body)
        self._rows.setContentsMargins(0, 0, 6, 0)
        self._rows.setSpacing(10)
        self._rows.addStretch(1)
        scroll.setWidget(body)
        outer.addWidget(scroll, 1)
        self.add_button = push_button("Add greeting", icon_name="plus")
        self.add_button.clicked.connect(lambda: self.add_greeting("").setFocus())
        outer.addWidget(self.add_button, 0, Qt.AlignmentFlag.AlignLeft)
        self.editors: list[QPlainTextEdit] = []
        self._rows_by_editor: dict[QPlainTextEdit, tuple[QWidget, QLabel]] = {}

    def add_greeting(self, text: str) -> QPlainTextEdit:
        row = QWidget()
        layout = QVBoxLayout(row)
        layout.setContentsMargins(0, 0, 0, 0)
        header = QHBoxLayout()
        label = QLabel()
        label.setObjectName("FieldHelp")
        remove = icon_button("trash", "Remove this greeting", size=14)
        header.addWidget(label)
        header.addStretch(1)
        header.addWidget(remove)
        editor = QPlainTextEdit(text)
        editor.setFixedHeight(96)
        layout.addLayout(header)
        layout.addWidget(editor)
        self._rows.insertWidget(self._rows.count() - 1, row)
        self.editors.append(editor)
        self._rows_by_editor[editor] = (row, label)
        remove.clicked.connect(lambda: self._remove(row, editor))
        self._renumber()
        return editor

    def _remove(self, row: QWidget, editor: QPlainTextEdit) -> None:
        self.editors.remove(editor)
        del self._rows_by_editor[editor]
        # Hidden and deleted by Qt on the UI thread; un-parenting would let Python's garbage
        # collector destroy it later on whatever thread it runs on.
        row.hide()
        row.deleteLater()
        self._renumber()

    def _renumber(self) -> None:
        for number, editor in enumerate(self.editors, start=2):
            self._rows_by_editor[editor][1].setText(f"Greeting {number} (a swipe of the first message)")
            editor.setAccessibleName(f"Greeting {number}")

    def set_greetings(self, greetings: list[str]) -> None:
        for editor in list(self.editors):
            self._remove(self._rows_by_editor[editor][0], editor)
        for greeting in greetings:
            self.add_greeting(greeting)

    def greetings(self) -> list[str]:
        return [e.toPlainText() for e in self.editors if e.toPlainText().strip()]


class LorebookTable(QWidget):
    """Lorebook entries as rows: keys, content, constant, enabled. Other entry fields are kept."""

    KEYS, CONTENT, CONSTANT, ENABLED = range(4)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        help_text = QLabel(
            "Entries are added to the prompt when one of their keys appears in the recent chat "
            "(constant entries always are). Separate keys with commas."
        )
        help_text.setObjectName("FieldHelp")
        help_text.setWordWrap(True)
        layout.addWidget(help_text)
        self.table = QTableWidget(0, 4)
        self.table.setAccessibleName("Lorebook entries")
        self.table.setHorizontalHeaderLabels(["Keys", "Content", "Constant", "Enabled"])
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(self.KEYS, QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(self.CONTENT, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(self.CONSTANT, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(self.ENABLED, QHeaderView.ResizeMode.ResizeToContents)
        self.table.setColumnWidth(self.KEYS, 170)
        self.table.verticalHeader().hide()
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setWordWrap(True)
        layout.addWidget(self.table, 1)
        buttons = QHBoxLayout()
        self.add_button = push_button("Add entry", icon_name="plus")
        self.remove_button = push_button("Remove entry", icon_name="trash")
        self.add_button.clicked.connect(lambda: self.add_entry({}))
        self.remove_button.clicked.connect(self._remove_selected)
        buttons.addWidget(self.add_button)
        buttons.addWidget(self.remove_button)
        buttons.addStretch(1)
        layout.addLayout(buttons)
        self._originals: list[dict[str, Any]] = []
        self._book: dict[str, Any] | None = None

    def set_book(self, book: dict[str, Any] | None) -> None:
        self._book = dict(book) if book else None
        self.table.setRowCount(0)
        self._originals = []
        for entry in (book or {}).get("entries") or []:
            self.add_entry(entry)

    def add_entry(self, entry: dict[str, Any]) -> None:
        row = self.table.rowCount()
        self.table.insertRow(row)
        self._originals.append(dict(entry))
        self.table.setItem(row, self.KEYS, QTableWidgetItem(", ".join(entry.get("keys") or [])))
        self.table.setItem(row, self.CONTENT, QTableWidgetItem(str(entry.get("content") or "")))
        for column, value, name in (
            (self.CONSTANT, bool(entry.get("constant")), "Constant: always in the prompt"),
            (self.ENABLED, entry.get("enabled", True), "Enabled"),
        ):
            box = QCheckBox()
            box.setAccessibleName(name)
            box.setToolTip(name)
            box.setChecked(bool(value))
            holder = QWidget()
            holder_layout = QHBoxLayout(holder)
            holder_layout.setContentsMargins(0, 0, 0, 0)
            holder_layout.addWidget(box, 0, Qt.AlignmentFlag.AlignCenter)
            self.table.setCellWidget(row, column, holder)

    def _checked(self, row: int, column: int) -> bool:
        holder = self.table.cellWidget(row, column)
        box = holder.findChild(QCheckBox) if holder is not None else None
        return bool(box is not None and box.isChecked())

    def _remove_selected(self) -> None:
        rows = sorted({index.row() for index in self.table.selectedIndexes()}, reverse=True)
        for row in rows:
            self.table.removeRow(row)
            del self._originals[row]

    def book(self) -> dict[str, Any] | None:
        """The lorebook as card data, or None when it has no entries and never had a book."""
        entries = []
        for row in range(self.table.rowCount()):
            keys_item, content_item = self.table.item(row, self.KEYS), self.table.item(row, self.CONTENT)
            keys = [k.strip() for k in (keys_item.text() if keys_item else "").split(",") if k.strip()]
            content = content_item.text() if content_item else ""
            if not keys and not content.strip():
                continue
            entry = dict(self._originals[row])
            entry.update(
                keys=keys,
                content=content,
                constant=self._checked(row, self.CONSTANT),
                enabled=self._checked(row, self.ENABLED),
            )
            entry.setdefault("insertion_order", row)
            entry.setdefault("extensions", {})
            entries.append(entry)
        if not entries and self._book is None:
            return None
        book = dict(self._book or {})
        book["entries"] = entries
        book.setdefault("extensions", {})
        return book
