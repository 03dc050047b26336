"""Rows of the chat list and of its search results, and going to what a row points at.

A row is two lines: the chat's title with its date (or, for a search result, the character) at the
right, then a muted detail line in which the words a search matched are drawn in the accent colour.
Opening a search result switches the window to its chat and scrolls to the message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import shiboken6
from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRect, QSize, Qt, QTimer
from PySide6.QtGui import QColor, QFont, QPainter
from PySide6.QtWidgets import QStyledItemDelegate, QStyleOptionViewItem

from nexus_desktop.ui.ops import QueryOp
from nexus_desktop.ui.theme import COLORS

if TYPE_CHECKING:
    from nexus_desktop.ui.chat_view import ChatView
    from nexus_desktop.ui.main_window import MainWindow

ROW_HEIGHT = 56
TARGET_ROLE = Qt.ItemDataRole.UserRole
"""(character id, chat id, message id or 0) of a row."""
META_ROLE = Qt.ItemDataRole.UserRole + 1
DETAIL_ROLE = Qt.ItemDataRole.UserRole + 2


class ChatRowDelegate(QStyledItemDelegate):
    """Two lines a row: the title with its date at the right, then the detail line, muted, with
    the words a search matched in the accent colour."""

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> QSize:
        return QSize(option.rect.width(), ROW_HEIGHT)

    def paint(
        self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> None:
        from PySide6.QtWidgets import QStyle

        from nexus_desktop.chat.history import MATCH_MARKS

        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        rect = option.rect.adjusted(2, 2, -2, -2)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        if selected or option.state & QStyle.StateFlag.State_MouseOver:
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor(COLORS.accent_soft if selected else COLORS.surface_hover))
            painter.drawRoundedRect(rect, 8, 8)
        inner = rect.adjusted(12, 7, -12, -7)
        small = QFont(option.font)
        small.setPointSizeF(max(7.0, option.font.pointSizeF() - 1.0))
        painter.setFont(small)
        meta = str(index.data(META_ROLE) or "")
        meta_width = painter.fontMetrics().horizontalAdvance(meta)
        painter.setPen(QColor(COLORS.muted))
        painter.drawText(inner, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop, meta)
        bold = QFont(option.font)
        bold.setWeight(QFont.Weight.DemiBold)
        painter.setFont(bold)
        painter.setPen(QColor(COLORS.text))
        title_width = max(40, inner.width() - meta_width - 12)
        title = painter.fontMetrics().elidedText(
            str(index.data(Qt.ItemDataRole.DisplayRole)), Qt.TextElideMode.ElideRight, title_width
        )
        painter.drawText(QRect(inner.left(), inner.top(), title_width, 20), Qt.AlignmentFlag.AlignLeft, title)
        painter.setFont(small)
        x, right, top = inner.left(), inner.right(), inner.top() + 22
        metrics = painter.fontMetrics()
        matched = False
        detail = " ".join(str(index.data(DETAIL_ROLE) or "").split())
        for piece in detail.replace(MATCH_MARKS[0], MATCH_MARKS[1]).split(MATCH_MARKS[1]):
            room = right - x
            if room <= metrics.horizontalAdvance("…"):
                break
            shown = metrics.elidedText(piece, Qt.TextElideMode.ElideRight, room)
            painter.setPen(QColor(COLORS.accent if matched else COLORS.text_dim))
            painter.drawText(QRect(x, top, room, 18), Qt.AlignmentFlag.AlignLeft, shown)
            x += metrics.horizontalAdvance(shown)
            matched = not matched
        painter.restore()


def open_chat(window: MainWindow, character_id: int | None, chat_id: int, message_id: int = 0) -> None:
    """Switch the window to this chat, scrolled to ``message_id`` when one is given."""

    async def show() -> None:
        await window.open_chat(character_id, chat_id)
        if message_id and window.chat_view.chat_id == chat_id:
            reveal_message(window.chat_view, message_id)

    QueryOp[None](parent=window, op=show).failure(window.chat_view.show_error).run_in_background()


def reveal_message(view: ChatView, message_id: int) -> bool:
    """Scroll the chat to the message, giving it and its neighbours widgets first when it has none
    (however far up it is, that costs a few widgets, not every message above it)."""
    widget = view.history.reveal(message_id)
    if widget is None:
        return False

    def scroll() -> None:
        if shiboken6.isValid(widget):
            view.scroll_area.ensureWidgetVisible(widget, 0, 80)

    QTimer.singleShot(0, scroll)  # once the new widgets are laid out
    return True
