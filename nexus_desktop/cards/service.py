"""Characters: import card files, export, create, edit and delete, written once for every caller.

The window, the CLI and the core all call this.  Card files are read and written on a worker
thread, store work runs on the database thread (``AsyncStore``), and every write is announced as
``Change("characters")`` so the views showing characters refresh.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nexus_desktop.cards.errors import CardError
from nexus_desktop.cards.io import card_from_record, card_to_record, load_card_with_avatar, save_card
from nexus_desktop.cards.model import CharacterCard
from nexus_desktop.changes import Change, Changes
from nexus_desktop.db.store import AsyncStore
from nexus_desktop.db.tables import Character


@dataclass(frozen=True)
class ImportReport:
    """What importing several files did: each good file became a character; each bad one says why."""

    added: list[Character] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


class CharacterService:
    def __init__(self, db: AsyncStore, changes: Changes) -> None:
        self.db = db
        self.changes = changes

    async def import_file(self, path: Path, *, origin: object | None = None) -> Character:
        """Add the card in a .png, .json or .charx file as a new character.

        Raises ``CardError`` saying what is wrong with a bad file; nothing is added then."""
        card, avatar = await asyncio.to_thread(load_card_with_avatar, path)
        return await self.create(card, avatar, origin=origin)

    async def import_files(self, paths: Sequence[Path], *, origin: object | None = None) -> ImportReport:
        """Import each file; a bad one is reported and the others still import."""
        report = ImportReport()
        for path in paths:
            try:
                report.added.append(await self.import_file(path, origin=origin))
            except CardError as error:
                report.problems.append(f"Could not import {path.name}: {error}")
        return report

    async def export(self, character: Character, path: Path, version: int | None = None) -> Path:
        """Write the character's card to ``path`` (.png, or .json as V2 or V3); returns the file
        written, whose suffix is fixed to match the format when it did not."""
        if path.suffix.lower() not in (".png", ".json"):
            path = path.with_suffix(".json" if version else ".png")
        card = card_from_record(character.card)
        await asyncio.to_thread(save_card, card, path, version=version, avatar_png=character.avatar)
        return path

    async def create(
        self, card: CharacterCard, avatar: bytes | None = None, *, origin: object | None = None
    ) -> Character:
        name, record = card_to_record(card)
        character = await self.db.call(self.db.store.add_character, name, record, avatar)
        self.changes.emit(Change("characters", character_id=character.id, origin=origin))
        return character

    async def edit(
        self, character_id: int, card: CharacterCard, avatar: bytes | None, *, origin: object | None = None
    ) -> Character:
        name, record = card_to_record(card)
        character = await self.db.call(self.db.store.update_character, character_id, name, record, avatar)
        self.changes.emit(Change("characters", character_id=character_id, origin=origin))
        return character

    async def delete(self, character_id: int, *, origin: object | None = None) -> None:
        """Delete the character and all chats with them."""
        await self.db.call(self.db.store.delete_character, character_id)
        self.changes.emit(Change("characters", character_id=character_id, origin=origin))
        self.changes.emit(Change("chats", character_id=character_id, origin=origin))
