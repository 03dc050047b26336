"""The author's note dialog, and replacing a text box's text as one undo step.

Apart from the writing bar (``ui/writing_bar.py``): the bar is on screen from the start, and these
are not needed until the user asks (their Qt classes cost PySide6 time to create).
"""

from __future__ import annotations

from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from nexus_desktop.ui.widgets import push_button

NOTE_ROLES = (("system", "System"), ("user", "User"), ("assistant", "Character"))


def replace_text(editor: QPlainTextEdit, text: str) -> None:
    """Put ``text`` in the editor in place of what it held, as one step Ctrl+Z takes back."""
    cursor = editor.textCursor()
    cursor.select(QTextCursor.SelectionType.Document)
    cursor.insertText(text)
    editor.setTextCursor(cursor)


class AuthorNoteDialog(QDialog):
    """Edit a chat's author's note: its text, how deep in the chat it goes, and as whose message."""

    def __init__(self, text: str, depth: int, role: str, parent: QWidget | None = None) -> None:
        from nexus_desktop.chat.writing import MAX_NOTE_DEPTH

        super().__init__(parent)
        self.setWindowTitle("Author's note")
        self.setMinimumWidth(420)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(20, 16, 20, 16)
        layout.setSpacing(10)
        title = QLabel("Author's note")
        title.setObjectName("DialogTitle")
        layout.addWidget(title)
        hint = QLabel(
            "Text this chat's prompt carries near its end, to steer the story (the style, what "
            "happens next). {{char}} and {{user}} are filled in. Leave it empty for none."
        )
        hint.setObjectName("FieldHelp")
        hint.setWordWrap(True)
        layout.addWidget(hint)

        self.editor = QPlainTextEdit(text)
        self.editor.setAccessibleName("Author's note text")
        self.editor.setPlaceholderText("[Style: terse, tense. The storm reaches the ship soon.]")
        self.editor.setTabChangesFocus(True)
        self.editor.setMinimumHeight(90)
        layout.addWidget(self.editor, 1)

        form = QFormLayout()
        self.depth_box = QSpinBox()
        self.depth_box.setRange(0, MAX_NOTE_DEPTH)
        self.depth_box.setValue(depth)
        self.depth_box.setAccessibleName("Depth")
        self.depth_box.setToolTip(
            "How many messages from the end of the chat it goes in; 0 is after the last one"
        )
        self.role_box = QComboBox()
        self.role_box.setAccessibleName("Sent as")
        self.role_box.setToolTip("Whose message the note is sent as")
        for value, label in NOTE_ROLES:
            self.role_box.addItem(label, value)
        self.role_box.setCurrentIndex(max(0, self.role_box.findData(role)))
        form.addRow("Depth", self.depth_box)
        form.addRow("Sent as", self.role_box)
        layout.addLayout(form)

        buttons = QHBoxLayout()
        buttons.addStretch(1)
        self.cancel_button = push_button("Cancel")
        self.cancel_button.clicked.connect(self.reject)
        self.save_button = push_button("Save", role="primary")
        self.save_button.setDefault(True)
        self.save_button.clicked.connect(self.accept)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.save_button)
        layout.addLayout(buttons)

    @property
    def note(self) -> tuple[str, int, str]:
        """(text, depth, role) as the user set them."""
        return self.editor.toPlainText(), self.depth_box.value(), str(self.role_box.currentData())
