"""Changing one message in place: the inline editor and the inline "Delete this message?" row.

Both are built the first time they are used, so a long chat does not pay for an editor per
message it shows.  ``EditsInPlace`` is the part of ``MessageWidget`` that shows them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPlainTextEdit, QPushButton, QVBoxLayout, QWidget

from nexus_desktop.ui.widgets import push_button

if TYPE_CHECKING:
    from PySide6.QtCore import SignalInstance

    from nexus_desktop.db.tables import Message
    from nexus_desktop.ui.message_text import MessageText

EMPTY_EDIT_HINT = "A message can't be empty; delete it instead."


class MessageEditor(QPlainTextEdit):
    save_requested = Signal()
    cancel_requested = Signal()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        enter = event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
        if enter and event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.save_requested.emit()
        elif event.key() == Qt.Key.Key_Escape:
            self.cancel_requested.emit()
        else:
            super().keyPressEvent(event)


class InlineEdit(QWidget):
    """The editor with Cancel and Save under it; Ctrl+Enter saves, Esc cancels."""

    saved = Signal(str)
    cancelled = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(8)
        self.editor = MessageEditor()
        self.editor.setObjectName("MessageEditor")
        self.editor.setAccessibleName("Edit message")
        self.editor.save_requested.connect(self._save)
        self.editor.cancel_requested.connect(self.cancelled.emit)
        self.hint = QLabel("")
        self.hint.setObjectName("InlineHint")
        self.hint.hide()
        buttons = QHBoxLayout()
        buttons.setContentsMargins(0, 0, 0, 0)
        self.cancel_button = push_button("Cancel")
        self.save_button = push_button("Save", role="primary")
        self.cancel_button.clicked.connect(self.cancelled.emit)
        self.save_button.clicked.connect(self._save)
        buttons.addWidget(self.hint, 1)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.save_button)
        layout.addWidget(self.editor)
        layout.addLayout(buttons)

    def start(self, text: str, height: int) -> None:
        self.hint.hide()
        self.editor.setPlainText(text)
        self.editor.setFixedHeight(height)
        self.show()
        self.editor.setFocus()

    def _save(self) -> None:
        text = self.editor.toPlainText()
        if not text.strip():
            self.hint.setText(EMPTY_EDIT_HINT)
            self.hint.show()
            return
        self.saved.emit(text)


class DeleteConfirm(QWidget):
    """ "Delete this message?" with Keep and Delete, under the message."""

    confirmed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 0, 4, 0)
        label = QLabel("Delete this message?")
        label.setObjectName("DeleteConfirm")
        self.yes_button = push_button("Delete", role="danger")
        self.no_button = push_button("Keep")
        self.yes_button.clicked.connect(self._confirm)
        self.no_button.clicked.connect(self.hide)
        layout.addWidget(label)
        layout.addWidget(self.no_button)
        layout.addWidget(self.yes_button)

    def _confirm(self) -> None:
        self.hide()
        self.confirmed.emit()


class EditsInPlace:
    """The editing half of ``MessageWidget``: what it declares here, ``MessageWidget`` provides.

    The editor and the delete row are built the first time they are used.
    """

    message: Message
    text_label: MessageText
    bubble_layout: QVBoxLayout
    column: QVBoxLayout
    edit_saved: SignalInstance
    delete_confirmed: SignalInstance
    _align: Qt.AlignmentFlag
    _max_text_width: int
    _inline_edit: InlineEdit | None
    _delete_confirm: DeleteConfirm | None

    if TYPE_CHECKING:

        @property
        def message_id(self) -> int: ...

    def _edit_panel(self) -> InlineEdit:
        if self._inline_edit is None:
            self._inline_edit = InlineEdit()
            self._inline_edit.hide()
            self._inline_edit.editor.setMinimumWidth(self._max_text_width)
            self._inline_edit.saved.connect(self._save_edit)
            self._inline_edit.cancelled.connect(self.cancel_edit)
            self.bubble_layout.addWidget(self._inline_edit)
        return self._inline_edit

    @property
    def editor(self) -> QPlainTextEdit:
        return self._edit_panel().editor

    @property
    def edit_save_button(self) -> QPushButton:
        return self._edit_panel().save_button

    @property
    def edit_cancel_button(self) -> QPushButton:
        return self._edit_panel().cancel_button

    @property
    def edit_hint(self) -> QLabel:
        return self._edit_panel().hint

    @property
    def editing(self) -> bool:
        return self._inline_edit is not None and not self._inline_edit.isHidden()

    def start_edit(self) -> None:
        if self._delete_confirm is not None:
            self._delete_confirm.hide()
        height = min(320, max(90, self.text_label.sizeHint().height() + 40))
        self.text_label.hide()
        self._edit_panel().start(self.message.content, height)

    def cancel_edit(self) -> None:
        if self._inline_edit is not None:
            self._inline_edit.hide()
        self.text_label.show()

    def _save_edit(self, text: str) -> None:
        self.cancel_edit()
        self.edit_saved.emit(self.message_id, text)

    @property
    def delete_row(self) -> DeleteConfirm:
        if self._delete_confirm is None:
            self._delete_confirm = DeleteConfirm()
            self._delete_confirm.hide()
            self._delete_confirm.confirmed.connect(lambda: self.delete_confirmed.emit(self.message_id))
            self.column.addWidget(self._delete_confirm, 0, self._align)
        return self._delete_confirm

    @property
    def delete_yes_button(self) -> QPushButton:
        return self.delete_row.yes_button

    @property
    def delete_no_button(self) -> QPushButton:
        return self.delete_row.no_button

    def _ask_delete(self) -> None:
        self.delete_row.show()
