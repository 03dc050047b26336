"""One chat message: avatar, name, a rounded bubble with the text, and its controls.

The text is Markdown (``message_text.py``), with roleplay styling: *actions* in dim italics and
"speech" in a light accent tint.  Under a reply: its speed and context use, the swipe arrows
(last reply only), rating, copy, edit (inline) and delete (with an inline confirmation).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QSizePolicy, QToolButton, QVBoxLayout, QWidget

from nexus_desktop.chat.model_output import streamed_reply
from nexus_desktop.ui import icons, theme
from nexus_desktop.ui.message_edit import DeleteConfirm, EditsInPlace, InlineEdit
from nexus_desktop.ui.message_text import MessageText
from nexus_desktop.ui.theme import MESSAGE_AVATAR_SIZE
from nexus_desktop.ui.widgets import Avatar, ElidedLabel, icon_button
from nexus_desktop.ui.writing_bar import HIDE_TIP, hidden_marker, show_hidden

if TYPE_CHECKING:
    from nexus_desktop.db.tables import Message

AVATAR_SIZE = MESSAGE_AVATAR_SIZE


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
    if stats.get("served_by"):  # a `nexus worker` on another PC wrote it: first, so never elided
        pieces.insert(0, f"answered by {stats['served_by']}")
    return " · ".join(pieces)


def local_time(created: datetime | None) -> str:
    if created is None:
        return ""
    return created.replace(tzinfo=UTC).astimezone().strftime("%H:%M")


class MessageWidget(EditsInPlace, QWidget):
    edit_saved = Signal(int, str)
    delete_confirmed = Signal(int)
    swipe_requested = Signal(int, int)
    regenerate_requested = Signal()
    rated = Signal(int, bool)
    """(message id, thumbs up)"""
    branch_requested = Signal(int)
    """"Branch from here": a new chat holding the messages up to this one (its id)."""
    hidden_toggled = Signal(int, bool)
    """(message id, hide): leave it out of the prompt, or put it back (ui/writing_bar.py)."""

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
        self.speaker = sender
        self._display = display or (lambda text: text)
        self._swipeable = False
        self._busy = False
        self._writing_alternative = False
        self._streamed: str | None = None  # the reply being written, as it came
        self._streamed_shown: str | None = None  # which of it was last handed to the text
        self._inline_edit: InlineEdit | None = None
        self._delete_confirm: DeleteConfirm | None = None
        self._max_text_width = 560
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

        self.column = column = QVBoxLayout()
        column.setSpacing(5)
        self._align = Qt.AlignmentFlag.AlignRight if mine else Qt.AlignmentFlag.AlignLeft

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
        # Hide from the prompt (ui/writing_bar.py), up here as SillyTavern has it: the footer is full.
        self.hidden_marker = hidden_marker()
        self.hide_button = icon_button("eye_off", HIDE_TIP, size=14)
        self.hide_button.clicked.connect(self._toggle_hidden)
        header.insertWidget(1 if mine else 2, self.hidden_marker)
        header.insertWidget(1 if mine else 3, self.hide_button)
        column.addLayout(header)

        self.bubble = QFrame()
        self.bubble.setObjectName("Bubble")
        self.bubble.setProperty("role", self.role)
        self.bubble.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Minimum)
        self.bubble_layout = QVBoxLayout(self.bubble)
        self.bubble_layout.setContentsMargins(14, 10, 14, 10)
        self.bubble_layout.setSpacing(8)
        self.text_label = MessageText()
        self.text_label.rendered.connect(self._rendered)
        self.text_label.setAccessibleName(f"Message from {sender}")
        self.bubble_layout.addWidget(self.text_label)
        column.addWidget(self.bubble, 0, self._align)
        column.addLayout(self._build_footer(mine))

        if mine:
            row.addStretch(1)
            row.addLayout(column)
            row.addWidget(self.avatar, 0, Qt.AlignmentFlag.AlignTop)
        else:
            row.addWidget(self.avatar, 0, Qt.AlignmentFlag.AlignTop)
            row.addLayout(column)
            row.addStretch(1)

    def _build_footer(self, mine: bool) -> QHBoxLayout:
        footer = QHBoxLayout()
        footer.setSpacing(2)
        # Elided, so a narrow window or large text shortens the figures instead of pushing the
        # buttons (and the whole chat column) past the window's edge.
        self.stats_label = ElidedLabel("")
        self.stats_label.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
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
        self.branch_button = icon_button("branch", "Branch from here: a new chat up to this message", size=14)
        self.branch_button.clicked.connect(lambda: self.branch_requested.emit(self.message_id))
        self.swipe_widgets = [self.swipe_left, self.swipe_counter, self.swipe_right]
        widgets: list[QWidget] = [self.copy_button, self.branch_button, self.edit_button, self.delete_button]
        if mine:
            footer.addStretch(1)
            for widget in widgets:
                footer.addWidget(widget)
            # Unused on the user's side, but owned: a parentless widget would outlive the
            # message, and its connections would keep this one alive (a leak per message).
            for widget in [self.stats_label, *self.swipe_widgets, self.rate_up_button, self.rate_down_button]:
                widget.setParent(self)
                widget.hide()
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
        button.setIcon(icons.icon(icon_name, size=14, checked=theme.COLORS.accent_hover))
        button.setCheckable(True)
        return button

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
        self._writing_alternative = False
        self._streamed = self._streamed_shown = None
        self._typing_timer.stop()
        self.text_label.show_markdown(self._display(message.content))
        self.stats_label.setText(format_stats(message.stats) if self.role == "assistant" else "")
        self.stats_label.setVisible(bool(self.stats_label.text()))
        rating = (message.stats or {}).get("rating")
        self.rate_up_button.setChecked(rating == 1)
        self.rate_down_button.setChecked(rating == -1)
        # Greetings come from the card, not the model: there is nothing to rate.
        can_rate = self.role == "assistant" and message.id is not None and not message.is_greeting
        self.rate_up_button.setVisible(can_rate)
        self.rate_down_button.setVisible(can_rate)
        self.hide_button.setVisible(message.id is not None)
        show_hidden(self.bubble, self.hidden_marker, self.hide_button, message.hidden)
        self._refresh_swipes()

    def set_streaming_text(self, text: str) -> None:
        """Show a reply as it is written; while nothing is shown yet, the typing dots.

        While a long reply's last text is still being rendered elsewhere, the newest text waits
        and is shown once that is done: a long reply costs the Qt thread no more work than the
        renders it can show.
        """
        self.stats_label.hide()
        self._streamed = text
        if not self.text_label.rendering:
            self._show_streamed()

    def _rendered(self) -> None:
        if self._streamed is not None and self._streamed is not self._streamed_shown:
            self._show_streamed()

    def _show_streamed(self) -> None:
        assert self._streamed is not None
        self._streamed_shown = self._streamed
        shown = streamed_reply(self._streamed, self.speaker)
        if not shown:
            if not self._typing_timer.isActive():
                self._typing_step = 0
                self._animate_typing()
                self._typing_timer.start()
            return
        self._typing_timer.stop()
        self.text_label.show_markdown(self._display(shown))

    def start_alternative(self) -> None:
        """A new alternative of this reply is being written: the counter shows it (3/3 while the
        third is written) until the reply is saved or fails (``set_message``)."""
        self._writing_alternative = True
        self._refresh_swipes()

    def set_swipeable(self, swipeable: bool) -> None:
        """Only the last reply shows swipe arrows; past the last alternative lies Regenerate."""
        if swipeable != self._swipeable:  # called for every message after each change
            self._swipeable = swipeable
            self._refresh_swipes()

    def set_busy(self, busy: bool) -> None:
        if busy == self._busy:
            return
        self._busy = busy
        for button in (
            self.edit_button,
            self.delete_button,
            self.branch_button,
            self.swipe_left,
            self.swipe_right,
            self.rate_up_button,
            self.rate_down_button,
        ):
            button.setEnabled(not busy)
        self._refresh_swipes()

    def set_max_text_width(self, width: int) -> None:
        self._max_text_width = width
        self.text_label.set_max_width(width)
        if self._inline_edit is not None:
            self._inline_edit.editor.setMinimumWidth(width)

    def _refresh_swipes(self) -> None:
        count, index = len(self.message.swipes), self.message.swipe_index
        if self._writing_alternative:  # the one being written is the last, and the one shown
            count += 1
            index = count - 1
        can_regenerate = self._swipeable and not self.message.is_greeting
        show = self.role == "assistant" and self._swipeable and (count > 1 or can_regenerate)
        for widget in self.swipe_widgets:
            widget.setVisible(show)
        self.swipe_counter.setText(f"{index + 1}/{count}")
        self.swipe_counter.setToolTip(
            f"Writing alternative {count}"
            if self._writing_alternative
            else f"Alternative {index + 1} of {count}"
        )
        self.swipe_counter.setAccessibleName(self.swipe_counter.toolTip())
        self.swipe_left.setEnabled(not self._busy and index > 0)
        self.swipe_right.setEnabled(not self._busy and (index < count - 1 or can_regenerate))
        self.swipe_right.setToolTip("Next alternative" if index < count - 1 else "Generate another reply")

    def _animate_typing(self) -> None:
        colours = theme.COLORS
        lit = self._typing_step % 3
        spans = [
            f'<span style="color:{colours.accent if i == lit else colours.border_strong}">●</span>'
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

    def _toggle_hidden(self) -> None:
        self.hidden_toggled.emit(self.message_id, not self.message.hidden)

    def _copy(self) -> None:
        clipboard = QGuiApplication.clipboard()
        if clipboard is not None:
            clipboard.setText(self.text)
