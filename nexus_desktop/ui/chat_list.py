"""The chat list: every chat with the open character (or of the open group), the newest first,
and a search across all chats; opened from the top bar's "Chats" button.

Opening a chat or a search result switches the window to it (a result scrolls to its message).
Rename, branch, export and delete act on the selected chat; Import reads SillyTavern chat files
(into the open group, each line to the member it names, when a group is open).
Every database step goes through ``core.history`` off the Qt thread (``QueryOp``), and the list
reloads on ``Change("chats")`` and ``Change("messages")``, whoever made the change.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QVBoxLayout,
    QWidget,
)

from nexus_desktop.ui import icons
from nexus_desktop.ui.chat_search import DETAIL_ROLE, META_ROLE, TARGET_ROLE, ChatRowDelegate, open_chat
from nexus_desktop.ui.ops import QueryOp
from nexus_desktop.ui.theme import COLORS
from nexus_desktop.ui.widgets import BannerArea, push_button

if TYPE_CHECKING:
    from nexus_desktop.changes import Change
    from nexus_desktop.chat.history import ChatSummary, SearchHit
    from nexus_desktop.core import AppCore
    from nexus_desktop.ui.chat_view import ChatView
    from nexus_desktop.ui.main_window import MainWindow

SEARCH_DELAY_MS = 250
CHAT_FILE_FILTER = "SillyTavern chats (*.jsonl);;All files (*)"


class ChatListDialog(QDialog):
    _store_changed = Signal()
    """Change events arrive through this signal, so the list reloads on the Qt thread."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        assert window.core is not None
        self.window_ = window
        self.core: AppCore = window.core
        character, group = window.chat_view.character, window.chat_view.group
        self.character_id = character.id if character is not None else None
        self.group_id = group.id if group is not None else None
        self.with_name = character.name if character else group.name if group else ""
        """Whose chats are listed: the open character's, or group's; every chat when neither is open."""
        self.chats: list[ChatSummary] = []
        self.hits: list[SearchHit] = []
        self._loads = 0
        self.setObjectName("ChatListDialog")
        if character is not None or group is not None:
            self.setWindowTitle(f"Chats {'with' if character else 'of'} {self.with_name}")
        else:
            self.setWindowTitle("Chats")
        self._build()
        self._size_to(window)
        self._search_timer = QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(SEARCH_DELAY_MS)
        self._search_timer.timeout.connect(self.reload)
        self._store_changed.connect(self.reload)
        unsubscribe = self.core.changes.subscribe(self._heard)
        self.destroyed.connect(lambda *_: unsubscribe())
        self.reload()

    def _build(self) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(18, 16, 18, 16)
        layout.setSpacing(10)
        header = QHBoxLayout()
        title = QLabel(self.windowTitle())
        title.setObjectName("DialogTitle")
        self.import_button = push_button("Import…", icon_name="import")
        self.import_button.setToolTip(
            "Import SillyTavern chat files (.jsonl) as new chats"
            + (" of this group: each line goes to the member it names" if self.group_id else "")
        )
        self.import_button.setAutoDefault(False)
        self.import_button.clicked.connect(self.choose_import)
        header.addWidget(title, 1)
        header.addWidget(self.import_button)
        layout.addLayout(header)

        self.search = QLineEdit()
        self.search.setObjectName("Search")
        self.search.setPlaceholderText("Search every chat")
        self.search.setAccessibleName("Search every chat")
        self.search.setClearButtonEnabled(True)
        self.search.addAction(icons.icon("search", COLORS.muted), QLineEdit.ActionPosition.LeadingPosition)
        self.search.textChanged.connect(lambda _text: self._search_timer.start())
        self.search.returnPressed.connect(self.reload)
        layout.addWidget(self.search)
        self.section_label = QLabel("")
        self.section_label.setObjectName("SectionLabel")
        layout.addWidget(self.section_label)

        self.list = QListWidget()
        self.list.setObjectName("ChatList")
        self.list.setAccessibleName("Chats")
        self.list.setItemDelegate(ChatRowDelegate(self.list))
        self.list.setMouseTracking(True)
        self.list.setVerticalScrollMode(QListWidget.ScrollMode.ScrollPerPixel)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.itemActivated.connect(lambda _item: self.open_selected())
        self.list.currentItemChanged.connect(lambda *_: self._update_buttons())
        layout.addWidget(self.list, 1)
        self.banners = BannerArea()
        layout.addWidget(self.banners)

        buttons = QHBoxLayout()
        buttons.setSpacing(6)
        self.rename_button = push_button("Rename", icon_name="edit")
        self.branch_button = push_button("Branch", icon_name="branch")
        self.export_button = push_button("Export…", icon_name="export")
        self.delete_button = push_button("Delete", icon_name="trash")
        self.open_button = push_button("Open", role="primary")
        for button, slot, tip in [
            (self.rename_button, self.rename_selected, "Give the selected chat a title"),
            (self.branch_button, self.branch_selected, "Copy the selected chat into a new one and open it"),
            (self.export_button, self.choose_export, "Save the selected chat as a SillyTavern chat file"),
            (self.delete_button, self.ask_delete, "Delete the selected chat and its messages"),
            (self.open_button, self.open_selected, "Show the selected chat"),
        ]:
            button.setToolTip(tip)
            button.setAutoDefault(False)  # Enter belongs to the search box and the list
            button.clicked.connect(slot)
            buttons.addWidget(button)
            if button is self.delete_button:
                buttons.addStretch(1)
        layout.addLayout(buttons)
        self._update_buttons()

    def _size_to(self, window: QWidget) -> None:
        """As tall as the window allows, never larger than it: it fits an 800×500 window."""
        self.setMinimumSize(420, 320)
        self.resize(min(620, max(420, window.width() - 80)), min(640, max(320, window.height() - 60)))

    # Loading ------------------------------------------------------------------------------

    def _heard(self, change: Change) -> None:
        if change.kind in ("chats", "messages"):
            self._store_changed.emit()

    def reload(self) -> None:
        """Show the character's chats, or the search's results when something is typed."""
        self._search_timer.stop()
        typed = self.search.text().strip()
        self._loads += 1
        load = self._loads
        history = self.core.history

        async def work() -> Any:
            if typed:
                return await history.search(typed)
            return await history.chats(self.character_id, self.group_id)

        def show(result: Any) -> None:
            if load == self._loads:
                self._show_hits(typed, result) if typed else self._show_chats(result)

        QueryOp(parent=self, op=work, success=show).failure(self.show_error).run_in_background()

    def _show_chats(self, chats: list[ChatSummary]) -> None:
        from nexus_desktop.chat.history import local_time

        keep = self.selected()
        self.chats, self.hits = chats, []
        self.list.clear()
        for chat in chats:
            count = f"{chat.message_count} message{'' if chat.message_count == 1 else 's'}"
            detail = f"{count} · {chat.preview}" if chat.preview else count
            self._add_row(chat.title, local_time(chat.updated_at), detail, (chat.character_id, chat.id, 0))
        current = self.window_.chat_view.chat_id
        self._select(keep[1] if keep else current)
        self.section_label.setText(f"{len(chats)} CHAT{'' if len(chats) == 1 else 'S'}, THE NEWEST FIRST")
        self._update_buttons()

    def _show_hits(self, typed: str, hits: list[SearchHit]) -> None:
        self.hits = hits
        self.list.clear()
        for hit in hits:
            target = (hit.character_id, hit.chat_id, hit.message_id)
            self._add_row(hit.chat_title, hit.with_label, hit.snippet, target)
        if hits:
            self.list.setCurrentRow(0)
        found = f"{len(hits)} MESSAGE{'' if len(hits) == 1 else 'S'} FOUND" if hits else "NOTHING FOUND"
        self.section_label.setText(f"{found} IN ALL CHATS: “{typed.upper()}”")
        self._update_buttons()

    def _add_row(self, title: str, meta: str, detail: str, target: tuple[int | None, int, int]) -> None:
        from nexus_desktop.chat.history import MATCH_MARKS

        item = QListWidgetItem(title)
        item.setData(TARGET_ROLE, target)
        item.setData(META_ROLE, meta)
        item.setData(DETAIL_ROLE, detail)
        plain = detail.replace(MATCH_MARKS[0], "").replace(MATCH_MARKS[1], "")
        item.setToolTip(f"{title}\n{plain}")
        self.list.addItem(item)

    def _select(self, chat_id: int | None) -> None:
        for row in range(self.list.count()):
            if self.list.item(row).data(TARGET_ROLE)[1] == chat_id:
                self.list.setCurrentRow(row)
                return

    def selected(self) -> tuple[int | None, int, int] | None:
        """(character id, or None for a group's chat; chat id; message id or 0) of the selected row."""
        item = self.list.currentItem()
        return None if item is None else tuple(item.data(TARGET_ROLE))  # type: ignore[return-value]

    def titles(self) -> list[str]:
        return [self.list.item(row).text() for row in range(self.list.count())]

    def _update_buttons(self) -> None:
        chosen = self.selected() is not None
        for button in (self.open_button, self.rename_button, self.branch_button, self.export_button):
            button.setEnabled(chosen)
        self.delete_button.setEnabled(chosen)
        self.import_button.setEnabled(self.character_id is not None or self.group_id is not None)

    def show_error(self, error: BaseException) -> None:
        from nexus_desktop.ui.chat_view import describe_error

        self.banners.show_banner("error", describe_error(error))

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Delete and self.list.hasFocus():
            self.ask_delete()
            return
        if event.key() == Qt.Key.Key_F2 and self.selected() is not None:
            self.rename_selected()
            return
        super().keyPressEvent(event)

    # Actions ------------------------------------------------------------------------------

    def open_selected(self) -> None:
        target = self.selected()
        if target is not None:
            open_chat(self.window_, *target)
            self.accept()

    def rename_selected(self) -> QInputDialog | None:
        target, item = self.selected(), self.list.currentItem()
        if target is None or item is None:
            return None
        dialog = QInputDialog(self)
        dialog.setWindowTitle("Rename chat")
        dialog.setLabelText("Title")
        dialog.setTextValue(item.text())
        dialog.textValueSelected.connect(lambda title: self._run(self.core.history.rename(target[1], title)))
        dialog.open()
        return dialog

    def branch_selected(self) -> None:
        target = self.selected()
        if target is None:
            return
        history = self.core.history

        async def branch() -> tuple[int | None, int]:
            chat = await history.branch_whole(target[1])
            assert chat.id is not None
            return chat.character_id, chat.id

        def opened(ids: tuple[int | None, int]) -> None:
            open_chat(self.window_, *ids)
            self.accept()

        QueryOp(parent=self, op=branch, success=opened).failure(self.show_error).run_in_background()

    def choose_export(self) -> None:
        from nexus_desktop.chat.st_chat import humanized_date

        item = self.list.currentItem()
        if item is None:
            return
        name = f"{self.with_name or 'chat'} - {humanized_date(datetime.now(UTC))}.jsonl"
        path, _ = QFileDialog.getSaveFileName(self, "Export chat", str(Path.home() / name), CHAT_FILE_FILTER)
        if path:
            self.export_to(Path(path))

    def export_to(self, path: Path) -> None:
        target = self.selected()
        if target is None:
            return

        def done(count: int) -> None:
            self.banners.show_banner("info", f"Saved {count} messages to {path}, as a SillyTavern chat file.")

        QueryOp(parent=self, op=self.core.history.export_st(target[1], path), success=done).failure(
            self.show_error
        ).run_in_background()

    def choose_import(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Import SillyTavern chats", "", CHAT_FILE_FILTER)
        if paths:
            self.import_files([Path(p) for p in paths])

    def import_files(self, paths: list[Path]) -> None:
        """Import each file as a new chat; each says where it went, a bad one says why."""
        history, fallback, group_id = self.core.history, self.character_id, self.group_id

        for path in paths:

            def done(imported: Any) -> None:
                self.banners.show_banner("info", imported.describe())

            QueryOp(parent=self, op=history.import_st(path, fallback, group_id), success=done).failure(
                self.show_error
            ).run_in_background()

    def ask_delete(self) -> QMessageBox | None:
        target, item = self.selected(), self.list.currentItem()
        if target is None or item is None:
            return None
        box = QMessageBox(
            QMessageBox.Icon.Warning,
            "Delete chat",
            f"Delete “{item.text()}” and all its messages? This cannot be undone.",
            QMessageBox.StandardButton.Cancel,
            self,
        )
        delete = box.addButton("Delete", QMessageBox.ButtonRole.DestructiveRole)

        def answered(_result: int) -> None:
            if box.clickedButton() is delete:
                self.delete_chat(target[1])

        box.finished.connect(answered)
        box.open()
        return box

    def delete_chat(self, chat_id: int) -> None:
        window, history = self.window_, self.core.history

        async def delete() -> None:
            view = window.chat_view
            character, group = view.character, view.group
            if view.chat_id != chat_id:
                await history.delete(chat_id)
                return
            await view.stop_and_wait()  # its reply would be written to a chat that is gone
            await history.delete(chat_id)
            # The character's or the group's latest chat, or a new one.
            if group is not None:
                await window.group_chats.open_group(group.id)
            elif character is not None and character.id is not None:
                await window.open_chat(character.id, None)

        self._run(delete())

    def _run(self, work: Any) -> None:
        QueryOp(parent=self, op=work).failure(self.show_error).run_in_background()


def show_chat_list(window: MainWindow) -> ChatListDialog:
    """Open the chat list for the window's character or group (non-modal: the chat stays usable)."""
    dialog = ChatListDialog(window)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.open()
    dialog.search.setFocus()
    return dialog


def branch_from_message(view: ChatView, message_id: int) -> None:
    """ "Branch from here": a new chat holding the messages up to this one, opened at once."""
    window = view.window()
    core = view.core
    assert core is not None
    history = core.history

    async def branch() -> None:
        chat = await history.branch(message_id)
        assert chat.id is not None
        await window.open_chat(chat.character_id, chat.id)  # type: ignore[attr-defined]

    QueryOp[None](parent=view, op=branch).failure(view.show_error).run_in_background()
