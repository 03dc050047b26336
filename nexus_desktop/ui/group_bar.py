"""Group chats in the window: their rows in the sidebar, the bar above the message box, and
opening one in the chat view.

``GroupChats`` is the window's part: it lists the groups with the characters (a "group" caption
beside the name), opens a group's chat like a character's, and keeps the ``GroupBar`` (turn
order, each member's mute and Speak buttons, Edit) to the open group.  It follows the store: a
change to the groups or the characters (a member deleted, here or by another process) redraws
the rows and the bar.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import shiboken6
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QListWidgetItem,
    QMessageBox,
    QScrollArea,
    QToolButton,
    QWidget,
)

from nexus_desktop.chat.groups import TURN_ORDER_NAMES, TURN_ORDERS, Group, Member
from nexus_desktop.ui import icons
from nexus_desktop.ui.layouts import tight
from nexus_desktop.ui.ops import QueryOp
from nexus_desktop.ui.sidebar import AVATAR_SIZE, GROUP_ROLE, ORIGIN_ROLE, SEARCH_ROLE, SNIPPET_ROLE
from nexus_desktop.ui.theme import COLORS
from nexus_desktop.ui.widgets import Avatar, icon_button, round_avatar, set_style_property

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from nexus_desktop.changes import Change
    from nexus_desktop.core import AppCore
    from nexus_desktop.db.tables import Chat, Message
    from nexus_desktop.ui.group_dialog import GroupDialog
    from nexus_desktop.ui.main_window import MainWindow

CHIP_AVATAR = 22


def speaker_of(group: Group, message: Message) -> tuple[str, bytes | None]:
    """The name and avatar a group chat's reply shows: its writer's, as the group has it now, or
    the name it was written under once that character is gone."""
    member = group.member(message.speaker_id)
    if member is not None:
        return member.name, member.avatar
    return message.speaker_name or group.name, None


def members_line(group: Group) -> str:
    return ", ".join(m.name for m in group.present) or "Nobody is left in this group"


class MemberChip(QFrame):
    """One member in the bar: avatar and name, a mute toggle and Speak."""

    speak_requested = Signal(int)
    mute_toggled = Signal(int, bool)

    def __init__(self, member: Member, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.member = member
        self.setObjectName("GroupMember")
        row = QHBoxLayout(self)
        row.setContentsMargins(3, 2, 4, 2)
        row.setSpacing(4)
        avatar = Avatar(CHIP_AVATAR)
        avatar.set_avatar(member.avatar, member.name)
        row.addWidget(avatar)
        self.name_label = QLabel(member.name if member.present else f"{member.name} (deleted)")
        row.addWidget(self.name_label)
        self.mute_button: QToolButton | None = None
        self.speak_button: QToolButton | None = None
        if member.character_id is None:
            set_style_property(self, "gone", True)
            self.setToolTip(f"{member.name} was deleted; Edit group to take them off the list")
            return
        character_id = member.character_id
        self.mute_button = icon_button("mute" if member.muted else "volume", "", size=14)
        self.mute_button.setCheckable(True)
        self.mute_button.setChecked(member.muted)
        self.mute_button.toggled.connect(lambda on: self.mute_toggled.emit(character_id, on))
        self.speak_button = icon_button("chat", f"{member.name} speaks now", size=14)
        self.speak_button.clicked.connect(lambda: self.speak_requested.emit(character_id))
        row.addWidget(self.mute_button)
        row.addWidget(self.speak_button)
        self._show_muted(member.muted)

    def _show_muted(self, muted: bool) -> None:
        assert self.mute_button is not None
        name = self.member.name
        tip = f"Unmute {name}: answer in turn again" if muted else f"Mute {name}: skipped by every turn order"
        self.mute_button.setToolTip(tip)
        self.mute_button.setAccessibleName(f"Unmute {name}" if muted else f"Mute {name}")
        set_style_property(self, "muted", muted)


class GroupBar(QFrame):
    """The open group's controls, above the message box."""

    speak_requested = Signal(int)
    mute_toggled = Signal(int, bool)
    order_chosen = Signal(str)
    edit_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("GroupBar")
        self.group: Group | None = None
        self.chips: list[MemberChip] = []
        row = tight(QHBoxLayout(self))
        row.setSpacing(6)
        self.order_box = QComboBox()
        self.order_box.setAccessibleName("Turn order")
        self.order_box.setToolTip(
            "Who answers you: Natural (whoever you name, else the chattiest), List (everyone in "
            "order) or Manual (whoever you press Speak for)"
        )
        for order in TURN_ORDERS:
            self.order_box.addItem(TURN_ORDER_NAMES[order], order)
        self.order_box.activated.connect(lambda _i: self.order_chosen.emit(str(self.order_box.currentData())))
        row.addWidget(self.order_box)

        self.members_area = QScrollArea()
        self.members_area.setObjectName("MessageScroll")  # the chat's own background, no frame
        self.members_area.setAccessibleName("Group members")
        self.members_area.setFrameShape(QFrame.Shape.NoFrame)
        self.members_area.setWidgetResizable(True)
        self.members_area.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.members_area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        strip = QWidget()
        self.strip = tight(QHBoxLayout(strip))
        self.strip.setSpacing(6)
        self.strip.addStretch(1)
        self.members_area.setWidget(strip)
        row.addWidget(self.members_area, 1)

        self.edit_button = icon_button("edit", "Edit group: name, members and turn order")
        self.edit_button.clicked.connect(self.edit_requested.emit)
        row.addWidget(self.edit_button)

    def show_group(self, group: Group) -> None:
        self.group = group
        self.order_box.setCurrentIndex(TURN_ORDERS.index(group.turn_order))
        for chip in self.chips:
            self.strip.removeWidget(chip)
            chip.deleteLater()
        self.chips = []
        for member in group.members:
            chip = MemberChip(member)
            chip.speak_requested.connect(self.speak_requested.emit)
            chip.mute_toggled.connect(self.mute_toggled.emit)
            self.strip.insertWidget(self.strip.count() - 1, chip)
            self.chips.append(chip)
        height = max(chip.sizeHint().height() for chip in self.chips) if self.chips else 28
        bar = self.members_area.horizontalScrollBar().sizeHint().height()
        self.members_area.setFixedHeight(height + bar + 2)  # room for the scroll bar when members overflow

    def chip(self, name: str) -> MemberChip | None:
        return next((c for c in self.chips if c.member.name == name), None)

    def set_busy(self, busy: bool) -> None:
        for chip in self.chips:
            if chip.speak_button is not None:
                chip.speak_button.setEnabled(not busy)


