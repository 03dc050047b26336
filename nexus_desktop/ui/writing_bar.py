"""The writing tools beside the message box: Continue, and a menu with Impersonate and the
author's note; and the author's note dialog.  ``ChatView`` does the work (``ui/chat_writing.py``).
"""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QMenu,
    QToolButton,
    QWidget,
)

from nexus_desktop.ui.widgets import icon_button

BUTTON_SIZE = 40
BUTTON_WIDTH = 34  # narrower than tall: at 800x500 the message box keeps room to type
CONTINUE_TIP = "Continue the last reply: the character writes more of it (Alt+C)"
IMPERSONATE_TIP = "Impersonate: write your next message in your persona's voice, for you to edit (Alt+I)"


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
