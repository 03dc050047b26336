"""A tool call in the chat: a slim card under the user's message, e.g. ``⚙ roll · dice=2d6 → 7``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QMenu,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from nexus_desktop.chat.routing import ROUTE_CHOICES
from nexus_desktop.ui import icons
from nexus_desktop.ui.layouts import tight
from nexus_desktop.ui.message_widget import AVATAR_SIZE, MessageText
from nexus_desktop.ui.theme import COLORS
from nexus_desktop.ui.widgets import icon_button

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
    """Shown in place of a ``tool`` message; it has no swipes, edits or ratings.

    A call the intent router chose asks, once, whether that was right; the answer (or the
    correction) becomes training data for the router.
    """

    role = "tool"
    route_judged = Signal(int, bool, str)
    """(message id, the router was right, what it should have been when not)."""

    def __init__(self, message: Message, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.message = message
        column = tight(QVBoxLayout(self))
        column.setContentsMargins(AVATAR_SIZE + 12, 2, 0, 2)
        column.setSpacing(2)
        row = tight(QHBoxLayout())
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
        column.addLayout(row)
        column.addWidget(self._route_row())
        self.set_message(message)

    def _route_row(self) -> QWidget:
        self.route_row = QWidget()
        row = tight(QHBoxLayout(self.route_row))
        row.setSpacing(6)
        self.route_label = QLabel()
        self.route_label.setObjectName("RouteQuestion")
        self.route_right_button = icon_button("thumb_up", "Yes, that was the right thing to do", text="Right")
        self.route_right_button.clicked.connect(lambda: self.route_judged.emit(self.message_id, True, ""))
        self.route_wrong_button = icon_button("thumb_down", "No: pick what it was", text="Wrong…")
        self.route_wrong_button.setObjectName("RouteWrong")
        self.route_wrong_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.route_menu = QMenu(self.route_wrong_button)
        self.route_wrong_button.setMenu(self.route_menu)
        row.addWidget(self.route_label)
        row.addWidget(self.route_right_button)
        row.addWidget(self.route_wrong_button)
        row.addStretch(1)
        return self.route_row

    def _show_route(self, route: Any) -> None:
        if not isinstance(route, dict):
            self.route_row.hide()
            return
        picked = str(route.get("label"))
        verdict = route.get("verdict")
        asking = verdict is None
        if asking:
            text = "The intent router chose this. Was it right?"
        elif verdict == "right":
            text = "You confirmed the router's choice; it learns from that."
        else:
            should = ROUTE_CHOICES.get(str(route.get("corrected_label")), "something else")
            text = f"You said it should have been: {should}. The router learns from that."
        self.route_label.setText(text)
        self.route_right_button.setVisible(asking)
        self.route_wrong_button.setVisible(asking)
        self.route_menu.clear()
        for label, words in ROUTE_CHOICES.items():
            if label != picked:
                action = self.route_menu.addAction(words)
                action.triggered.connect(
                    lambda _checked=False, label=label: self.route_judged.emit(self.message_id, False, label)
                )
        self.route_row.show()

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
        self._show_route((message.stats or {}).get("route"))

    def set_swipeable(self, _swipeable: bool) -> None:
        pass

    def set_busy(self, _busy: bool) -> None:
        pass

    def set_max_text_width(self, width: int) -> None:
        self.label.set_max_width(width)
