"""Characters through ``CharacterService``: the one place card files become characters and back.

Real card files (tests/fixtures/cards), a real SQLite file, the service's own database thread.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from nexus_desktop.cards.errors import CardError
from nexus_desktop.cards.io import load_card
from nexus_desktop.cards.model import CharacterCard
from nexus_desktop.cards.service import CharacterService
from nexus_desktop.changes import Change, Changes
from nexus_desktop.db.store import AsyncStore, Store

CARDS = Path(__file__).parent / "fixtures" / "cards"


def names(service: CharacterService) -> list[str]:
    return [c.name for c in service.db.store.list_characters()]


def test_importing_card_files_adds_each_good_one_and_says_why_a_bad_one_failed(tmp_path: Path) -> None:
    async def scenario() -> None:
        db = AsyncStore(Store(tmp_path / "nexus.db"))
        changes = Changes()
        heard: list[Change] = []
        changes.subscribe(heard.append)
        service = CharacterService(db, changes)
        try:
            files = [CARDS / "v2_card.png", CARDS / "no_card.png", CARDS / "astra.charx"]
            report = await service.import_files(files)
            expected = [load_card(CARDS / "v2_card.png").name, load_card(CARDS / "astra.charx").name]
            assert [c.name for c in report.added] == expected
            assert names(service) == expected  # stored, and only the good ones
            [problem] = report.problems
            assert problem.startswith("Could not import no_card.png:") and "no character card" in problem
            assert [(c.kind, c.character_id) for c in heard] == [("characters", c.id) for c in report.added]
        finally:
            db.close()

    asyncio.run(scenario())


def test_a_single_bad_file_raises_the_cards_error_and_adds_nothing(tmp_path: Path) -> None:
    async def scenario() -> None:
        db = AsyncStore(Store(tmp_path / "nexus.db"))
        service = CharacterService(db, Changes())
        try:
            with pytest.raises(CardError, match="no character card"):
                await service.import_file(CARDS / "no_card.png")
            assert names(service) == []
            added = await service.import_file(CARDS / "v3_full.json")  # the control: a good file
            assert names(service) == [added.name]
        finally:
            db.close()

    asyncio.run(scenario())


def test_export_writes_a_card_that_imports_back_the_same(tmp_path: Path) -> None:
    async def scenario() -> None:
        db = AsyncStore(Store(tmp_path / "nexus.db"))
        service = CharacterService(db, Changes())
        try:
            original = await service.import_file(CARDS / "v2_card.png")
            written = await service.export(original, tmp_path / "out" / "copy.card", version=3)
            assert written == tmp_path / "out" / "copy.json"  # the suffix follows the format
            assert written.exists()
            again = await service.import_file(written)
            assert again.id != original.id
            spec = {"spec": "chara_card_v3", "spec_version": "3.0"}  # exported as V3, as asked
            assert again.card == {**original.card, **spec}
            png = await service.export(original, tmp_path / "copy.png")
            assert png.read_bytes().startswith(b"\x89PNG")
        finally:
            db.close()

    (tmp_path / "out").mkdir()
    asyncio.run(scenario())


def test_create_edit_and_delete_are_stored_and_announced(tmp_path: Path) -> None:
    async def scenario() -> None:
        db = AsyncStore(Store(tmp_path / "nexus.db"))
        changes = Changes()
        heard: list[Change] = []
        changes.subscribe(heard.append)
        service = CharacterService(db, changes)
        try:
            made = await service.create(CharacterCard(name="  Orion ", description="A navigator."))
            assert made.id is not None and made.name == "Orion"
            edited = await service.edit(made.id, CharacterCard(name="Orion the Bold"), None)
            assert names(service) == ["Orion the Bold"] and edited.card["description"] == ""
            chat = db.store.create_chat(made.id, ["Hello."])
            await service.delete(made.id, origin="the test")
            assert names(service) == []
            assert chat.id is not None and db.store.list_messages(chat.id) == []  # its chats went too
            assert [(c.kind, c.character_id) for c in heard] == [
                ("characters", made.id),
                ("characters", made.id),
                ("characters", made.id),
                ("chats", made.id),
            ]
            assert heard[-1].origin == "the test"
        finally:
            db.close()

    asyncio.run(scenario())
