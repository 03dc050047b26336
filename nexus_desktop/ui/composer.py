"""The message box: Enter sends, Shift+Enter adds a line; Send turns into Stop while a reply is written."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QSize, Qt, QTimer, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPlainTextEdit, QVBoxLayout, QWidget

from nexus_desktop.ui import icons
from nexus_desktop.ui.widgets import icon_button, push_button, set_style_property

if TYPE_CHECKING:
    from PySide6.QtGui import QFocusEvent, QKeyEvent, QResizeEvent

MAX_LINES = 8
EMPTY_HINT = "Type a message first — there is nothing to send yet."
# The longest that fits the box is shown, so a narrow window never cuts the hint off.
PLACEHOLDERS = (
    "Message…  (Enter to send, Shift+Enter for a new line)",
    "Message…  (Enter to send)",
    "Message…",
)
# Below this width Send (and Stop) show only their icon, leaving the message box room to type in.
COMPACT_BELOW = 520
# Keys the empty box leaves to the window's shortcuts (ui/shortcuts.py): edit the last message, swipe.
KEYS_FOR_SHORTCUTS_WHEN_EMPTY = (Qt.Key.Key_Up, Qt.Key.Key_Left, Qt.Key.Key_Right)


class ComposerInput(QPlainTextEdit):
    submit = Signal()
    focus_changed = Signal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ComposerInput")
        self.setAccessibleName("Message")
        self.setToolTip(PLACEHOLDERS[0])
        self.setPlaceholderText(PLACEHOLDERS[0])
        self.setTabChangesFocus(True)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.document().documentLayout().documentSizeChanged.connect(lambda _size: self._fit_height())
        self._fit_height()

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ShortcutOverride and self._leaves_to_shortcuts(event):  # type: ignore[arg-type]
            event.ignore()  # not ours: the window's shortcut for this key runs
            return True
        return super().event(event)

    def _leaves_to_shortcuts(self, event: QKeyEvent) -> bool:
        plain = event.modifiers() in (Qt.KeyboardModifier.NoModifier, Qt.KeyboardModifier.KeypadModifier)
        return plain and event.key() in KEYS_FOR_SHORTCUTS_WHEN_EMPTY and not self.toPlainText()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        enter = event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
        modifiers = event.modifiers()
        if enter and modifiers & Qt.KeyboardModifier.ControlModifier:
            event.ignore()  # Ctrl+Enter regenerates (a window shortcut); it never sends or adds a line
            return
        if enter and not modifiers & Qt.KeyboardModifier.ShiftModifier:
            self.submit.emit()
            return
        super().keyPressEvent(event)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._fit_placeholder()

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() in (QEvent.Type.FontChange, QEvent.Type.StyleChange):
            self._fit_height()
            self._fit_placeholder()

    def placeholder_room(self) -> int:
        """How wide a placeholder may be and still show whole."""
        margin = int(2 * self.document().documentMargin())
        return self.viewport().width() - margin - 2

    def _fit_placeholder(self) -> None:
        room = self.placeholder_room()
        metrics = self.fontMetrics()
        fitting = (text for text in PLACEHOLDERS if metrics.horizontalAdvance(text) <= room)
        self.setPlaceholderText(next(fitting, PLACEHOLDERS[-1]))

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
        self.compact = False
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

        self.regenerate_button = icon_button(
            "regenerate", "Regenerate the last reply (Ctrl+Enter)", role="icon", size=18
        )
        self.regenerate_button.setFixedSize(40, 40)
        self.regenerate_button.clicked.connect(self.regenerate_requested.emit)
        self.send_button = push_button("Send", role="primary", icon_name="send")
        self.send_button.setIconSize(QSize(16, 16))
        self.send_button.setFixedHeight(40)
        self.send_button.setMinimumWidth(96)
        self.send_button.setAccessibleName("Send")
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
        caption = "Stop" if busy else "Send"
        self.send_button.setText("" if self.compact else caption)
        self.send_button.setAccessibleName(caption)
        if busy:
            self.send_button.setIcon(icons.icon("stop", "#ffffff", "#ffffff"))
            self.send_button.setToolTip("Stop the reply, keeping what was written (Esc)")
            set_style_property(self.send_button, "role", "stop")
        else:
            self.send_button.setIcon(icons.icon("send", "#ffffff", "#ffffff"))
            self.send_button.setToolTip("Send (Enter)")
            set_style_property(self.send_button, "role", "primary")
        self.regenerate_button.setEnabled(not busy)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        compact = self.width() < COMPACT_BELOW
        if compact != self.compact:
            self.compact = compact
            self.send_button.setMinimumWidth(40 if compact else 96)
            self.send_button.setMaximumWidth(40 if compact else 16777215)
            self.set_busy(self._busy)  # the caption, or none

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
