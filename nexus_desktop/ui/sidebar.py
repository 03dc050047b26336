"""The left sidebar: brand, character search, the character list and the character actions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRect, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPixmap
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QVBoxLayout,
    QWidget,
)

from nexus_desktop.ui import icons
from nexus_desktop.ui.theme import (
    COLORS,
    SIDEBAR_COMPACT_BELOW,
    SIDEBAR_COMPACT_WIDTH,
    SIDEBAR_WIDTH,
    appearance_changed,
    font_scale,
)
from nexus_desktop.ui.widgets import brand_row, icon_button, push_button, round_avatar

if TYPE_CHECKING:
    from nexus_desktop.db.tables import Character

ROW_HEIGHT = 60
AVATAR_SIZE = 40
SNIPPET_ROLE = Qt.ItemDataRole.UserRole + 1
SEARCH_ROLE = Qt.ItemDataRole.UserRole + 2
ORIGIN_ROLE = Qt.ItemDataRole.UserRole + 3
GROUP_ROLE = Qt.ItemDataRole.UserRole + 4
"""A group chat's row (ui/group_bar.py) holds its group's id here, and no character id."""


def snippet(character: Character) -> str:
    card = character.card or {}
    tags = [t for t in card.get("tags") or [] if isinstance(t, str)]
    if tags:
        return " · ".join(tags[:3])
    text = " ".join(str(card.get("description") or card.get("personality") or "").split())
    return text[:80]


def origin_caption(character: Character) -> str:
    """The caption "from dice" for a character the dice module registered; "" for the user's own."""
    return f"from {character.origin}" if character.origin else ""


def row_fonts(font: QFont) -> tuple[QFont, QFont]:
    """The name's font (a little larger, bold) and the description's (smaller), from the list's font."""
    small = QFont(font)
    small.setPointSizeF(max(7.0, font.pointSizeF() - 1.5))
    name_font = QFont(font)
    name_font.setWeight(QFont.Weight.DemiBold)
    name_font.setPointSizeF(font.pointSizeF() + 0.5)
    return name_font, small


def row_height(font: QFont) -> int:
    """Room for the avatar, or for the name over the description when larger text needs more."""
    name_font, small = row_fonts(font)
    text = QFontMetrics(name_font).height() + QFontMetrics(small).height() + 2
    return max(ROW_HEIGHT, text + 22)


