"""A tool call in the chat: a slim card under the user's message, e.g. ``⚙ roll · dice=2d6 → 7``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QSizePolicy, QWidget

from nexus_desktop.ui import icons
from nexus_desktop.ui.message_widget import AVATAR_SIZE, MessageText
from nexus_desktop.ui.theme import COLORS

if TYPE_CHECKING:
    from nexus_desktop.db.tables import Message

MAX_SHOWN_CHARS = 300


def describe_tool_call(message: Message) -> tuple[str, bool]:
    """(one line of rich text, whether the tool succeeded) from a saved ``tool`` message."""
    import html

    record: dict[str, Any] = message.stats or {}
    name = str(record.get("tool") or "tool")
    arguments = record.get("arguments") or {}
    ok = bool(record.get("ok", True))
    shown_args = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in dict(arguments).items())
    outcome = str(record.get("result") or message.content) if ok else str(record.get("error") or "failed")
    if len(outcome) > MAX_SHOWN_CHARS:
        outcome = outcome[:MAX_SHOWN_CHARS] + "…"
    colour = COLORS.text_dim if ok else COLORS.danger
    text = f"<b>{html.escape(name)}</b>"
    if shown_args:
        text += f' <span style="color:{COLORS.muted}">({html.escape(shown_args)})</span>'
    text += f' <span style="color:{colour}">→ {html.escape(outcome)}</span>'
    return text, ok


class ToolCallWidget(QWidget):
    """Shown in place of a ``tool`` message; it has no swipes, edits or ratings."""

    role = "tool"

    def __init__(self, message: Message, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.message = message
        row = QHBoxLayout(self)
        row.setContentsMargins(AVATAR_SIZE + 12, 2, 0, 2)
        self.card = QFrame()
        self.card.setObjectName("ToolCard")
        self.card.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Minimum)
        inner = QHBoxLayout(self.card)
        inner.setContentsMargins(10, 6, 12, 6)
        inner.setSpacing(8)
        self.badge = QLabel()
        self.label = MessageText()
        inner.addWidget(self.badge, 0, Qt.AlignmentFlag.AlignTop)
        inner.addWidget(self.label, 1)
        row.addWidget(self.card)
        row.addStretch(1)
        self.set_message(message)

    @property
    def message_id(self) -> int:
        assert self.message.id is not None
        return self.message.id

    @property
    def text(self) -> str:
        return self.message.content

    def set_message(self, message: Message) -> None:
        self.message = message
        text, ok = describe_tool_call(message)
        self.label.set_content(message.content, text)
        self.badge.setPixmap(
            icons.pixmap("chip" if ok else "alert", COLORS.accent if ok else COLORS.danger, 16)
        )
        self.card.setToolTip("A tool ran before the reply; its result was given to the model.")

    def set_swipeable(self, _swipeable: bool) -> None:
        pass

    def set_busy(self, _busy: bool) -> None:
        pass

    def set_max_text_width(self, width: int) -> None:
        self.label.set_max_width(width)
