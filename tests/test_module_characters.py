"""Characters a module registers join the character list once, with the module as their origin;
after that they are the user's: edits survive the module's restarts and a deletion sticks."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from nexus_desktop.db.store import AsyncStore, Store
from nexus_desktop.modules.characters import ModuleCharacters
from nexus_desktop.modules.service import ModuleService
from nexus_desktop.secrets import SecretStore
from tests.hostile.modules import write_module

T = TypeVar("T")
MODULE = "cast"

CAST = """
from nexus_desktop.cards.model import CharacterCard
from nexus_desktop.modules.hookspecs import hookimpl

SANNE = {"spec": "chara_card_v2", "spec_version": "2.0",
         "data": {"name": "Sanne", "description": "A ship's navigator.", "tags": ["sea"]}}


class Plugin:
    @hookimpl
    def register_characters(self, register):
        register(SANNE)
        register(CharacterCard(name="Brann", description="A blacksmith."))
{extra}

plugin = Plugin()
"""
GARBAGE = """
        register({"hello": "world"})
        register({"spec": "chara_card_v2", "data": {"description": "nobody"}})
"""


def write_cast(developer_dir: Path, *, garbage: bool = False) -> None:
    code = CAST.replace("{extra}", GARBAGE if garbage else "")
    write_module(developer_dir / MODULE, MODULE, code=code, hooks=["register_characters"])


async def running_app(
    tmp_path: Path, body: Callable[[Store, ModuleService, ModuleCharacters], Awaitable[T]]
) -> T:
    """One start of the app's module side: the service, the characters syncer, a real module process."""
    store = Store(tmp_path / "nexus.db")
    db = AsyncStore(store)
    service = ModuleService(
        store.engine,
        SecretStore(f"nexus-test-{uuid.uuid4().hex[:8]}", timeout=5),
        bundled_dir=tmp_path / "no-bundled",
        user_dir=tmp_path / "user",
        developer_dir=tmp_path / "dev",
        environ={},
    )
    characters = ModuleCharacters(db, service.supervisor.characters)
    service.listeners.append(characters.changed)
    await service.start()
    await characters.wait()
    try:
        return await body(store, service, characters)
    finally:
        await service.aclose()
        await characters.wait()
        db.close()


async def approve(service: ModuleService, characters: ModuleCharacters) -> None:
    await service.approve(await service.review(MODULE))
    await characters.wait()


def from_module(store: Store) -> dict[str, tuple[str, str]]:
    """Name -> (origin, description) of every character a module added."""
    return {c.name: (c.origin, c.card.get("description", "")) for c in store.list_characters() if c.origin}


def test_a_module_character_appears_once_with_the_module_as_its_origin(tmp_path: Path) -> None:
    write_cast(tmp_path / "dev")

    async def body(store: Store, service: ModuleService, characters: ModuleCharacters) -> None:
        assert from_module(store) == {}  # awaiting approval: not running, nothing registered
        await approve(service, characters)
        assert from_module(store) == {
            "Sanne": (MODULE, "A ship's navigator."),
            "Brann": (MODULE, "A blacksmith."),
        }
        sanne = store.find_character("Sanne")
        assert sanne is not None and sanne.card["tags"] == ["sea"]
        await service.reload(MODULE)
        await characters.wait()
        assert sorted(c.name for c in store.list_characters() if c.origin) == ["Brann", "Sanne"]

    asyncio.run(running_app(tmp_path, body))
    # A fresh start of the app: the module registers them again, and they are still there once.
    asyncio.run(running_app(tmp_path, lambda store, _s, _c: _noop()))
    store = Store(tmp_path / "nexus.db")
    assert sorted(c.name for c in store.list_characters()) == ["Brann", "Sanne"]
    store.close()


async def _noop() -> None:
    return None


def test_a_users_edit_of_a_module_character_survives_the_module_restarting(tmp_path: Path) -> None:
    write_cast(tmp_path / "dev")

    async def body(store: Store, service: ModuleService, characters: ModuleCharacters) -> None:
        await approve(service, characters)
        sanne, brann = store.find_character("Sanne"), store.find_character("Brann")
        assert sanne is not None and sanne.id is not None and brann is not None and brann.id is not None
        store.update_character(sanne.id, "Sanne", {**sanne.card, "description": "Mine now."}, None)
        store.update_character(brann.id, "Brann the Bold", {**brann.card, "name": "Brann the Bold"}, None)
        await service.reload(MODULE)
        await characters.wait()

    asyncio.run(running_app(tmp_path, body))
    asyncio.run(running_app(tmp_path, lambda store, _s, _c: _noop()))  # and the app restarting
    store = Store(tmp_path / "nexus.db")
    # Not overwritten, and the renamed one is not added again under its old name.
    assert from_module(store) == {"Sanne": (MODULE, "Mine now."), "Brann the Bold": (MODULE, "A blacksmith.")}
    store.close()


def test_a_module_character_the_user_deleted_stays_deleted(tmp_path: Path) -> None:
    write_cast(tmp_path / "dev")

    async def body(store: Store, service: ModuleService, characters: ModuleCharacters) -> None:
        await approve(service, characters)
        sanne = store.find_character("Sanne")
        assert sanne is not None and sanne.id is not None
        store.delete_character(sanne.id)
        await service.reload(MODULE)
        await characters.wait()
        assert set(from_module(store)) == {"Brann"}

    asyncio.run(running_app(tmp_path, body))
    asyncio.run(running_app(tmp_path, lambda store, _s, _c: _noop()))
    store = Store(tmp_path / "nexus.db")
    assert set(from_module(store)) == {"Brann"}  # the one not deleted is there, once
    store.close()


def test_a_module_registering_something_that_is_not_a_card_still_adds_its_good_characters(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_cast(tmp_path / "dev", garbage=True)
    caplog.set_level(logging.WARNING, logger="nexus_desktop.modules.characters")

    async def body(store: Store, service: ModuleService, characters: ModuleCharacters) -> Any:
        await approve(service, characters)
        return service.supervisor.status()[MODULE].state

    state = asyncio.run(running_app(tmp_path, body))
    assert state == "running"  # the module is not blamed: its process did nothing wrong
    store = Store(tmp_path / "nexus.db")
    assert set(from_module(store)) == {"Sanne", "Brann"}
    assert len(store.list_characters()) == 2
    store.close()
    skipped = [r.getMessage() for r in caplog.records if "not a card" in r.getMessage()]
    assert len(skipped) == 2 and all(f"Module {MODULE} " in line for line in skipped), skipped
