"""One chat message: avatar, name, a rounded bubble with the text, and its controls.

The text is rendered the way roleplay chats expect: *actions* in dim italics, "speech" in a
light accent tint, **bold** and `code`.  Under a reply: its speed and context use, the swipe
arrows (last reply only), copy, edit (inline) and delete (with an inline confirmation).
"""

from __future__ import annotations

import html
import math
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QGuiApplication, QIcon, QKeyEvent, QTextDocument
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from nexus_desktop.ui import icons
from nexus_desktop.ui.theme import COLORS, MESSAGE_AVATAR_SIZE
from nexus_desktop.ui.widgets import Avatar, icon_button, push_button

if TYPE_CHECKING:
    from nexus_desktop.db.tables import Message

AVATAR_SIZE = MESSAGE_AVATAR_SIZE
_EMPHASIS = re.compile(r"\*\*(.+?)\*\*|\*([^*\n]+?)\*|(\"[^\"\n]+?\"|“[^”\n]+?”)|`([^`\n]+?)`")


def format_message(text: str) -> str:
    """Roleplay-flavoured rich text from plain text; everything is escaped first."""
    parts: list[str] = []
    position = 0
    for match in _EMPHASIS.finditer(text):
        parts.append(html.escape(text[position : match.start()]))
        bold, action, speech, code = match.groups()
        if bold is not None:
            parts.append(f"<b>{html.escape(bold)}</b>")
        elif action is not None:
            parts.append(f'<i><span style="color:{COLORS.text_dim}">{html.escape(action)}</span></i>')
        elif speech is not None:
            parts.append(f'<span style="color:#d9d3ff">{html.escape(speech)}</span>')
        else:
            parts.append(f'<code style="font-family:monospace">{html.escape(code)}</code>')
        position = match.end()
    parts.append(html.escape(text[position:]))
    return "".join(parts).replace("\n", "<br>")


def format_stats(stats: dict[str, Any] | None) -> str:
    """``12.3 tok/s · 345 / 4096 ctx`` from a message's generation figures."""
    if not stats:
        return ""
    pieces = []
    speed = stats.get("tokens_per_second")
    if isinstance(speed, int | float) and speed > 0:
        pieces.append(f"{speed:.1f} tok/s")
    used, size = stats.get("context_used"), stats.get("context_size")
    if isinstance(used, int):
        pieces.append(f"{used} / {size} ctx" if isinstance(size, int) else f"{used} ctx")
    reason = stats.get("finish_reason")
    if reason == "cancelled":
        pieces.append("stopped")
    elif stats.get("budget_cut"):
        pieces.append("cut short: daily token budget")  # the governor lowered its cap (chat.pipeline)
    elif reason == "length":
        pieces.append("hit max tokens")
    return " · ".join(pieces)


def local_time(created: datetime | None) -> str:
    if created is None:
        return ""
    return created.replace(tzinfo=UTC).astimezone().strftime("%H:%M")


