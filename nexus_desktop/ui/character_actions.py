"""What the sidebar's character buttons do: new, edit, import, export and delete.

File dialogs open from button slots (never inside an asyncio task); the work is
``CharacterService``'s (core.characters), run as background ops, and results come back as
banners.  The sidebar follows the service's change events on its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtWidgets import QFileDialog, QMessageBox

from nexus_desktop.ui.ops import QueryOp

if TYPE_CHECKING:
    from nexus_desktop.cards.service import ImportReport
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

        core = self.window.core
        engram = core.engram if core is not None else None
        editor = CharacterEditor(self.window, character, self._tool_names(character), engram)
        editor.saved.connect(lambda card, avatar: self.save(character, card, avatar, editor.chosen_policy))
        editor.open()
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
        core = self.window.core
        assert core is not None
        characters, db = core.characters, core.db
        governor = self._governor()

        async def save() -> None:
            if original is None or original.id is None:
                character = await characters.create(card, avatar)
            else:
                character = await characters.edit(original.id, card, avatar)
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
        core = self.window.core
        assert core is not None

        def done(report: ImportReport) -> None:
            for message in report.problems:
                self.window.chat_view.banners.show_banner("error", message)
            if report.added:
                self._info(f"Imported {', '.join(c.name for c in report.added)}.")
                QueryOp(parent=self.window, op=self.window.show_new_character(report.added[-1])).failure(
                    self._error
                ).run_in_background()

        QueryOp(parent=self.window, op=core.characters.import_files(paths), success=done).failure(
            self._error
        ).run_in_background()

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
        core = self.window.core
        assert core is not None
        QueryOp(
            parent=self.window,
            op=core.characters.export(character, path, version),
            success=lambda p: self._info(f"Exported {character.name} to {p}."),
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
        """Delete the character and its chats; the sidebar drops it and opens another on its own."""
        core = self.window.core
        assert core is not None and character.id is not None
        characters, character_id = core.characters, character.id

        async def delete() -> None:
            await self.window.forget_character(character_id)  # stop its reply before its chat goes
            await characters.delete(character_id)

        QueryOp[None](parent=self.window, op=delete).failure(self._error).run_in_background()
