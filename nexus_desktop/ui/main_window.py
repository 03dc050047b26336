"""The main window: character sidebar, chat, model picker and status line.

It starts light: ``MainWindow(build=False)`` shows the chat screen's empty panels (ui/skeleton.py)
and can be shown at once; ``build_ui()`` replaces them with the widgets, whose modules are
imported only then.  The core (database),
the model list, the llama.cpp build check and the model itself load in the background afterwards.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import shiboken6
from PySide6.QtCore import QSize, Signal
from PySide6.QtWidgets import QHBoxLayout, QMainWindow, QVBoxLayout, QWidget

from nexus_desktop.ui.layouts import tight

if TYPE_CHECKING:
    from PySide6.QtGui import QCloseEvent, QResizeEvent

    from nexus_desktop.changes import Change
    from nexus_desktop.chat.sources import ModelState
    from nexus_desktop.core import AppCore
    from nexus_desktop.db.tables import Character
    from nexus_desktop.llm.contract import ModelSource
    from nexus_desktop.settings import Settings
    from nexus_desktop.ui.character_actions import CharacterActions
    from nexus_desktop.ui.character_editor import CharacterEditor
    from nexus_desktop.ui.chat_list import ChatListDialog
    from nexus_desktop.ui.chat_view import ChatView
    from nexus_desktop.ui.group_bar import GroupChats
    from nexus_desktop.ui.model_bar import StatusLine, TopBar
    from nexus_desktop.ui.ops import QueryOp
    from nexus_desktop.ui.settings_dialog import SettingsDialog
    from nexus_desktop.ui.sidebar import Sidebar
    from nexus_desktop.ui.tray import Tray

log = logging.getLogger(__name__)

GGUF_FILTER = "GGUF models (*.gguf);;All files (*)"
# The pages the app adds once its core is up (ui/lifecycle.py); reserving them when the window is
# built puts the page rail in place from the first frame, so nothing shifts when they arrive.
APP_PAGES = (
    ("models", "Models", "chip"),
    ("modules", "Modules", "grid"),
    ("training", "Training", "chart"),
    ("dashboards", "Dashboards", "gauge"),
)


def background(parent: QWidget, work: Any, success: Callable[[Any], object] | None = None) -> QueryOp[Any]:
    from nexus_desktop.ui.ops import QueryOp

    return QueryOp(parent=parent, op=work, success=success)


def describe(error: BaseException) -> str:
    from nexus_desktop.ui.chat_view import describe_error

    return describe_error(error)


def build_summary() -> tuple[str, str]:
    """The status line's llama.cpp text and hint (runs a probe process: call it off the Qt thread)."""
    from nexus_desktop.ui.build_info import describe_build

    return describe_build()


