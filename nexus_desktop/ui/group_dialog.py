"""The dialog that makes or edits a group chat: its name, its members in order, its turn order.

It writes through ``core.groups`` (``chat/groups.py``) off the Qt thread; a refused change (fewer
than two members, a member deleted meanwhile) is said in the dialog, and nothing typed is lost.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QVBoxLayout,
    QWidget,
)

from nexus_desktop.chat.groups import MAX_NAME_LENGTH, MIN_MEMBERS, TURN_ORDER_NAMES, TURN_ORDERS, Group
from nexus_desktop.ui.ops import QueryOp
from nexus_desktop.ui.widgets import BannerArea, fit_to_screen, push_button, round_avatar

if TYPE_CHECKING:
    from nexus_desktop.core import AppCore
    from nexus_desktop.db.tables import Character

TURN_ORDER_HELP = {
    "natural": (
        "Whoever you name answers; otherwise the chattiest members, never the same one twice in a row."
    ),
    "list": "Every member answers, top to bottom.",
    "manual": "Nobody answers until you press Speak beside a member.",
}


class GroupDialog(QDialog):
    """New group (``group`` None) or edit one.  Non-blocking (``open()``); ``saved`` on success."""

    saved = Signal(object)
    """The group as stored (``chat.groups.Group``)."""

    def __init__(
        self,
        core: AppCore,
        characters: list[Character],
        group: Group | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.core = core
        self.group = group
        self.setWindowTitle("Edit group chat" if group else "New group chat")
        fit_to_screen(self, 460, 520)
        self._build()
        self._fill(characters, group)

    def _build(self) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(20, 16, 20, 16)
        layout.setSpacing(8)
        title = QLabel(self.windowTitle())
        title.setObjectName("DialogTitle")
        layout.addWidget(title)
        self.banners = BannerArea()
        layout.addWidget(self.banners)

        layout.addWidget(QLabel("Name"))
        self.name_edit = QLineEdit()
        self.name_edit.setAccessibleName("Group name")
        self.name_edit.setMaxLength(MAX_NAME_LENGTH)
        self.name_edit.setPlaceholderText("Left empty: the members' names")
        layout.addWidget(self.name_edit)

        members_label = QLabel("Members")
        layout.addWidget(members_label)
        hint = QLabel(f"Tick {MIN_MEMBERS} or more characters. They take turns in this order.")
        hint.setObjectName("FieldHelp")
        hint.setWordWrap(True)
        layout.addWidget(hint)
        self.members = QListWidget()
        self.members.setAccessibleName("Members")
        self.members.setToolTip("Tick the characters in this group; Space ticks the selected one")
        self.members.setIconSize(QSize(24, 24))
        self.members.setMinimumHeight(96)
        members_label.setBuddy(self.members)
        layout.addWidget(self.members, 1)
        moves = QHBoxLayout()
        self.up_button = push_button("Move up", icon_name="up")
        self.up_button.setToolTip("Move the selected character earlier in the turn order")
        self.up_button.clicked.connect(lambda: self._move(-1))
        self.down_button = push_button("Move down")
        self.down_button.setToolTip("Move the selected character later in the turn order")
        self.down_button.clicked.connect(lambda: self._move(1))
        moves.addWidget(self.up_button)
        moves.addWidget(self.down_button)
        moves.addStretch(1)
        layout.addLayout(moves)

        layout.addWidget(QLabel("Turn order"))
        self.order_box = QComboBox()
        self.order_box.setAccessibleName("Turn order")
        for order in TURN_ORDERS:
            self.order_box.addItem(TURN_ORDER_NAMES[order], order)
        self.order_box.currentIndexChanged.connect(self._show_order_help)
        layout.addWidget(self.order_box)
        self.order_help = QLabel()
        self.order_help.setObjectName("FieldHelp")
        self.order_help.setWordWrap(True)
        layout.addWidget(self.order_help)

        buttons = QHBoxLayout()
        buttons.addStretch(1)
        cancel = push_button("Cancel")
        cancel.clicked.connect(self.reject)
        self.save_button = push_button("Save" if self.group else "Create group", role="primary")
        self.save_button.setDefault(True)
        self.save_button.clicked.connect(self.save)
        buttons.addWidget(cancel)
        buttons.addWidget(self.save_button)
        layout.addLayout(buttons)

    def _fill(self, characters: list[Character], group: Group | None) -> None:
        """The group's members first, in their order and ticked, then every other character."""
        by_id = {c.id: c for c in characters if c.id is not None}
        first = [m.character_id for m in group.present] if group else []
        ordered = [by_id[i] for i in first if i in by_id] + [c for c in characters if c.id not in first]
        for character in ordered:
            item = QListWidgetItem(QIcon(round_avatar(character.avatar, character.name, 24)), character.name)
            item.setData(Qt.ItemDataRole.UserRole, character.id)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if character.id in first else Qt.CheckState.Unchecked)
            self.members.addItem(item)
        if group is not None:
            self.name_edit.setText(group.name)
        self.order_box.setCurrentIndex(TURN_ORDERS.index(group.turn_order) if group else 0)
        self._show_order_help()

    def _show_order_help(self) -> None:
        self.order_help.setText(TURN_ORDER_HELP[str(self.order_box.currentData())])

    def _move(self, step: int) -> None:
        row = self.members.currentRow()
        target = row + step
        if row < 0 or not 0 <= target < self.members.count():
            return
        item = self.members.takeItem(row)
        self.members.insertItem(target, item)
        self.members.setCurrentRow(target)

    def tick(self, names: list[str]) -> None:
        """Tick these characters (and untick the rest), in the list's order."""
        for row in range(self.members.count()):
            item = self.members.item(row)
            item.setCheckState(Qt.CheckState.Checked if item.text() in names else Qt.CheckState.Unchecked)

    def chosen_ids(self) -> list[int]:
        items = [self.members.item(row) for row in range(self.members.count())]
        return [
            int(i.data(Qt.ItemDataRole.UserRole)) for i in items if i.checkState() == Qt.CheckState.Checked
        ]

    def save(self) -> None:
        name, ids, order = self.name_edit.text(), self.chosen_ids(), str(self.order_box.currentData())
        groups = self.core.groups
        if self.group is None:
            work = groups.create(name, ids, order)
        else:
            work = groups.update(self.group.id, name, ids, order)
        self.banners.clear()
        self.save_button.setEnabled(False)

        def done(group: Group) -> None:
            self.saved.emit(group)
            self.accept()

        def refused(error: BaseException) -> None:
            from nexus_desktop.ui.chat_view import describe_error

            self.save_button.setEnabled(True)
            self.banners.show_banner("error", describe_error(error))

        QueryOp(parent=self, op=work, success=done).failure(refused).run_in_background()
