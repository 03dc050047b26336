"""The message box: Enter sends, Shift+Enter adds a line; Send turns into Stop while a reply is written."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPlainTextEdit, QVBoxLayout, QWidget

from nexus_desktop.ui import icons
from nexus_desktop.ui.widgets import icon_button, push_button, set_style_property

if TYPE_CHECKING:
    from PySide6.QtGui import QFocusEvent, QKeyEvent

MAX_LINES = 8
EMPTY_HINT = "Type a message first — there is nothing to send yet."


class ComposerInput(QPlainTextEdit):
    submit = Signal()
    focus_changed = Signal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ComposerInput")
        self.setPlaceholderText("Message…  (Enter to send, Shift+Enter for a new line)")
        self.setTabChangesFocus(True)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.document().documentLayout().documentSizeChanged.connect(lambda _size: self._fit_height())
        self._fit_height()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        enter = event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
        if enter and not event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            self.submit.emit()
            return
        super().keyPressEvent(event)

    def focusInEvent(self, event: QFocusEvent) -> None:
        super().focusInEvent(event)
        self.focus_changed.emit(True)

    def focusOutEvent(self, event: QFocusEvent) -> None:
        super().focusOutEvent(event)
        self.focus_changed.emit(False)

    def _fit_height(self) -> None:
        line = self.fontMetrics().lineSpacing()
        wanted = int(self.document().size().height())
        lines = max(1, min(MAX_LINES, wanted))
        margins = self.contentsMargins()
        frame = margins.top() + margins.bottom() + int(2 * self.document().documentMargin())
        self.setFixedHeight(lines * line + frame + 4)
        policy = (
            Qt.ScrollBarPolicy.ScrollBarAsNeeded
            if wanted > MAX_LINES
            else Qt.ScrollBarPolicy.ScrollBarAlwaysOff
        )
        self.setVerticalScrollBarPolicy(policy)


class Composer(QWidget):
    send_requested = Signal(str)
    stop_requested = Signal()
    regenerate_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._busy = False
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(6)

        self.frame = QFrame()
        self.frame.setObjectName("Composer")
        row = QHBoxLayout(self.frame)
        row.setContentsMargins(12, 8, 8, 8)
        row.setSpacing(8)
        self.input = ComposerInput()
        self.input.submit.connect(self._on_enter)
        self.input.textChanged.connect(self._on_text_changed)
        self.input.focus_changed.connect(lambda focused: set_style_property(self.frame, "focused", focused))
        row.addWidget(self.input, 1)

        self.regenerate_button = icon_button("regenerate", "Regenerate the last reply", role="icon", size=18)
        self.regenerate_button.setFixedSize(40, 40)
        self.regenerate_button.clicked.connect(self.regenerate_requested.emit)
        self.send_button = push_button("Send", role="primary", icon_name="send")
        self.send_button.setIconSize(QSize(16, 16))
        self.send_button.setFixedHeight(40)
        self.send_button.setMinimumWidth(96)
        self.send_button.clicked.connect(self._on_send_clicked)
        row.addWidget(self.regenerate_button, 0, Qt.AlignmentFlag.AlignBottom)
        row.addWidget(self.send_button, 0, Qt.AlignmentFlag.AlignBottom)
        outer.addWidget(self.frame)

        self.hint = QLabel("")
        self.hint.setObjectName("InlineHint")
        self.hint.hide()
        outer.addWidget(self.hint)
        self._hint_timer = QTimer(self)
        self._hint_timer.setSingleShot(True)
        self._hint_timer.setInterval(5000)
        self._hint_timer.timeout.connect(self.hint.hide)

    @property
    def text(self) -> str:
        return self.input.toPlainText()

    @property
    def busy(self) -> bool:
        return self._busy

    def clear(self) -> None:
        self.input.clear()

    def show_hint(self, text: str) -> None:
        self.hint.setText(text)
        self.hint.show()
        self._hint_timer.start()

    def set_busy(self, busy: bool) -> None:
        """While a reply is written: Send becomes Stop and Regenerate waits."""
        self._busy = busy
        if busy:
            self.send_button.setText("Stop")
            self.send_button.setIcon(icons.icon("stop", "#ffffff", "#ffffff"))
            self.send_button.setToolTip("Stop the reply (keeps what was written)")
            set_style_property(self.send_button, "role", "stop")
        else:
            self.send_button.setText("Send")
            self.send_button.setIcon(icons.icon("send", "#ffffff", "#ffffff"))
            self.send_button.setToolTip("Send (Enter)")
            set_style_property(self.send_button, "role", "primary")
        self.regenerate_button.setEnabled(not busy)

    def set_enabled_for_chat(self, enabled: bool) -> None:
        self.input.setEnabled(enabled)
        self.send_button.setEnabled(enabled)
        self.regenerate_button.setEnabled(enabled and not self._busy)

    def accept_typing_before_chat(self) -> None:
        """Typing (and Send, which the chat view queues) works while the chat loads; Regenerate waits."""
        self.input.setEnabled(True)
        self.send_button.setEnabled(True)
        self.regenerate_button.setEnabled(False)
        self.input.setFocus()

    def _on_send_clicked(self) -> None:
        if self._busy:
            self.stop_requested.emit()
            return
        text = self.text
        if not text.strip():
            self.show_hint(EMPTY_HINT)
            return
        self.hint.hide()
        self.send_requested.emit(text)

    def _on_enter(self) -> None:
        # Enter never stops a reply: only the Stop button does.
        if self._busy:
            self.show_hint("A reply is being written; wait for it or press Stop.")
            return
        self._on_send_clicked()

    def _on_text_changed(self) -> None:
        if self.hint.isVisible() and self.text.strip():
            self.hint.hide()