class CharacterDelegate(QStyledItemDelegate):
    """Rows of avatar, name and a muted one-line description, with a rounded highlight."""

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> QSize:
        return QSize(option.rect.width(), row_height(option.font))

    def paint(
        self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> None:
        from PySide6.QtWidgets import QStyle  # its ~15 enums cost ~10 ms: not before the first paint

        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        rect = option.rect.adjusted(2, 2, -2, -2)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        hovered = bool(option.state & QStyle.StateFlag.State_MouseOver)
        if selected or hovered:
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor(COLORS.accent_soft if selected else COLORS.surface))
            painter.drawRoundedRect(rect, 10, 10)
        if selected:
            painter.setBrush(QColor(COLORS.accent))
            painter.drawRoundedRect(QRect(rect.left(), rect.top() + 14, 3, rect.height() - 28), 1.5, 1.5)

        avatar = index.data(Qt.ItemDataRole.DecorationRole)
        top = rect.top() + (rect.height() - AVATAR_SIZE) // 2
        if isinstance(avatar, QPixmap):
            painter.drawPixmap(rect.left() + 10, top, avatar)

        text_left = rect.left() + 10 + AVATAR_SIZE + 12
        text_width = rect.right() - text_left - 8
        name_font, small = row_fonts(option.font)
        name_height = QFontMetrics(name_font).height()
        detail_height = QFontMetrics(small).height()
        name_top = rect.top() + (rect.height() - name_height - detail_height - 2) // 2
        detail_top = name_top + name_height + 2
        full_name = str(index.data(Qt.ItemDataRole.DisplayRole))
        origin = str(index.data(ORIGIN_ROLE) or "")
        name_width = text_width
        if origin:
            # A module's character says where it came from, right of its name: the caption takes
            # what the name leaves, but never more than two thirds of the row.
            painter.setFont(name_font)
            room = text_width - painter.fontMetrics().horizontalAdvance(full_name) - 8
            painter.setFont(small)
            room = min(max(room, text_width // 3), text_width * 2 // 3)
            origin = painter.fontMetrics().elidedText(origin, Qt.TextElideMode.ElideRight, room)
            origin_width = painter.fontMetrics().horizontalAdvance(origin)
            painter.setPen(QColor(COLORS.accent if selected else COLORS.muted))
            painter.drawText(
                QRect(rect.right() - 8 - origin_width, name_top, origin_width, name_height),
                Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                origin,
            )
            name_width = text_width - origin_width - 8
        painter.setFont(name_font)
        painter.setPen(QColor(COLORS.text if selected or hovered else COLORS.text_dim))
        name = painter.fontMetrics().elidedText(full_name, Qt.TextElideMode.ElideRight, name_width)
        painter.drawText(
            QRect(text_left, name_top, name_width, name_height), Qt.AlignmentFlag.AlignLeft, name
        )

        painter.setFont(small)
        painter.setPen(QColor(COLORS.muted))
        detail = painter.fontMetrics().elidedText(
            str(index.data(SNIPPET_ROLE) or ""), Qt.TextElideMode.ElideRight, text_width
        )
        painter.drawText(
            QRect(text_left, detail_top, text_width, detail_height), Qt.AlignmentFlag.AlignLeft, detail
        )
        painter.restore()


class Sidebar(QFrame):
    character_selected = Signal(int)
    new_requested = Signal()
    import_requested = Signal()
    export_requested = Signal()
    edit_requested = Signal()
    delete_requested = Signal()
    group_selected = Signal(int)
    new_group_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("Sidebar")
        self.setFixedWidth(SIDEBAR_WIDTH)
        self.setAccessibleName("Characters")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(14, 16, 14, 14)
        layout.setSpacing(12)
        layout.addLayout(brand_row("NEXUS", "DESKTOP"))

        self.search = QLineEdit()
        self.search.setObjectName("Search")
        self.search.setPlaceholderText("Search characters")
        self.search.setAccessibleName("Search characters")
        self.search.setToolTip("Search characters by name, tag or module (Ctrl+K)")
        self.search.setClearButtonEnabled(True)
        self.search.addAction(icons.icon("search", COLORS.muted), QLineEdit.ActionPosition.LeadingPosition)
        self.search.textChanged.connect(self._filter)
        layout.addWidget(self.search)

        header = QHBoxLayout()
        self.section_label = QLabel("CHARACTERS")
        self.section_label.setObjectName("SectionLabel")
        self.count_label = QLabel("")
        self.count_label.setObjectName("SectionLabel")
        header.addWidget(self.section_label)
        header.addStretch(1)
        header.addWidget(self.count_label)
        layout.addLayout(header)

        self.list = QListWidget()
        self.list.setObjectName("CharacterList")
        self.list.setAccessibleName("Characters")
        self.list.setItemDelegate(CharacterDelegate(self.list))
        self.list.setMouseTracking(True)
        self.list.setVerticalScrollMode(QListWidget.ScrollMode.ScrollPerPixel)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.currentItemChanged.connect(self._current_changed)
        self.list.itemDoubleClicked.connect(lambda _item: self.edit_requested.emit())
        layout.addWidget(self.list, 1)

        self.new_button = push_button("New character", role="primary", icon_name="plus")
        self.new_button.clicked.connect(self.new_requested.emit)
        self.new_group_button = icon_button("users", "New group chat", role="icon")
        self.new_group_button.setFixedHeight(self.new_button.sizeHint().height())
        self.new_group_button.clicked.connect(self.new_group_requested.emit)
        new_row = QHBoxLayout()
        new_row.setSpacing(6)
        new_row.addWidget(self.new_button, 1)
        new_row.addWidget(self.new_group_button)
        layout.addLayout(new_row)
        grid = QGridLayout()
        grid.setSpacing(6)
        self.import_button = push_button("Import", icon_name="import")
        self.export_button = push_button("Export", icon_name="export")
        self.edit_button = push_button("Edit", icon_name="edit")
        self.delete_button = push_button("Delete", icon_name="trash")
        for i, (button, signal, tip) in enumerate(
            [
                (self.import_button, self.import_requested, "Import a character card (PNG, JSON or CHARX)"),
                (self.export_button, self.export_requested, "Export the selected character as PNG or JSON"),
                (self.edit_button, self.edit_requested, "Edit the selected character"),
                (self.delete_button, self.delete_requested, "Delete the selected character and its chats"),
            ]
        ):
            button.setToolTip(tip)
            button.clicked.connect(signal.emit)
            grid.addWidget(button, i // 2, i % 2)
        layout.addLayout(grid)
        buttons = [self.new_button, self.import_button, self.export_button]
        buttons += [self.edit_button, self.delete_button]
        self._captions = {button: button.text() for button in buttons}
        for button, caption in self._captions.items():
            button.setAccessibleName(caption)  # kept when large text leaves only the icon
        self._window_width = SIDEBAR_COMPACT_BELOW
        appearance_changed().connect(self._refit)  # a bound slot: dropped with the sidebar
        self._update_buttons()

    # Data ---------------------------------------------------------------------------------

    def _refit(self) -> None:
        self.fit_to_window(self._window_width)

    def fit_to_window(self, window_width: int) -> None:
        """Narrower in small windows, so the chat keeps room for a readable message box."""
        self._window_width = window_width
        compact = window_width < SIDEBAR_COMPACT_BELOW
        self.setFixedWidth(SIDEBAR_COMPACT_WIDTH if compact else SIDEBAR_WIDTH)
        # Larger text in the compact sidebar: the buttons keep their icon, tooltip and name only.
        icon_only = compact and font_scale() > 100
        for button, caption in self._captions.items():
            button.setText("" if icon_only else caption)

    def set_characters(self, characters: list[Character], select_id: int | None = None) -> None:
        keep = select_id if select_id is not None else self.current_id()
        self.list.blockSignals(True)
        self.list.clear()
        for character in characters:
            item = QListWidgetItem(character.name)
            item.setData(Qt.ItemDataRole.UserRole, character.id)
            item.setData(
                Qt.ItemDataRole.DecorationRole, round_avatar(character.avatar, character.name, AVATAR_SIZE)
            )
            item.setData(SNIPPET_ROLE, snippet(character))
            tags = " ".join(str(t) for t in (character.card or {}).get("tags") or [])
            origin = origin_caption(character)
            item.setData(ORIGIN_ROLE, origin)
            item.setData(SEARCH_ROLE, f"{character.name} {tags} {origin}".lower())
            item.setToolTip(
                f"{character.name} — added by the {character.origin} module" if origin else character.name
            )
            self.list.addItem(item)
        self.list.blockSignals(False)
        self._filter(self.search.text())
        if keep is not None:
            self.select(keep, emit=False)
        self._update_buttons()

    def names(self) -> list[str]:
        return [self.list.item(i).text() for i in range(self.list.count())]

    def origins(self) -> dict[str, str]:
        """Name -> the origin caption each row shows ("from dice"; "" for the user's own)."""
        return {
            self.list.item(i).text(): str(self.list.item(i).data(ORIGIN_ROLE) or "")
            for i in range(self.list.count())
        }

    def current_id(self) -> int | None:
        item = self.list.currentItem()
        character_id = None if item is None else item.data(Qt.ItemDataRole.UserRole)
        return character_id if isinstance(character_id, int) else None  # None on a group's row

    def select(self, character_id: int, *, emit: bool = True) -> bool:
        for row in range(self.list.count()):
            item = self.list.item(row)
            if item.data(Qt.ItemDataRole.UserRole) == character_id:
                self.list.blockSignals(not emit)
                self.list.setCurrentItem(item)
                self.list.blockSignals(False)
                self._update_buttons()
                return True
        return False

    def _current_changed(self, current: QListWidgetItem | None, _previous: QListWidgetItem | None) -> None:
        self._update_buttons()
        if current is not None and current.data(GROUP_ROLE) is not None:
            self.group_selected.emit(int(current.data(GROUP_ROLE)))
        elif current is not None:
            self.character_selected.emit(int(current.data(Qt.ItemDataRole.UserRole)))

    def _filter(self, text: str) -> None:
        needle = text.strip().lower()
        shown = total = 0
        for row in range(self.list.count()):
            item = self.list.item(row)
            item.setHidden(bool(needle) and needle not in str(item.data(SEARCH_ROLE)))
            if item.data(GROUP_ROLE) is None:  # the count is of characters, not group chats
                total += 1
                shown += not item.isHidden()
        self.count_label.setText(f"{shown} of {total}" if needle else str(total))
        self.count_label.setToolTip(
            f"{shown} of {total} characters match the search" if needle else f"{total} characters"
        )

    def _update_buttons(self) -> None:
        has = self.list.currentItem() is not None
        for button in (self.export_button, self.edit_button, self.delete_button):
            button.setEnabled(has)
        self.export_button.setEnabled(self.current_id() is not None)  # a group has no card to export
