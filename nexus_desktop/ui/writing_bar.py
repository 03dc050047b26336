"""The writing tools beside the message box: Continue, and a menu with Impersonate and the
author's note; and the author's note dialog.  ``ChatView`` does the work (``ui/chat_writing.py``).
"""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QAction, QTextCursor
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QMenu,
    QPlainTextEdit,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from nexus_desktop.ui.widgets import icon_button, push_button

BUTTON_SIZE = 40
BUTTON_WIDTH = 34  # narrower than tall: at 800x500 the message box keeps room to type
CONTINUE_TIP = "Continue the last reply: the character writes more of it (Alt+C)"
IMPERSONATE_TIP = "Impersonate: write your next message in your persona's voice, for you to edit (Alt+I)"
NOTE_ROLES = (("system", "System"), ("user", "User"), ("assistant", "Character"))


def replace_text(editor: QPlainTextEdit, text: str) -> None:
    """Put ``text`` in the editor in place of what it held, as one step Ctrl+Z takes back."""
    cursor = editor.textCursor()
    cursor.select(QTextCursor.SelectionType.Document)
    cursor.insertText(text)
    editor.setTextCursor(cursor)


class WritingBar(QWidget):
    """Continue as a button; Impersonate and the author's note in a menu."""

    continue_requested = Signal()
    impersonate_requested = Signal()
    note_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(0)
        self.continue_button = icon_button("continue", CONTINUE_TIP, role="icon", size=18)
        self.continue_button.setAccessibleName("Continue the last reply")
        self.continue_button.setFixedSize(BUTTON_WIDTH, BUTTON_SIZE)
        self.continue_button.clicked.connect(self.continue_requested.emit)

        self.tools_button = icon_button(
            "wand", "Writing tools: impersonate, author's note", role="icon", size=18
        )
        self.tools_button.setAccessibleName("Writing tools")
        self.tools_button.setFixedSize(BUTTON_WIDTH, BUTTON_SIZE)
        self.tools_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.tools_button.setStyleSheet("QToolButton::menu-indicator { image: none; width: 0; }")
        self.menu = QMenu(self.tools_button)
        self.continue_action = self._action("Continue the last reply\tAlt+C", CONTINUE_TIP)
        self.continue_action.triggered.connect(self.continue_requested.emit)
        self.impersonate_action = self._action("Impersonate: write my next message\tAlt+I", IMPERSONATE_TIP)
        self.impersonate_action.triggered.connect(self.impersonate_requested.emit)
        self.menu.addSeparator()
        self.note_action = self._action("Author's note…", "")
        self.note_action.triggered.connect(self.note_requested.emit)
        self.tools_button.setMenu(self.menu)
        self.show_note("")
        row.addWidget(self.tools_button, 0, Qt.AlignmentFlag.AlignBottom)
        row.addWidget(self.continue_button, 0, Qt.AlignmentFlag.AlignBottom)

    def _action(self, text: str, tip: str) -> QAction:
        action = self.menu.addAction(text)
        action.setToolTip(tip)
        action.setStatusTip(tip)
        return action

    def show_note(self, note: str) -> None:
        """Say in the menu whether the open chat has an author's note."""
        if note.strip():
            self.note_action.setText("Author's note (on)…")
            self.note_action.setToolTip(f"This chat's author's note: {note.strip()[:80]}")
        else:
            self.note_action.setText("Author's note…")
            self.note_action.setToolTip("Text put into this chat's prompt a few messages from the end")

    def set_available(self, available: bool) -> None:
        """Usable with a chat open and no reply being written."""
        for widget in (self.continue_button, self.tools_button):
            widget.setEnabled(available)

    def sizeHint(self) -> QSize:
        return QSize(2 * BUTTON_WIDTH, BUTTON_SIZE)


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


HIDE_TIP = "Hide from the prompt: the message stays here, but the character no longer reads it"
SHOW_TIP = "Hidden from the prompt; click to let the character read it again"
HIDDEN_OPACITY = 0.45


def hidden_marker() -> QLabel:
    """The "hidden" mark beside a message's time (shown while it is hidden)."""
    marker = QLabel("hidden from the prompt")
    marker.setObjectName("MessageMeta")
    marker.setToolTip(SHOW_TIP)
    marker.hide()
    return marker


def show_hidden(bubble: QWidget, marker: QLabel, button: QToolButton, hidden: bool) -> None:
    """A hidden message is dimmed and marked; its eye button says what a click does."""
    from PySide6.QtWidgets import QGraphicsOpacityEffect

    from nexus_desktop.ui import icons

    marker.setVisible(hidden)
    if hidden:
        dim = QGraphicsOpacityEffect(bubble)
        dim.setOpacity(HIDDEN_OPACITY)
        bubble.setGraphicsEffect(dim)
    else:
        bubble.setGraphicsEffect(None)  # type: ignore[arg-type]
    button.setIcon(icons.icon("eye" if hidden else "eye_off", size=14))
    button.setToolTip(SHOW_TIP if hidden else HIDE_TIP)
    button.setAccessibleName("Show to the character again" if hidden else "Hide from the prompt")