class MainWindow(QMainWindow):
    closed = Signal()
    """The window was closed for good (not hidden to the tray): the app should quit."""

    sidebar: Sidebar
    top_bar: TopBar
    chat_view: ChatView
    group_chats: GroupChats
    status_line: StatusLine

    def __init__(self, *, build: bool = True, reserved_pages: tuple[tuple[str, str, str], ...] = ()) -> None:
        super().__init__()
        from nexus_desktop import APP_NAME

        self.setWindowTitle(APP_NAME)
        self.resize(1280, 800)
        self.setMinimumSize(QSize(800, 500))
        self.core: AppCore | None = None
        self.tray: Tray | None = None
        self.characters: list[Character] = []
        self._character_actions: CharacterActions | None = None
        self._reserved_pages = reserved_pages
        self._page_builders: dict[str, Callable[[], QWidget]] = {}
        if build:
            self.build_ui()
        else:
            from nexus_desktop.ui.skeleton import startup_skeleton

            self.setCentralWidget(startup_skeleton(self.width(), rail=bool(reserved_pages)))

    @property
    def character_actions(self) -> CharacterActions:
        """New/import/export/edit/delete, built on first use (its dialogs are not needed at start)."""
        if self._character_actions is None:
            from nexus_desktop.ui.character_actions import CharacterActions

            self._character_actions = CharacterActions(self)
        return self._character_actions

    def build_ui(self) -> None:
        from PySide6.QtWidgets import QStackedWidget

        from nexus_desktop.ui.chat_view import ChatView
        from nexus_desktop.ui.model_bar import StatusLine, TopBar
        from nexus_desktop.ui.nav_rail import NavRail
        from nexus_desktop.ui.sidebar import Sidebar

        central = QWidget()
        outer = tight(QVBoxLayout(central))
        row = tight(QHBoxLayout())
        self.nav_rail = NavRail()
        self.nav_rail.page_chosen.connect(self.show_page)
        self.pages = QStackedWidget()
        row.addWidget(self.nav_rail)
        row.addWidget(self.pages, 1)
        outer.addLayout(row, 1)

        chat_page = QWidget()
        chat_row = tight(QHBoxLayout(chat_page))
        self.sidebar = Sidebar()
        chat_row.addWidget(self.sidebar)
        right = tight(QVBoxLayout())
        self.top_bar = TopBar()
        self.chat_view = ChatView()
        right.addWidget(self.top_bar)
        right.addWidget(self.chat_view, 1)
        chat_row.addLayout(right, 1)
        self._page_keys: list[str] = []
        self.add_page("chat", "Chat", "chat", chat_page)
        for key, title, icon_name in self._reserved_pages:
            self.add_page(key, title, icon_name, _placeholder_page(title))
        self.show_page("chat")

        self.status_line = StatusLine()
        outer.addWidget(self.status_line)
        self.setCentralWidget(central)

        self.sidebar.character_selected.connect(self._open_character)
        self.sidebar.new_requested.connect(lambda: self.character_actions.open_editor(None))
        self.sidebar.edit_requested.connect(lambda: self.character_actions.edit_current())
        self.sidebar.import_requested.connect(lambda: self.character_actions.choose_import())
        self.sidebar.export_requested.connect(lambda: self.character_actions.choose_export())
        self.sidebar.delete_requested.connect(lambda: self.character_actions.ask_delete_current())
        self.top_bar.new_chat_button.clicked.connect(self._new_chat)
        self.top_bar.chats_button.clicked.connect(self.show_chat_list)
        self.top_bar.settings_button.clicked.connect(lambda: self.open_settings())
        picker = self.top_bar.model_picker
        picker.local_chosen.connect(self._choose_local_model)
        picker.open_file_requested.connect(self._choose_model_file)
        picker.remote_chosen.connect(self._choose_remote)
        picker.worker_chosen.connect(self._choose_worker)
        self.chat_view.settings_requested.connect(self.open_settings)
        self.chat_view.reload_requested.connect(self.reload_model)
        from nexus_desktop.ui.shortcuts import ChatShortcuts

        self.shortcuts = ChatShortcuts(self)  # Esc, arrows, Ctrl+Enter, Ctrl+K, F1 (and the "?" button)

    # Pages ---------------------------------------------------------------------------------

    def add_page(self, key: str, title: str, icon_name: str, widget: QWidget) -> None:
        """Add a page (e.g. Training, Modules), or fill a reserved one; the rail shows from two."""
        if key in self._page_keys:
            index = self._page_keys.index(key)
            placeholder = self.pages.widget(index)
            showing = self.pages.currentIndex() == index
            self.pages.insertWidget(index, widget)
            if placeholder is not None:
                self.pages.removeWidget(placeholder)
                placeholder.deleteLater()
            if showing:
                self.pages.setCurrentIndex(index)
            return
        self.pages.addWidget(widget)
        self._page_keys.append(key)
        self.nav_rail.add_page(key, title, icon_name)

    def add_lazy_page(self, key: str, title: str, icon_name: str, build: Callable[[], QWidget]) -> None:
        """A page whose widget ``build()`` makes on its first visit (or in ``build_pages_soon``)."""
        if key not in self._page_keys:
            self.add_page(key, title, icon_name, _placeholder_page(title))
        self._page_builders[key] = build
        if self.pages.currentIndex() == self._page_keys.index(key):
            self._build_page(key)  # the user is already looking at its placeholder

    def _build_page(self, key: str) -> None:
        build = self._page_builders.pop(key, None)
        if build is not None:
            self.add_page(key, "", "", build())  # fills the placeholder's place

    def build_pages_soon(self) -> None:
        """Build the pages not visited yet, one per turn of the event loop, so typing goes between."""
        from PySide6.QtCore import QTimer

        def build_next() -> None:
            if self._page_builders and shiboken6.isValid(self):
                self._build_page(next(iter(self._page_builders)))
                QTimer.singleShot(0, build_next)

        QTimer.singleShot(0, build_next)

    def show_page(self, key: str) -> None:
        self._build_page(key)
        if key in self._page_keys:
            self.pages.setCurrentIndex(self._page_keys.index(key))
            self.nav_rail.select(key)

    def current_page(self) -> str:
        return self._page_keys[self.pages.currentIndex()]

    # Start-up ------------------------------------------------------------------------------

    async def attach(self, core: AppCore, *, load_model: bool = True) -> None:
        """Bind the core, fill the sidebar and open the last chat; the model loads afterwards."""
        self.core = core
        self.chat_view.bind(core, self.ensure_model)
        from nexus_desktop.ui.icons import use_line_icons_in_qt_dialogs
        from nexus_desktop.ui.theme import set_appearance

        set_appearance(core.settings.theme, core.settings.font_scale)  # Settings → Appearance
        use_line_icons_in_qt_dialogs()
        # The source manager owns the model's state; the status line only draws it.
        core.sources.listeners.subscribe(self._draw_model_state)
        from nexus_desktop.ui.game_mode_view import GameModeBadge

        self.game_mode_badge = GameModeBadge.attach(self.status_line, core.game_mode)  # game mode
        # The lists follow the store: writes here and in other processes (the CLI) arrive as changes.
        core.changes.subscribe(self._changed)
        core.db_watcher.start()
        core.module_characters.listeners.append(self._module_characters_added)
        from nexus_desktop.ui.group_bar import GroupChats

        self.group_chats = GroupChats(self, core)  # group chats: sidebar rows, member bar, opening
        await self.refresh_characters(select_id=core.settings.last_character_id)
        try:
            if not await self.group_chats.reopen_last():  # a group's chat, when that was open last
                if self.sidebar.current_id() is None:
                    await self.show_first_character()
                else:
                    await self._show_character(self.sidebar.current_id() or 0)
        finally:
            self.chat_view.stop_waiting_for_chat()
        self.refresh_models()
        background(self, build_summary, lambda r: self.status_line.set_build(*r)).failure(
            lambda e: self.status_line.set_build("llama.cpp: not installed", describe(e))
        ).run_in_background()
        if load_model:
            self.load_model_in_background()

    def set_tray(self, tray: Tray | None) -> None:
        self.tray = tray

    # Characters ----------------------------------------------------------------------------

    async def refresh_characters(self, select_id: int | None = None) -> None:
        assert self.core is not None
        self.characters = await self.core.db.call(self.core.store.list_characters)
        self.sidebar.set_characters(self.characters, select_id)
        await self.group_chats.refresh()  # the groups' rows follow the characters'; a member may be gone

    def _changed(self, change: Change) -> None:
        if change.kind == "characters" and shiboken6.isValid(self.sidebar):
            follow = background(self, self._characters_changed)
            follow.failure(self.chat_view.show_error).run_in_background()

    async def _characters_changed(self) -> None:
        """List the characters again; when the open one is gone, close its chat and open another."""
        await self.refresh_characters()
        shown = self.chat_view.character
        if shown is not None and shown.id is not None and self.character(shown.id) is None:
            await self.forget_character(shown.id)
        if self.sidebar.current_id() is None:
            await self.show_first_character()

    def _module_characters_added(self, _added: list[Character]) -> None:
        """Characters a module registered were stored: show them (and open one if none was open)."""
        if not shiboken6.isValid(self.sidebar):
            return  # the window closed while a module started

        async def show() -> None:
            await self.refresh_characters()
            if self.sidebar.current_id() is None:
                await self.show_first_character()

        background(self, show).failure(self.chat_view.show_error).run_in_background()

    def character(self, character_id: int | None) -> Character | None:
        return next((c for c in self.characters if c.id == character_id), None)

    async def show_first_character(self) -> None:
        if self.chat_view.group is not None:
            return  # a group chat is open: its sidebar row holds no character
        if self.characters and self.characters[0].id is not None:
            self.sidebar.select(self.characters[0].id, emit=False)
            await self._show_character(self.characters[0].id)

    async def show_new_character(self, character: Character) -> None:
        await self.refresh_characters(select_id=character.id)
        assert character.id is not None
        await self._show_character(character.id)

    async def forget_character(self, character_id: int) -> None:
        """Close the chat if it belongs to this character (it is about to be deleted)."""
        if self.chat_view.character is not None and self.chat_view.character.id == character_id:
            await self.chat_view.stop_and_wait()
            self.chat_view.clear_chat()
            self.top_bar.clear_character()

    def _open_character(self, character_id: int) -> None:
        background(self, self._show_character(character_id)).failure(
            self.chat_view.show_error
        ).run_in_background()

    async def open_chat(self, character_id: int | None, chat_id: int | None) -> None:
        """Show this chat (the character's latest when None), switching character if need be."""
        if character_id is None and chat_id is not None:  # a group's chat (a branch of one)
            await self.group_chats.open_group_chat(chat_id)
            return
        assert character_id is not None
        self.sidebar.select(character_id, emit=False)
        await self._show_character(character_id, chat_id=chat_id)

    async def _show_character(
        self, character_id: int, *, new_chat: bool = False, chat_id: int | None = None
    ) -> None:
        from nexus_desktop.ui.sidebar import snippet

        assert self.core is not None
        character = self.character(character_id)
        if character is None:
            return
        self.top_bar.set_character(character.name, character.avatar, snippet(character) or "Character")
        await self.chat_view.open_character(character, new_chat=new_chat, chat_id=chat_id)
        settings = self.core.settings
        if settings.last_character_id != character_id or settings.last_group_id is not None:
            opened = {"last_character_id": character_id, "last_group_id": None}  # reopened at start
            await self.core.update_settings(settings.model_copy(update=opened))

    def _new_chat(self) -> None:
        current = self.sidebar.current_id()
        if current is not None:
            background(self, self._show_character(current, new_chat=True)).failure(
                self.chat_view.show_error
            ).run_in_background()

    def show_chat_list(self) -> ChatListDialog:
        from nexus_desktop.ui.chat_list import show_chat_list

        return show_chat_list(self)

    def open_character_editor(self, character: Character | None) -> CharacterEditor:
        return self.character_actions.open_editor(character)

    def import_cards(self, paths: list[Path]) -> None:
        self.character_actions.import_cards(paths)

    def export_card(self, character: Character, path: Path, version: int | None) -> None:
        self.character_actions.export_card(character, path, version)

    # Model ---------------------------------------------------------------------------------

    async def ensure_model(self) -> ModelSource:
        """The model for the current settings, loading it when needed (the status line follows
        the source manager's state)."""
        assert self.core is not None
        character = self.chat_view.character
        # With the character's name, a promoted persona adapter loads now, not at the reply.
        return await self.core.sources.get(character.name if character is not None else None)

    def _draw_model_state(self, state: ModelState) -> None:
        from nexus_desktop.ui.model_state_view import status_text

        if not shiboken6.isValid(self.status_line):
            return  # the window closed while the model loaded
        self.status_line.set_state(*status_text(state))

    def load_model_in_background(self) -> None:
        background(self, self.ensure_model).failure(self.chat_view.show_error).run_in_background()

    def reload_model(self) -> None:
        assert self.core is not None
        sources = self.core.sources

        async def reload() -> None:
            await self.chat_view.stop_and_wait()
            await sources.aclose()
            await self.ensure_model()

        self.chat_view.banners.clear("error")
        background(self, reload).failure(self.chat_view.show_error).run_in_background()

    def refresh_models(self) -> None:
        from nexus_desktop.llm.catalog import default_model_path, list_models

        assert self.core is not None
        core = self.core
        folder = core.settings.models_folder

        def work() -> tuple[list[Any], Path | None]:
            # Without a chosen folder the data folder's models/ is listed: downloads land there.
            return list_models(folder()), default_model_path()

        def show(result: tuple[list[Any], Path | None]) -> None:
            self.top_bar.model_picker.set_models(result[0], core.settings, result[1])

        background(self, work, show).failure(self.chat_view.show_error).run_in_background()

    def _choose_local_model(self, path: str) -> None:
        from nexus_desktop.llm.catalog import default_model_path

        assert self.core is not None
        default = default_model_path()
        model_path = "" if default is not None and Path(path) == default else path
        self.apply_settings(
            self.core.settings.model_copy(update={"source": "local", "model_path": model_path})
        )

    def _choose_model_file(self) -> None:
        assert self.core is not None
        start = self.core.settings.models_dir or str(Path.home())
        from PySide6.QtWidgets import QFileDialog

        path, _ = QFileDialog.getOpenFileName(self, "Open a GGUF model", start, GGUF_FILTER)
        if path:
            self._choose_local_model(path)

    def _choose_remote(self) -> None:
        assert self.core is not None
        if self.core.settings.remote_model:
            self.apply_settings(self.core.settings.model_copy(update={"source": "remote"}))
        else:
            self.open_settings("remote")

    def _choose_worker(self) -> None:
        """Models → Remote worker: use it at once when one was set up, else its Settings page."""
        from nexus_desktop.settings import Settings

        assert self.core is not None
        settings = self.core.settings
        if settings.worker_credentials or settings.worker_url != Settings().worker_url:
            self.apply_settings(settings.model_copy(update={"source": "worker"}))
        else:
            self.open_settings("worker")

    # Settings ------------------------------------------------------------------------------

    def open_settings(self, page: str = "model") -> SettingsDialog:
        from nexus_desktop.ui.settings_dialog import SettingsDialog

        assert self.core is not None
        dialog = SettingsDialog(self.core, self, page=page)
        dialog.applied.connect(
            lambda settings, key_changed: self.apply_settings(
                settings, reload=key_changed and settings.source == "remote"
            )
        )
        dialog.open()
        return dialog

    def apply_settings(self, settings: Settings, *, reload: bool = False) -> None:
        """Save and use new settings now; the model reloads in the background if it changed.

        ``reload`` forces a new source even when the settings that shape it did not change (a new
        API key is read only when the remote source starts).
        """
        from nexus_desktop.chat.sources import source_key
        from nexus_desktop.ui.theme import set_appearance

        assert self.core is not None
        core = self.core
        set_appearance(settings.theme, settings.font_scale)  # at once; nothing to do when unchanged
        try:
            changed_model = source_key(settings) != source_key(core.settings)
        except Exception:  # e.g. no bundled model: let the load say what is wrong
            changed_model = True
        changed_model = changed_model or reload

        async def apply() -> None:
            if changed_model:
                await self.chat_view.stop_and_wait()
            await core.update_settings(settings)
            self.refresh_models()
            self.chat_view.refresh_names()
            if changed_model:
                self.chat_view.banners.clear("error")
                if reload:
                    await core.sources.aclose()
                await self.ensure_model()

        background(self, apply).failure(self.chat_view.show_error).run_in_background()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        if hasattr(self, "sidebar"):  # built (not the start-up skeleton)
            self.sidebar.fit_to_window(self.width())

    # Closing -------------------------------------------------------------------------------

    def closeEvent(self, event: QCloseEvent) -> None:
        to_tray = self.core is not None and self.core.settings.minimize_to_tray
        if to_tray and self.tray is not None:
            event.ignore()
            self.hide()
            self.tray.notify_hidden()
            return
        event.accept()
        self.closed.emit()


def _placeholder_page(title: str) -> QWidget:
    """What a reserved page shows until the app has started far enough to build it."""
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QLabel

    page = QWidget()
    label = QLabel(f"{title} opens once NEXUS has finished starting…", page)
    label.setObjectName("EmptyState")
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    tight(QVBoxLayout(page)).addWidget(label)
    return page
