"""The main window: character sidebar, chat, model picker and status line.

The window is shown before anything slow happens: the core (database), the model list, the
llama.cpp build check and the model itself all load in the background afterwards.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import shiboken6
from PySide6.QtCore import QSize, Signal
from PySide6.QtGui import QCloseEvent, QShowEvent
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QMainWindow, QMessageBox, QVBoxLayout, QWidget

from nexus_desktop.ui.chat_view import ChatView, describe_error
from nexus_desktop.ui.model_bar import StatusLine, TopBar
from nexus_desktop.ui.ops import QueryOp
from nexus_desktop.ui.sidebar import Sidebar, snippet

if TYPE_CHECKING:
    from nexus_desktop.core import AppCore
    from nexus_desktop.db.tables import Character
    from nexus_desktop.llm.contract import ModelSource
    from nexus_desktop.settings import Settings
    from nexus_desktop.ui.tray import Tray

log = logging.getLogger(__name__)

GGUF_FILTER = "GGUF models (*.gguf);;All files (*)"


def build_summary() -> tuple[str, str]:
    """The status line's llama.cpp text and its tooltip (imports llama.cpp: call off the Qt thread)."""
    from nexus_desktop.ui.build_info import describe_build

    return describe_build()


class MainWindow(QMainWindow):
    shown = Signal()
    closed = Signal()
    """The window was closed for good (not hidden to the tray): the app should quit."""
    model_state_changed = Signal(str)

    def __init__(self) -> None:
        super().__init__()
        from nexus_desktop import APP_NAME

        self.setWindowTitle(APP_NAME)
        self.resize(1280, 800)
        self.setMinimumSize(QSize(900, 560))
        self.core: AppCore | None = None
        self.tray: Tray | None = None
        self.characters: list[Character] = []
        self._model_dirty = True
        self._quitting = False
        self._build()

    def _build(self) -> None:
        central = QWidget()
        row = QHBoxLayout(central)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(0)
        self.sidebar = Sidebar()
        row.addWidget(self.sidebar)
        right = QVBoxLayout()
        right.setContentsMargins(0, 0, 0, 0)
        right.setSpacing(0)
        self.top_bar = TopBar()
        self.chat_view = ChatView()
        self.status_line = StatusLine()
        right.addWidget(self.top_bar)
        right.addWidget(self.chat_view, 1)
        right.addWidget(self.status_line)
        row.addLayout(right, 1)
        self.setCentralWidget(central)

        self.sidebar.character_selected.connect(self._open_character)
        self.sidebar.new_requested.connect(lambda: self.open_character_editor(None))
        self.sidebar.edit_requested.connect(self._edit_current)
        self.sidebar.import_requested.connect(self._choose_import)
        self.sidebar.export_requested.connect(self._choose_export)
        self.sidebar.delete_requested.connect(self._ask_delete_current)
        self.top_bar.new_chat_button.clicked.connect(self._new_chat)
        self.top_bar.settings_button.clicked.connect(lambda: self.open_settings())
        picker = self.top_bar.model_picker
        picker.local_chosen.connect(self._choose_local_model)
        picker.open_file_requested.connect(self._choose_model_file)
        picker.remote_chosen.connect(self._choose_remote)
        self.chat_view.settings_requested.connect(self.open_settings)
        self.chat_view.reload_requested.connect(self.reload_model)
        self.chat_view.model_used.connect(self._model_reported)

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.shown.emit()

    # Start-up ------------------------------------------------------------------------------

    async def attach(self, core: AppCore, *, load_model: bool = True) -> None:
        """Bind the core, fill the sidebar and open the last chat; the model loads afterwards."""
        self.core = core
        self.chat_view.bind(core, self.ensure_model)
        await self.refresh_characters(select_id=core.settings.last_character_id)
        if self.sidebar.current_id() is None and self.characters:
            self.sidebar.select(self.characters[0].id or 0, emit=False)
        current = self.sidebar.current_id()
        if current is not None:
            await self._show_character(current)
        self.refresh_models()
        QueryOp(parent=self, op=build_summary, success=lambda r: self.status_line.set_build(*r)).failure(
            lambda e: self.status_line.set_build("llama.cpp: not installed", describe_error(e))
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

    def character(self, character_id: int | None) -> Character | None:
        return next((c for c in self.characters if c.id == character_id), None)

    def _open_character(self, character_id: int) -> None:
        QueryOp(parent=self, op=self._show_character(character_id)).failure(
            self.chat_view.show_error
        ).run_in_background()

    async def _show_character(self, character_id: int, *, new_chat: bool = False) -> None:
        assert self.core is not None
        character = self.character(character_id)
        if character is None:
            return
        self.top_bar.set_character(character.name, character.avatar, snippet(character) or "Character")
        await self.chat_view.open_character(character, new_chat=new_chat)
        if self.core.settings.last_character_id != character_id:
            await self.core.update_settings(
                self.core.settings.model_copy(update={"last_character_id": character_id})
            )

    def _new_chat(self) -> None:
        current = self.sidebar.current_id()
        if current is not None:
            QueryOp(parent=self, op=self._show_character(current, new_chat=True)).failure(
                self.chat_view.show_error
            ).run_in_background()

    def open_character_editor(self, character: Character | None) -> Any:
        from nexus_desktop.ui.character_editor import CharacterEditor

        editor = CharacterEditor(self, character)
        editor.saved.connect(lambda card, avatar: self.save_character(character, card, avatar))
        editor.open()
        return editor

    def _edit_current(self) -> None:
        character = self.character(self.sidebar.current_id())
        if character is not None:
            self.open_character_editor(character)

    def save_character(self, original: Character | None, card: Any, avatar: bytes | None) -> None:
        """Store a new or edited character, then show it."""
        from nexus_desktop.cards.io import card_to_record

        assert self.core is not None
        store, db = self.core.store, self.core.db
        name, record = card_to_record(card)

        async def save() -> Character:
            if original is None or original.id is None:
                return await db.call(store.add_character, name, record, avatar)
            return await db.call(store.update_character, original.id, name, record, avatar)

        async def saved(character: Character) -> None:
            await self.refresh_characters(select_id=character.id)
            assert character.id is not None
            await self._show_character(character.id)

        QueryOp(parent=self, op=save, success=lambda c: self._run(saved(c))).failure(
            self.chat_view.show_error
        ).run_in_background()

    def _run(self, coroutine: Any) -> None:
        QueryOp(parent=self, op=coroutine).failure(self.chat_view.show_error).run_in_background()

    def _choose_import(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(
            self, "Import character cards", "", "Character cards (*.png *.json *.charx);;All files (*)"
        )
        if paths:
            self.import_cards([Path(p) for p in paths])

    def import_cards(self, paths: list[Path]) -> None:
        from nexus_desktop.cards.errors import CardError
        from nexus_desktop.cards.io import card_to_record, load_card_with_avatar

        assert self.core is not None
        store = self.core.store

        def work() -> tuple[list[Character], list[str]]:
            added, errors = [], []
            for path in paths:
                try:
                    card, avatar = load_card_with_avatar(path)
                except CardError as error:
                    errors.append(f"{path.name}: {error}")
                    continue
                name, record = card_to_record(card)
                added.append(store.add_character(name, record, avatar))
            return added, errors

        def done(result: tuple[list[Character], list[str]]) -> None:
            added, errors = result
            for message in errors:
                self.chat_view.banners.show_banner("error", f"Could not import {message}")
            if added:
                names = ", ".join(c.name for c in added)
                self.chat_view.banners.show_banner("info", f"Imported {names}.")
                self._run(self._after_import(added[-1]))

        # Reading and storing both happen on one worker; the store's own thread is not needed.
        QueryOp(parent=self, op=work, success=done).failure(self.chat_view.show_error).run_in_background()

    async def _after_import(self, character: Character) -> None:
        await self.refresh_characters(select_id=character.id)
        assert character.id is not None
        await self._show_character(character.id)

    def _choose_export(self) -> None:
        character = self.character(self.sidebar.current_id())
        if character is None:
            return
        filters = "PNG card (*.png);;JSON card, V2 (*.json);;JSON card, V3 (*.json)"
        path, chosen = QFileDialog.getSaveFileName(self, "Export character", f"{character.name}.png", filters)
        if path:
            version = 3 if "V3" in chosen else 2 if "V2" in chosen else None
            self.export_card(character, Path(path), version)

    def export_card(self, character: Character, path: Path, version: int | None) -> None:
        from nexus_desktop.cards.io import card_from_record, save_card

        if path.suffix.lower() not in (".png", ".json"):
            path = path.with_suffix(".json" if version else ".png")

        def work() -> Path:
            save_card(card_from_record(character.card), path, version=version, avatar_png=character.avatar)
            return path

        QueryOp(
            parent=self,
            op=work,
            success=lambda p: self.chat_view.banners.show_banner(
                "info", f"Exported {character.name} to {p}."
            ),
        ).failure(self.chat_view.show_error).run_in_background()

    def _ask_delete_current(self) -> None:
        character = self.character(self.sidebar.current_id())
        if character is None:
            return
        box = QMessageBox(
            QMessageBox.Icon.Warning,
            "Delete character",
            f"Delete {character.name} and all chats with them? This cannot be undone.",
            QMessageBox.StandardButton.Cancel,
            self,
        )
        delete = box.addButton("Delete", QMessageBox.ButtonRole.DestructiveRole)
        box.finished.connect(lambda _r: box.clickedButton() is delete and self.delete_character(character))
        box.open()

    def delete_character(self, character: Character) -> None:
        assert self.core is not None and character.id is not None
        store, db, character_id = self.core.store, self.core.db, character.id

        async def delete() -> None:
            if self.chat_view.character is not None and self.chat_view.character.id == character_id:
                await self.chat_view.stop_and_wait()
                self.chat_view.clear_chat()
                self.top_bar.clear_character()
            await db.call(store.delete_character, character_id)
            await self.refresh_characters()
            if self.characters and self.characters[0].id is not None:
                self.sidebar.select(self.characters[0].id, emit=False)
                await self._show_character(self.characters[0].id)

        QueryOp(parent=self, op=delete).failure(self.chat_view.show_error).run_in_background()

    # Model ---------------------------------------------------------------------------------

    def _model_label(self, settings: Settings | None = None) -> str:
        assert self.core is not None
        settings = settings or self.core.settings
        if settings.source == "remote":
            return f"remote: {settings.remote_model or 'server'}"
        return Path(settings.model_path).name if settings.model_path else "the bundled SmolLM2 model"

    async def ensure_model(self) -> ModelSource:
        """The model for the current settings, loading it (and saying so) when needed."""
        assert self.core is not None
        if self.core.sources.current is None or self._model_dirty:
            self._set_model_state("loading", f"Loading {self._model_label()}…")
        try:
            source = await self.core.sources.get()
        except Exception as error:
            self._model_dirty = True
            self._set_model_state("error", f"Model not loaded — {describe_error(error)}")
            raise
        self._model_dirty = False
        self._set_model_state("ready", f"Ready · {source.name} · {source.context_size} ctx")
        return source

    def _set_model_state(self, state: str, text: str) -> None:
        if not shiboken6.isValid(self.status_line):
            return  # the window closed while the model loaded
        self.status_line.set_state(state, text)
        self.model_state_changed.emit(state)

    def load_model_in_background(self) -> None:
        QueryOp(parent=self, op=self.ensure_model).failure(self.chat_view.show_error).run_in_background()

    def reload_model(self) -> None:
        assert self.core is not None
        sources = self.core.sources

        async def reload() -> None:
            await self.chat_view.stop_and_wait()
            self._model_dirty = True
            await sources.aclose()
            await self.ensure_model()

        self.chat_view.banners.clear("error")
        QueryOp(parent=self, op=reload).failure(self.chat_view.show_error).run_in_background()

    def _model_reported(self, outcome: object) -> None:
        if isinstance(outcome, BaseException):
            self._model_dirty = True
            self._set_model_state("error", f"Model error — {describe_error(outcome)}")
        elif self.core is not None and self.core.sources.current is not None:
            source = self.core.sources.current
            self._set_model_state("ready", f"Ready · {source.name} · {source.context_size} ctx")

    def refresh_models(self) -> None:
        from nexus_desktop.llm.catalog import default_model_path, list_models

        assert self.core is not None
        settings = self.core.settings

        def work() -> tuple[list[Any], Path | None]:
            return list_models(settings.models_dir or None), default_model_path()

        QueryOp(
            parent=self,
            op=work,
            success=lambda r: self.top_bar.model_picker.set_models(r[0], self.core.settings, r[1]),  # type: ignore[union-attr]
        ).failure(self.chat_view.show_error).run_in_background()

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
        path, _ = QFileDialog.getOpenFileName(self, "Open a GGUF model", start, GGUF_FILTER)
        if path:
            self._choose_local_model(path)

    def _choose_remote(self) -> None:
        assert self.core is not None
        if self.core.settings.remote_model:
            self.apply_settings(self.core.settings.model_copy(update={"source": "remote"}))
        else:
            self.open_settings("remote")

    # Settings ------------------------------------------------------------------------------

    def open_settings(self, page: str = "model") -> Any:
        from nexus_desktop.ui.settings_dialog import SettingsDialog

        assert self.core is not None
        dialog = SettingsDialog(self.core, self, page=page)
        dialog.applied.connect(self.apply_settings)
        dialog.open()
        return dialog

    def apply_settings(self, settings: Settings, on_done: Callable[[], object] | None = None) -> None:
        """Save and use new settings now; the model reloads in the background if it changed."""
        from nexus_desktop.chat.sources import source_key

        assert self.core is not None
        core = self.core
        try:
            changed_model = source_key(settings) != source_key(core.settings)
        except Exception:
            changed_model = True

        if changed_model:
            self._model_dirty = True
            self._set_model_state("loading", f"Loading {self._model_label(settings)}…")

        async def apply() -> None:
            if changed_model:
                await self.chat_view.stop_and_wait()
            await core.update_settings(settings)
            self.refresh_models()
            if changed_model:
                self._model_dirty = True
                self.chat_view.banners.clear("error")
                await self.ensure_model()

        QueryOp(parent=self, op=apply, success=lambda _r: on_done and on_done()).failure(
            self.chat_view.show_error
        ).run_in_background()

    # Closing -------------------------------------------------------------------------------

    def closeEvent(self, event: QCloseEvent) -> None:
        to_tray = self.core is not None and self.core.settings.minimize_to_tray
        if to_tray and self.tray is not None and not self._quitting:
            event.ignore()
            self.hide()
            self.tray.notify_hidden()
            return
        event.accept()
        self.closed.emit()

    def quit_for_real(self) -> None:
        self._quitting = True
        self.close()
