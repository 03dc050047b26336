"""What the sidebar's character buttons do: new, edit, import, export and delete.

File dialogs open from button slots (never inside an asyncio task); reading and writing card
files and the database happens in background ops, and results come back as banners.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtWidgets import QFileDialog, QMessageBox

from nexus_desktop.ui.ops import QueryOp

if TYPE_CHECKING:
    from nexus_desktop.control.governor import Governor
    from nexus_desktop.control.policy import Policy
    from nexus_desktop.db.tables import Character
    from nexus_desktop.ui.character_editor import CharacterEditor
    from nexus_desktop.ui.main_window import MainWindow

CARD_FILTER = "Character cards (*.png *.json *.charx);;All files (*)"
EXPORT_FILTER = "PNG card (*.png);;JSON card, V2 (*.json);;JSON card, V3 (*.json)"


class CharacterActions:
    def __init__(self, window: MainWindow) -> None:
        self.window = window

    def _info(self, text: str) -> None:
        self.window.chat_view.banners.show_banner("info", text)

    def _error(self, error: BaseException) -> None:
        self.window.chat_view.show_error(error)

    def _current(self) -> Character | None:
        return self.window.character(self.window.sidebar.current_id())

    # New and edit -------------------------------------------------------------------------

    def open_editor(self, character: Character | None) -> CharacterEditor:
        from nexus_desktop.ui.character_editor import CharacterEditor

        editor = CharacterEditor(self.window, character, self._tool_names(character))
        editor.saved.connect(lambda card, avatar: self.save(character, card, avatar, editor.chosen_policy))
        editor.open()
        core = self.window.core
        if character is not None and character.id is not None and core is not None:
            QueryOp(
                parent=editor,
                op=core.db.call(self._governor().policy_for, character.id),
                success=editor.set_policy,
            ).failure(editor.policy_unreadable).run_in_background()
        return editor

    def _governor(self) -> Governor:
        """The governor that enforces the policies: the editor reads and writes them through it."""
        core = self.window.core
        assert core is not None
        return core.governor

    def _tool_names(self, character: Character | None) -> list[str]:
        """The tools this character is offered now (the Limits page suggests them)."""
        from nexus_desktop.chat.tools import tools_for_card

        core = self.window.core
        if core is None:
            return []
        extensions = (character.card or {}).get("extensions") if character is not None else None
        tools = tools_for_card(
            extensions if isinstance(extensions, dict) else {}, core.modules.supervisor.tools()
        )
        return sorted(tool.name for tool in tools)

    def edit_current(self) -> None:
        character = self._current()
        if character is not None:
            self.open_editor(character)

    def save(
        self, original: Character | None, card: Any, avatar: bytes | None, policy: Policy | None = None
    ) -> None:
        """Store a new or edited character (and its limits, unless ``policy`` is None), then show it."""
        from nexus_desktop.cards.io import card_to_record

        core = self.window.core
        assert core is not None
        store, db = core.store, core.db
        name, record = card_to_record(card)
        governor = self._governor()

        async def save() -> None:
            if original is None or original.id is None:
                character = await db.call(store.add_character, name, record, avatar)
            else:
                character = await db.call(store.update_character, original.id, name, record, avatar)
            if policy is not None and character.id is not None and (original is not None or not policy.empty):
                await db.call(governor.set_policy, character.id, policy)
            await self.window.show_new_character(character)

        QueryOp[None](parent=self.window, op=save).failure(self._error).run_in_background()

    # Import and export --------------------------------------------------------------------

    def choose_import(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self.window, "Import character cards", "", CARD_FILTER)
        if paths:
            self.import_cards([Path(p) for p in paths])

    def import_cards(self, paths: list[Path]) -> None:
        """Add each card file as a character; a bad file gets a banner saying why, the rest still import."""
        from nexus_desktop.cards.errors import CardError
        from nexus_desktop.cards.io import card_to_record, load_card_with_avatar

        core = self.window.core
        assert core is not None
        store = core.store

        def work() -> tuple[list[Character], list[str]]:
            added, errors = [], []
            for path in paths:
                try:
                    card, avatar = load_card_with_avatar(path)
                except CardError as error:
                    errors.append(f"Could not import {path.name}: {error}")
                    continue
                name, record = card_to_record(card)
                added.append(store.add_character(name, record, avatar))
            return added, errors

        def done(result: tuple[list[Character], list[str]]) -> None:
            added, errors = result
            for message in errors:
                self.window.chat_view.banners.show_banner("error", message)
            if added:
                self._info(f"Imported {', '.join(c.name for c in added)}.")
                QueryOp(parent=self.window, op=self.window.show_new_character(added[-1])).failure(
                    self._error
                ).run_in_background()

        QueryOp(parent=self.window, op=work, success=done).failure(self._error).run_in_background()

    def choose_export(self) -> None:
        character = self._current()
        if character is None:
            return
        path, chosen = QFileDialog.getSaveFileName(
            self.window, "Export character", f"{character.name}.png", EXPORT_FILTER
        )
        if path:
            self.export_card(character, Path(path), 3 if "V3" in chosen else 2 if "V2" in chosen else None)

    def export_card(self, character: Character, path: Path, version: int | None) -> None:
        from nexus_desktop.cards.io import card_from_record, save_card

        if path.suffix.lower() not in (".png", ".json"):
            path = path.with_suffix(".json" if version else ".png")

        def work() -> Path:
            save_card(card_from_record(character.card), path, version=version, avatar_png=character.avatar)
            return path

        QueryOp(
            parent=self.window, op=work, success=lambda p: self._info(f"Exported {character.name} to {p}.")
        ).failure(self._error).run_in_background()

    # Delete -------------------------------------------------------------------------------

    def ask_delete_current(self) -> None:
        character = self._current()
        if character is None:
            return
        box = QMessageBox(
            QMessageBox.Icon.Warning,
            "Delete character",
            f"Delete {character.name} and all chats with them? This cannot be undone.",
            QMessageBox.StandardButton.Cancel,
            self.window,
        )
        delete = box.addButton("Delete", QMessageBox.ButtonRole.DestructiveRole)

        def answered(_result: int) -> None:
            if box.clickedButton() is delete:
                self.delete(character)

        box.finished.connect(answered)
        box.open()

    def delete(self, character: Character) -> None:
        core = self.window.core
        assert core is not None and character.id is not None
        store, db, character_id = core.store, core.db, character.id

        async def delete() -> None:
            await self.window.forget_character(character_id)
            await db.call(store.delete_character, character_id)
            await self.window.refresh_characters()
            await self.window.show_first_character()

        QueryOp[None](parent=self.window, op=delete).failure(self._error).run_in_background()