class MessageText(QLabel):
    """Selectable rich text whose width hugs short messages and wraps long ones."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("MessageText")
        self.setWordWrap(True)
        self.setTextFormat(Qt.TextFormat.RichText)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Minimum)
        self._raw = ""
        self._max_width = 560

    @property
    def raw_text(self) -> str:
        return self._raw

    def set_content(self, raw: str, rich: str | None = None) -> None:
        self._raw = raw
        self.setText(rich if rich is not None else format_message(raw))
        self._fit()

    @property
    def max_width(self) -> int:
        return self._max_width

    def set_max_width(self, width: int) -> None:
        if width != self._max_width:
            self._max_width = width
            self._fit()

    def _fit(self) -> None:
        self.ensurePolished()
        document = QTextDocument()
        document.setDocumentMargin(0)
        document.setDefaultFont(self.font())
        document.setHtml(self.text())
        natural = math.ceil(document.idealWidth()) + 6
        self.setFixedWidth(max(24, min(natural, self._max_width)))


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


class MessageWidget(QWidget):
    edit_saved = Signal(int, str)
    delete_confirmed = Signal(int)
    swipe_requested = Signal(int, int)
    regenerate_requested = Signal()
    rated = Signal(int, bool)
    """(message id, thumbs up)"""

    def __init__(
        self,
        message: Message,
        *,
        sender: str,
        avatar: bytes | None,
        display: Any = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.message = message
        self.role = "user" if message.role == "user" else "assistant"
        self._display = display or (lambda text: text)
        self._swipeable = False
        self._busy = False
        self._typing_step = 0
        self._typing_timer = QTimer(self)
        self._typing_timer.setInterval(350)
        self._typing_timer.timeout.connect(self._animate_typing)
        self._build(sender, avatar)
        self.set_message(message)

    # Layout -------------------------------------------------------------------------------

    def _build(self, sender: str, avatar_bytes: bytes | None) -> None:
        mine = self.role == "user"
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 6, 0, 6)
        row.setSpacing(12)
        self.avatar = Avatar(AVATAR_SIZE)
        self.avatar.set_avatar(avatar_bytes, sender)

        column = QVBoxLayout()
        column.setSpacing(5)
        align = Qt.AlignmentFlag.AlignRight if mine else Qt.AlignmentFlag.AlignLeft

        header = QHBoxLayout()
        header.setSpacing(8)
        self.name_label = QLabel(sender)
        self.name_label.setObjectName("SenderName")
        self.time_label = QLabel(local_time(self.message.created_at))
        self.time_label.setObjectName("MessageMeta")
        if mine:
            header.addStretch(1)
            header.addWidget(self.time_label)
            header.addWidget(self.name_label)
        else:
            header.addWidget(self.name_label)
            header.addWidget(self.time_label)
            header.addStretch(1)
        column.addLayout(header)

        self.bubble = QFrame()
        self.bubble.setObjectName("Bubble")
        self.bubble.setProperty("role", self.role)
        self.bubble.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Minimum)
        bubble_layout = QVBoxLayout(self.bubble)
        bubble_layout.setContentsMargins(14, 10, 14, 10)
        bubble_layout.setSpacing(8)
        self.text_label = MessageText()
        bubble_layout.addWidget(self.text_label)
        self._build_editor(bubble_layout)
        column.addWidget(self.bubble, 0, align)

        column.addLayout(self._build_footer(mine))
        self.delete_row = self._build_delete_row(mine)
        column.addWidget(self.delete_row, 0, align)

        if mine:
            row.addStretch(1)
            row.addLayout(column)
            row.addWidget(self.avatar, 0, Qt.AlignmentFlag.AlignTop)
        else:
            row.addWidget(self.avatar, 0, Qt.AlignmentFlag.AlignTop)
            row.addLayout(column)
            row.addStretch(1)

    def _build_editor(self, layout: QVBoxLayout) -> None:
        self.editor = MessageEditor()
        self.editor.setObjectName("MessageEditor")
        self.editor.save_requested.connect(self._save_edit)
        self.editor.cancel_requested.connect(self.cancel_edit)
        self.edit_hint = QLabel("")
        self.edit_hint.setObjectName("InlineHint")
        self.edit_hint.hide()
        self.edit_buttons = QWidget()
        buttons = QHBoxLayout(self.edit_buttons)
        buttons.setContentsMargins(0, 0, 0, 0)
        self.edit_cancel_button = push_button("Cancel")
        self.edit_save_button = push_button("Save", role="primary")
        self.edit_cancel_button.clicked.connect(self.cancel_edit)
        self.edit_save_button.clicked.connect(self._save_edit)
        buttons.addWidget(self.edit_hint, 1)
        buttons.addWidget(self.edit_cancel_button)
        buttons.addWidget(self.edit_save_button)
        for widget in (self.editor, self.edit_buttons):
            widget.hide()
            layout.addWidget(widget)

    def _build_footer(self, mine: bool) -> QHBoxLayout:
        footer = QHBoxLayout()
        footer.setSpacing(2)
        self.stats_label = QLabel("")
        self.stats_label.setObjectName("MessageMeta")
        self.swipe_left = icon_button("left", "Previous alternative", size=14)
        self.swipe_counter = QLabel("")
        self.swipe_counter.setObjectName("SwipeCounter")
        self.swipe_right = icon_button("right", "Next alternative", size=14)
        self.swipe_left.clicked.connect(lambda: self._swipe(-1))
        self.swipe_right.clicked.connect(lambda: self._swipe(+1))
        self.rate_up_button = self._rating_button("thumb_up", "Good reply")
        self.rate_down_button = self._rating_button("thumb_down", "Bad reply")
        self.rate_up_button.clicked.connect(lambda: self._rate(True))
        self.rate_down_button.clicked.connect(lambda: self._rate(False))
        self.copy_button = icon_button("copy", "Copy text", size=14)
        self.edit_button = icon_button("edit", "Edit message", size=14)
        self.delete_button = icon_button("trash", "Delete message", size=14)
        self.copy_button.clicked.connect(self._copy)
        self.edit_button.clicked.connect(self.start_edit)
        self.delete_button.clicked.connect(self._ask_delete)
        self.swipe_widgets = [self.swipe_left, self.swipe_counter, self.swipe_right]
        widgets: list[QWidget] = [self.copy_button, self.edit_button, self.delete_button]
        if mine:
            footer.addStretch(1)
            for widget in widgets:
                footer.addWidget(widget)
        else:
            footer.addSpacing(4)
            footer.addWidget(self.stats_label)
            footer.addSpacing(8)
            for widget in [*self.swipe_widgets, self.rate_up_button, self.rate_down_button, *widgets]:
                footer.addWidget(widget)
            footer.addStretch(1)
        return footer

    @staticmethod
    def _rating_button(icon_name: str, tooltip: str) -> QToolButton:
        button = icon_button(icon_name, tooltip, size=14)
        rated = QIcon(icons.icon(icon_name, size=14))
        for mode in (QIcon.Mode.Normal, QIcon.Mode.Active):
            rated.addPixmap(icons.pixmap(icon_name, COLORS.accent_hover, 14), mode, QIcon.State.On)
        button.setIcon(rated)
        button.setCheckable(True)
        return button

    def _build_delete_row(self, mine: bool) -> QWidget:
        row = QWidget()
        layout = QHBoxLayout(row)
        layout.setContentsMargins(4, 0, 4, 0)
        label = QLabel("Delete this message?")
        label.setObjectName("DeleteConfirm")
        self.delete_yes_button = push_button("Delete", role="danger")
        self.delete_no_button = push_button("Keep")
        self.delete_yes_button.clicked.connect(self._confirm_delete)
        self.delete_no_button.clicked.connect(lambda: self.delete_row.hide())
        layout.addWidget(label)
        layout.addWidget(self.delete_no_button)
        layout.addWidget(self.delete_yes_button)
        row.hide()
        return row

    # State --------------------------------------------------------------------------------

    @property
    def message_id(self) -> int:
        assert self.message.id is not None
        return self.message.id

    @property
    def text(self) -> str:
        return self.text_label.raw_text

    def set_message(self, message: Message) -> None:
        self.message = message
        self._typing_timer.stop()
        self.text_label.set_content(self._display(message.content))
        self.stats_label.setText(format_stats(message.stats) if self.role == "assistant" else "")
        self.stats_label.setVisible(bool(self.stats_label.text()))
        rating = (message.stats or {}).get("rating")
        self.rate_up_button.setChecked(rating == 1)
        self.rate_down_button.setChecked(rating == -1)
        # Greetings come from the card, not the model: there is nothing to rate.
        can_rate = self.role == "assistant" and message.id is not None and message.position > 0
        self.rate_up_button.setVisible(can_rate)
        self.rate_down_button.setVisible(can_rate)
        self._refresh_swipes()

    def set_streaming_text(self, text: str) -> None:
        """Show a reply as it is written; an empty text shows the typing dots."""
        self.stats_label.hide()
        if not text:
            if not self._typing_timer.isActive():
                self._typing_step = 0
                self._animate_typing()
                self._typing_timer.start()
            return
        self._typing_timer.stop()
        self.text_label.set_content(self._display(text))

    def set_swipeable(self, swipeable: bool) -> None:
        """Only the last reply shows swipe arrows; past the last alternative lies Regenerate."""
        self._swipeable = swipeable
        self._refresh_swipes()

    def set_busy(self, busy: bool) -> None:
        self._busy = busy
        for button in (
            self.edit_button,
            self.delete_button,
            self.swipe_left,
            self.swipe_right,
            self.rate_up_button,
            self.rate_down_button,
        ):
            button.setEnabled(not busy)
        self._refresh_swipes()

    def set_max_text_width(self, width: int) -> None:
        self.text_label.set_max_width(width)
        self.editor.setMinimumWidth(width)

    def _refresh_swipes(self) -> None:
        count, index = len(self.message.swipes), self.message.swipe_index
        can_regenerate = self._swipeable and self.message.position > 0
        show = self.role == "assistant" and self._swipeable and (count > 1 or can_regenerate)
        for widget in self.swipe_widgets:
            widget.setVisible(show)
        self.swipe_counter.setText(f"{index + 1}/{count}")
        self.swipe_left.setEnabled(not self._busy and index > 0)
        self.swipe_right.setEnabled(not self._busy and (index < count - 1 or can_regenerate))
        self.swipe_right.setToolTip("Next alternative" if index < count - 1 else "Generate another reply")

    def _animate_typing(self) -> None:
        lit = self._typing_step % 3
        spans = [
            f'<span style="color:{COLORS.accent if i == lit else COLORS.border_strong}">●</span>'
            for i in range(3)
        ]
        self.text_label.set_content("", "&nbsp;".join(spans))
        self._typing_step += 1

    # Actions ------------------------------------------------------------------------------

    def _swipe(self, step: int) -> None:
        target = self.message.swipe_index + step
        if target >= len(self.message.swipes):
            self.regenerate_requested.emit()
        elif target >= 0:
            self.swipe_requested.emit(self.message_id, target)

    def _rate(self, thumbs_up: bool) -> None:
        # The buttons show the stored rating, not the click: set_message updates them once saved.
        rating = (self.message.stats or {}).get("rating")
        self.rate_up_button.setChecked(rating == 1)
        self.rate_down_button.setChecked(rating == -1)
        self.rated.emit(self.message_id, thumbs_up)

    def _copy(self) -> None:
        clipboard = QGuiApplication.clipboard()
        if clipboard is not None:
            clipboard.setText(self.text)

    def start_edit(self) -> None:
        self.delete_row.hide()
        self.editor.setPlainText(self.message.content)
        self.editor.setFixedHeight(min(320, max(90, self.text_label.sizeHint().height() + 40)))
        self.text_label.hide()
        self.editor.show()
        self.edit_buttons.show()
        self.editor.setFocus()

    def cancel_edit(self) -> None:
        self.editor.hide()
        self.edit_buttons.hide()
        self.edit_hint.hide()
        self.text_label.show()

    @property
    def editing(self) -> bool:
        return self.editor.isVisible() or not self.editor.isHidden()

    def _save_edit(self) -> None:
        text = self.editor.toPlainText()
        if not text.strip():
            self.edit_hint.setText("A message can't be empty; delete it instead.")
            self.edit_hint.show()
            return
        self.cancel_edit()
        self.edit_saved.emit(self.message_id, text)

    def _ask_delete(self) -> None:
        self.delete_row.show()

    def _confirm_delete(self) -> None:
        self.delete_row.hide()
        self.delete_confirmed.emit(self.message_id)