class GroupChats(QObject):
    """The window's group chats (see the module's docstring)."""

    _heard = Signal()

    def __init__(self, window: MainWindow, core: AppCore) -> None:
        super().__init__(window)
        self.window = window
        self.core = core
        self.groups: list[Group] = []
        view = window.chat_view
        self.bar = GroupBar()
        self.bar.hide()
        view.bottom_layout.insertWidget(0, self.bar)
        self.bar.speak_requested.connect(self.speak)
        self.bar.mute_toggled.connect(self.set_muted)
        self.bar.order_chosen.connect(self.set_turn_order)
        self.bar.edit_requested.connect(lambda: self.open_dialog(view.group))
        view.chat_opened.connect(self._chat_opened)
        view.busy_changed.connect(self.bar.set_busy)
        sidebar = window.sidebar
        sidebar.group_selected.connect(lambda group_id: self._run(self.open_group(group_id)))
        sidebar.new_group_requested.connect(lambda: self.open_dialog(None))
        sidebar.edit_requested.connect(self._edit_current)
        sidebar.delete_requested.connect(self._ask_delete_current)
        window.top_bar.new_chat_button.clicked.connect(self._new_chat)
        self._heard.connect(lambda: self._run(self.refresh()))

        def heard(change: Change) -> None:
            if change.kind == "groups":  # characters: the window's refresh_characters calls refresh()
                self._heard.emit()  # a signal: it reaches the window on the Qt thread

        unsubscribe = core.changes.subscribe(heard)
        self.destroyed.connect(lambda *_: unsubscribe())

    # Showing -------------------------------------------------------------------------------

    async def refresh(self) -> None:
        """Read the groups again: their sidebar rows, and the open group's bar and messages."""
        self.groups = await self.core.groups.all()
        if not shiboken6.isValid(self.window.sidebar):
            return
        self.show_rows()
        view = self.window.chat_view
        shown = view.group
        if shown is None:
            return
        group = next((g for g in self.groups if g.id == shown.id), None)
        if group is None:  # deleted (here or elsewhere): its chat went with it
            await view.stop_and_wait()
            view.clear_chat()
            self.window.top_bar.clear_character()
            await self.window.show_first_character()
            return
        view.group = group
        self._show(group)
        view.refresh_names()

    def show_rows(self) -> None:
        """The groups' rows after the characters', the open group's selected."""
        sidebar = self.window.sidebar
        items = sidebar.list
        items.blockSignals(True)
        for row in reversed(range(items.count())):
            if items.item(row).data(GROUP_ROLE) is not None:
                items.takeItem(row)
        open_group = self.window.chat_view.group
        for group in self.groups:
            item = QListWidgetItem(group.name)
            item.setData(GROUP_ROLE, group.id)
            item.setData(Qt.ItemDataRole.DecorationRole, group_avatar(group))
            item.setData(SNIPPET_ROLE, members_line(group))
            item.setData(ORIGIN_ROLE, "group")
            item.setData(SEARCH_ROLE, f"{group.name} group {members_line(group)}".lower())
            item.setToolTip(f"Group chat: {group.name} ({members_line(group)})")
            items.addItem(item)
            if open_group is not None and open_group.id == group.id:
                items.setCurrentItem(item)
        items.blockSignals(False)
        sidebar._filter(sidebar.search.text())  # the search applies to the new rows too

    def _show(self, group: Group) -> None:
        self.bar.show_group(group)
        self.bar.show()
        self.bar.set_busy(self.window.chat_view.busy)
        count = len(group.present)
        subtitle = f"Group · {count} member{'' if count == 1 else 's'}"
        self.window.top_bar.set_character(group.name, None, subtitle)

    def _chat_opened(self) -> None:
        view = self.window.chat_view
        self.bar.setVisible(view.group is not None)
        if view.group is not None:
            self._show(view.group)
            notice = view.group.notice()
            if notice:  # a member was deleted: said once per opening, gone with the chat
                view._chat_banners.append(view.banners.show_banner("info", notice))

    # Opening -------------------------------------------------------------------------------

    async def open_group(self, group_id: int, *, new: bool = False) -> None:
        """Show the group's latest chat (a new one when ``new``)."""
        await self._open(lambda: self.core.groups.open_chat(group_id, new=new))

    async def reopen_last(self) -> bool:
        """At start: open the group whose chat was open last; False when that was a character's
        chat (or the group is gone)."""
        group_id = self.core.settings.last_group_id
        if group_id is None or all(g.id != group_id for g in self.groups):
            return False
        await self.open_group(group_id)
        return True

    async def open_group_chat(self, chat_id: int) -> None:
        """Show this chat of a group (a branch of one, say)."""
        await self._open(lambda: self.core.history.open(chat_id))

    async def _open(self, load_chat: Callable[[], Awaitable[tuple[Chat, list[Message]]]]) -> None:
        view = self.window.chat_view
        view._load_seq += 1
        load = view._load_seq
        if view.busy:
            await view.stop_and_wait()
        chat, messages = await load_chat()
        assert chat.id is not None
        group = await self.core.groups.for_chat(chat.id)
        persona = await self.core.personas.for_chat(chat.id)
        if load == view._load_seq and group is not None:  # else another chat was picked meanwhile
            view.show_chat(chat.id, messages, persona, group=group)
            self.show_rows()  # its row selected
            settings = self.core.settings
            if settings.last_group_id != group.id:  # reopened at start
                await self.core.update_settings(settings.model_copy(update={"last_group_id": group.id}))

    def _new_chat(self) -> None:
        group = self.window.chat_view.group
        if group is not None:
            self._run(self.open_group(group.id, new=True))

    # Changes -------------------------------------------------------------------------------

    def open_dialog(self, group: Group | None) -> GroupDialog:
        from nexus_desktop.ui.group_dialog import GroupDialog

        dialog = GroupDialog(self.core, self.window.characters, group, self.window)

        def saved(stored: Group) -> None:
            self.groups = [g for g in self.groups if g.id != stored.id] + [stored]
            self._run(self.open_group(stored.id))

        dialog.saved.connect(saved)
        dialog.open()
        return dialog

    def current_group(self) -> Group | None:
        item = self.window.sidebar.list.currentItem()
        group_id = item.data(GROUP_ROLE) if item is not None else None
        return next((g for g in self.groups if g.id == group_id), None)

    def _edit_current(self) -> None:
        group = self.current_group()
        if group is not None:
            self.open_dialog(group)

    def _ask_delete_current(self) -> None:
        group = self.current_group()
        if group is None:
            return
        box = QMessageBox(
            QMessageBox.Icon.Warning,
            "Delete group",
            f"Delete the group {group.name} and all its chats? Its characters stay. This cannot be undone.",
            QMessageBox.StandardButton.Cancel,
            self.window,
        )
        delete = box.addButton("Delete group", QMessageBox.ButtonRole.DestructiveRole)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)

        def answered(_result: int) -> None:
            if box.clickedButton() is delete:
                self.delete(group.id)

        box.finished.connect(answered)
        box.open()

    def delete(self, group_id: int) -> None:
        self._run(self.core.groups.delete(group_id))  # the change event closes its chat

    def set_muted(self, character_id: int, muted: bool) -> None:
        group = self.window.chat_view.group
        if group is not None:
            self._run(self.core.groups.set_muted(group.id, character_id, muted))

    def set_turn_order(self, order: str) -> None:
        group = self.window.chat_view.group
        if group is not None and order != group.turn_order:
            self._run(self.core.groups.set_turn_order(group.id, order))

    def speak(self, character_id: int) -> None:
        """This member writes a reply now (the bar's Speak button), whatever the turn order."""
        view = self.window.chat_view
        chat_id = view.chat_id
        if view.busy or chat_id is None or view.group is None:
            return

        async def work() -> None:
            if await view._model_ready():
                await view._consume(self.core.chat.speak(chat_id, character_id), sent_text=None, target=None)

        view._start(work())

    def _run(self, work: Awaitable[object]) -> None:
        QueryOp(parent=self.window, op=work).failure(self.window.chat_view.show_error).run_in_background()


def group_avatar(group: Group) -> QPixmap:
    """The group's picture in the sidebar: its first member's avatar with the group sign."""
    first = group.present[0] if group.present else None
    picture = round_avatar(first.avatar if first else None, group.name, AVATAR_SIZE).copy()
    painter = QPainter(picture)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(QColor(COLORS.accent))
    painter.drawEllipse(AVATAR_SIZE - 19, AVATAR_SIZE - 19, 19, 19)
    painter.drawPixmap(AVATAR_SIZE - 16, AVATAR_SIZE - 16, icons.pixmap("users", "#ffffff", 13))
    painter.end()
    return picture
