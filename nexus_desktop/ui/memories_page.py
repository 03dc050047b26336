"""The character editor's Memories page: what a character remembers across chats (Engram).

It lists the character's memories and the shared ones (marked "Shared"), lets the user forget any
of them and remember a new one.  Every read and write goes through ``Engram`` off the Qt thread
(``QueryOp``); the list reloads when a ``Change("memories")`` is heard, whoever made it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from nexus_desktop.ui.ops import QueryOp
from nexus_desktop.ui.widgets import help_label, push_button

if TYPE_CHECKING:
    from nexus_desktop.changes import Change
    from nexus_desktop.db.tables import Memory
    from nexus_desktop.engram.service import Engram

SHARED = "Shared"
_SOURCES = {"chat": "From a chat", "notes": "From notes", "user": "Added by you"}


class MemoriesPage(QWidget):
    TEXT, SCOPE, SOURCE = range(3)

    def __init__(
        self,
        engram: Engram,
        character_id: int,
        character_name: str,
        show_error: Callable[[BaseException], object],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.engram = engram
        self.character_id = character_id
        self.character_name = character_name
        self._show_error = show_error
        self.memories: list[Memory] = []
        self._build()
        # Changes may be emitted on any thread: the reload is queued onto this widget's (Qt) thread.
        self._unsubscribe = engram.changes.subscribe(self._heard)
        self.destroyed.connect(lambda *_: self._unsubscribe())
        self.reload()

    def _build(self) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 16, 16, 16)
        layout.addWidget(
            help_label(
                f"What {self.character_name} remembers across chats: the most relevant memories join "
                "the prompt of each reply (Settings → App). Shared memories are remembered by every "
                "character."
            )
        )
        self.table = QTableWidget(0, 3)
        self.table.setAccessibleName(f"{self.character_name}'s memories")
        self.table.setHorizontalHeaderLabels(["Memory", "Kept for", "Source"])
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(self.TEXT, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(self.SCOPE, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(self.SOURCE, QHeaderView.ResizeMode.ResizeToContents)
        self.table.verticalHeader().hide()
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setWordWrap(True)
        self.table.itemSelectionChanged.connect(self._selection_changed)
        layout.addWidget(self.table, 1)

        self.empty_label = help_label(f"{self.character_name} remembers nothing yet.")
        layout.addWidget(self.empty_label)

        adding = QHBoxLayout()
        self.new_text = QLineEdit()
        self.new_text.setPlaceholderText("A fact to remember, e.g. “The user's sister is called Ana.”")
        self.new_text.setAccessibleName("New memory")
        self.new_text.returnPressed.connect(self.add)
        self.shared_box = QCheckBox("Shared")
        self.shared_box.setAccessibleName("Remember for every character")
        self.shared_box.setToolTip("Remember it for every character, not only this one")
        self.add_button = push_button("Remember", icon_name="plus")
        self.add_button.setAccessibleName("Remember this memory")
        self.add_button.clicked.connect(self.add)
        adding.addWidget(self.new_text, 1)
        adding.addWidget(self.shared_box)
        adding.addWidget(self.add_button)
        layout.addLayout(adding)

        buttons = QHBoxLayout()
        self.forget_button = push_button("Forget selected", icon_name="trash")
        self.forget_button.setAccessibleName("Forget the selected memories")
        self.forget_button.setEnabled(False)
        self.forget_button.clicked.connect(self.forget_selected)
        buttons.addWidget(self.forget_button)
        buttons.addStretch(1)
        layout.addLayout(buttons)

    # Reading ------------------------------------------------------------------------------

    def _heard(self, change: Change) -> None:
        if change.kind == "memories" and change.character_id in (None, self.character_id):
            QTimer.singleShot(0, self, self.reload)

    def reload(self) -> None:
        QueryOp(parent=self, op=self.engram.list(self.character_id), success=self.show_memories).failure(
            self._show_error
        ).run_in_background()

    def show_memories(self, memories: list[Memory]) -> None:
        self.memories = memories
        self.table.setRowCount(len(memories))
        for row, memory in enumerate(memories):
            text = QTableWidgetItem(memory.text)
            text.setToolTip(memory.text)
            text.setData(Qt.ItemDataRole.UserRole, memory.id)
            shared = memory.character_id is None
            scope = QTableWidgetItem(SHARED if shared else self.character_name)
            if shared:
                scope.setToolTip("Remembered by every character")
            self.table.setItem(row, self.TEXT, text)
            self.table.setItem(row, self.SCOPE, scope)
            self.table.setItem(row, self.SOURCE, QTableWidgetItem(_SOURCES.get(memory.source, memory.source)))
        self.table.resizeRowsToContents()
        self.empty_label.setVisible(not memories)
        self._selection_changed()

    def _selection_changed(self) -> None:
        self.forget_button.setEnabled(bool(self.selected_ids()))

    def selected_ids(self) -> list[int]:
        rows = sorted({index.row() for index in self.table.selectionModel().selectedRows()})
        return [memory_id for row in rows if (memory_id := self.memories[row].id) is not None]

    # Writing ------------------------------------------------------------------------------

    def add(self) -> None:
        text = self.new_text.text()
        if not text.strip():
            self.new_text.setFocus()
            return
        self.add_button.setEnabled(False)

        def added(_memory: Memory) -> None:
            self.new_text.clear()
            self.shared_box.setChecked(False)
            self.add_button.setEnabled(True)

        def failed(error: BaseException) -> None:
            self.add_button.setEnabled(True)  # the text stays in the field: nothing is lost
            self._show_error(error)

        QueryOp(
            parent=self,
            op=self.engram.imprint(self.character_id, text, shared=self.shared_box.isChecked()),
            success=added,
        ).failure(failed).run_in_background()

    def forget_selected(self) -> None:
        ids = self.selected_ids()
        if not ids:
            return

        async def forget_all() -> None:
            for memory_id in ids:
                await self.engram.forget(memory_id)

        QueryOp[None](parent=self, op=forget_all).failure(self._show_error).run_in_background()
