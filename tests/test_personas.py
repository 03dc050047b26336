"""Personas: the chat's persona name fills {{user}} and its description joins the prompt the model
reads; one persona per chat, a default for the rest, and no "You" anywhere."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path

import pytest

from nexus_desktop.cards.model import CharacterCard, Lorebook, LorebookEntry
from nexus_desktop.changes import Change, Changes
from nexus_desktop.chat import personas
from nexus_desktop.chat.personas import PersonaError, PersonaService
from nexus_desktop.chat.prompt import Turn, build_prompt
from nexus_desktop.db import migrations
from nexus_desktop.db.store import AsyncStore, Store


async def words(texts: list[str]) -> list[int]:
    return [len(text.split()) for text in texts]


def system_text(card: CharacterCard, user_name: str, persona_description: str) -> str:
    plan = asyncio.run(
        build_prompt(
            card,
            [Turn("user", "hello")],
            user_name=user_name,
            persona_description=persona_description,
            count_tokens=words,
            context_size=4096,
            reply_tokens=100,
        )
    )
    return plan.messages[0].content


@pytest.fixture
def vega() -> CharacterCard:
    return CharacterCard(
        name="Vega",
        description="{{char}} is the ship's AI.",
        scenario="Deep space.",
        mes_example="<START>\n{{user}}: Hi\n{{char}}: Hello, {{user}}.",
        character_book=Lorebook(
            entries=[LorebookEntry(keys=["hello"], content="The ship is old.", id=1, position="after_char")]
        ),
    )


def chat_for(store: Store) -> int:
    character = store.add_character("Vega", {"name": "Vega"})
    assert character.id is not None
    chat = store.create_chat(character.id)
    assert chat.id is not None
    return chat.id


# The prompt --------------------------------------------------------------------------------


def test_the_persona_description_follows_the_card_as_sillytavern_places_it(vega: CharacterCard) -> None:
    system = system_text(vega, "Sam", "{{user}} is a retired pilot who hates small talk.")
    assert "Sam is a retired pilot who hates small talk." in system
    order = [
        system.index("Vega is the ship's AI."),
        system.index("Scenario: Deep space."),
        system.index("The ship is old."),  # lore placed after the character
        system.index("Sam is a retired pilot"),
        system.index("Example dialogue"),
    ]
    assert order == sorted(order)
    assert "Sam: Hi" in system and "Hello, Sam." in system  # the name fills {{user}} everywhere


def test_without_a_description_nothing_of_a_persona_joins_the_prompt(vega: CharacterCard) -> None:
    with_persona = system_text(vega, "Sam", "{{user}} is a retired pilot.")
    without = system_text(vega, "Sam", "")
    assert "retired pilot" in with_persona
    assert "retired pilot" not in without
    assert without == system_text(vega, "Sam", "   ")


# Personas in the database -----------------------------------------------------------------


def test_before_any_persona_the_user_is_called_by_a_real_name_never_you(store: Store) -> None:
    chat_id = chat_for(store)
    persona = personas.persona_for_chat(store.engine, chat_id)
    assert persona.name == personas.suggested_name()
    assert persona.name != "You" and persona.name.strip()
    assert persona.id is None  # nothing is saved until the user names themselves (or skips)


def test_the_first_persona_is_the_default_and_chats_speak_as_it(store: Store) -> None:
    chat_id = chat_for(store)
    sam = personas.add_persona(store.engine, "  Sam  ", "{{user}} likes tea.")
    kit = personas.add_persona(store.engine, "Kit")
    assert sam.is_default and not kit.is_default
    assert sam.name == "Sam"
    assert personas.persona_for_chat(store.engine, chat_id).name == "Sam"


def test_a_chat_speaks_as_its_own_persona_while_other_chats_keep_the_default(store: Store) -> None:
    first, second = chat_for(store), chat_for(store)
    personas.add_persona(store.engine, "Sam")
    kit = personas.add_persona(store.engine, "Kit")
    assert kit.id is not None
    personas.set_chat_persona(store.engine, first, kit.id)
    assert personas.persona_for_chat(store.engine, first).name == "Kit"
    assert personas.persona_for_chat(store.engine, second).name == "Sam"


def test_the_default_persona_cannot_be_deleted_but_another_can(store: Store) -> None:
    sam = personas.add_persona(store.engine, "Sam")
    kit = personas.add_persona(store.engine, "Kit")
    assert sam.id is not None and kit.id is not None
    with pytest.raises(PersonaError, match="Make another persona the default first"):
        personas.delete_persona(store.engine, sam.id)
    personas.delete_persona(store.engine, kit.id)
    assert [p.name for p in personas.list_personas(store.engine)] == ["Sam"]


def test_deleting_a_persona_moves_its_chats_to_the_default(store: Store) -> None:
    chat_id = chat_for(store)
    personas.add_persona(store.engine, "Sam")
    kit = personas.add_persona(store.engine, "Kit")
    assert kit.id is not None
    personas.set_chat_persona(store.engine, chat_id, kit.id)
    assert personas.delete_persona(store.engine, kit.id) == 1
    assert personas.persona_for_chat(store.engine, chat_id).name == "Sam"
    assert store.list_messages(chat_id) == []  # the chat itself is untouched


def test_making_another_persona_the_default_moves_the_mark(store: Store) -> None:
    chat_id = chat_for(store)
    personas.add_persona(store.engine, "Sam")
    kit = personas.add_persona(store.engine, "Kit")
    assert kit.id is not None
    personas.set_default_persona(store.engine, kit.id)
    listed = personas.list_personas(store.engine)
    assert [(p.name, p.is_default) for p in listed] == [("Kit", True), ("Sam", False)]
    assert personas.persona_for_chat(store.engine, chat_id).name == "Kit"
    lee = personas.add_persona(store.engine, "Lee", make_default=True)
    assert [p.name for p in personas.list_personas(store.engine) if p.is_default] == [lee.name]


def test_an_empty_or_taken_name_is_refused_with_advice_and_nothing_changes(store: Store) -> None:
    sam = personas.add_persona(store.engine, "Sam", "tea")
    assert sam.id is not None
    with pytest.raises(PersonaError, match="already have a persona named Sam"):
        personas.add_persona(store.engine, "sam")
    with pytest.raises(PersonaError, match="Give the persona a name"):
        personas.update_persona(store.engine, sam.id, "  \n ", "coffee", None)
    with pytest.raises(PersonaError, match="64 characters"):
        personas.add_persona(store.engine, "x" * 65)
    [kept] = personas.list_personas(store.engine)
    assert (kept.name, kept.description) == ("Sam", "tea")
    renamed = personas.update_persona(store.engine, sam.id, "Samantha\nLee", "coffee", b"png")
    assert (renamed.name, renamed.description, renamed.avatar) == ("Samantha Lee", "coffee", b"png")


def test_changes_to_personas_are_announced_to_the_views(store: Store) -> None:
    changes = Changes()
    heard: list[Change] = []
    changes.subscribe(heard.append)
    db = AsyncStore(store)
    service = PersonaService(db, changes)
    chat_id = chat_for(store)

    async def scenario() -> None:
        assert await service.needs_name()
        await service.add("Sam")
        kit = await service.add("Kit")
        assert kit.id is not None
        assert not await service.needs_name()
        await service.use_in_chat(chat_id, kit.id)
        assert (await service.for_chat(chat_id)).name == "Kit"

    asyncio.run(scenario())
    db._executor.shutdown()
    expected = [("personas", None), ("personas", None), ("personas", chat_id)]
    assert [(c.kind, c.chat_id) for c in heard] == expected


# Migrating from the settings' name -----------------------------------------------------------


def old_database(path: Path, monkeypatch: pytest.MonkeyPatch, user_name: str) -> None:
    """A database from before personas, whose settings hold ``user_name``."""
    with monkeypatch.context() as patch:
        patch.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:5])
        Store(path).close()
    with closing(sqlite3.connect(path)) as conn, conn:  # settings and a chat as that version wrote them
        old_settings = json.dumps({"user_name": user_name, "temperature": 0.8})
        conn.execute("INSERT INTO setting (key, value) VALUES ('settings', ?)", (old_settings,))
        now = "2025-01-01 00:00:00.000000"
        conn.execute(
            "INSERT INTO character (id, name, card, builtin, origin, created_at, updated_at) "
            "VALUES (1, 'Vega', '{}', 0, '', ?, ?)",
            (now, now),
        )
        conn.execute("INSERT INTO chat (character_id, created_at, updated_at) VALUES (1, ?, ?)", (now, now))


def test_the_name_set_in_the_old_settings_becomes_the_default_persona(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old_database(tmp_path / "nexus.db", monkeypatch, "Captain Ada")
    store = Store(tmp_path / "nexus.db")
    try:
        [persona] = personas.list_personas(store.engine)
        assert (persona.name, persona.is_default) == ("Captain Ada", True)
        assert persona.created_at.year >= 2024
        [chat] = store.list_chats(store.list_characters()[0].id or 0)
        assert chat.id is not None
        assert personas.persona_for_chat(store.engine, chat.id).name == "Captain Ada"
    finally:
        store.close()


def test_the_old_you_default_is_not_kept_as_a_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old_database(tmp_path / "nexus.db", monkeypatch, "You")
    store = Store(tmp_path / "nexus.db")
    try:
        assert personas.list_personas(store.engine) == []  # the first run will ask
    finally:
        store.close()


# The command line ---------------------------------------------------------------------------


def nexus(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NEXUS_DATA_DIR": str(data_dir)}
    env.pop("NEXUS_DEBUG", None)
    command = [sys.executable, "-m", "nexus_desktop.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)


def test_personas_from_the_command_line(private_data_dir: Path) -> None:
    empty = nexus("personas", "list", data_dir=private_data_dir)
    assert empty.returncode == 0 and "No personas yet" in empty.stdout
    added = nexus("personas", "add", "Sam", "--description", "{{user}} likes tea.", data_dir=private_data_dir)
    assert added.returncode == 0, added.stderr
    assert "Added Sam (the default persona)" in added.stdout
    assert nexus("personas", "add", "Kit", data_dir=private_data_dir).returncode == 0
    assert nexus("personas", "default", "kit", data_dir=private_data_dir).returncode == 0
    listed = nexus("personas", "list", data_dir=private_data_dir).stdout.splitlines()
    assert listed[0].split() == ["*", "Kit"]
    assert listed[1].split()[:2] == ["Sam", "{{user}}"]

    unknown = nexus("personas", "default", "Bob", data_dir=private_data_dir)
    assert unknown.returncode == 1 and "Traceback" not in unknown.stderr
    assert unknown.stderr.strip() == "nexus: error: No persona named 'Bob'. Your personas: Kit, Sam"
    taken = nexus("personas", "add", "SAM", data_dir=private_data_dir)
    assert taken.returncode == 1 and "already have a persona named Sam" in taken.stderr


# The prompt the real model reads --------------------------------------------------------------


@pytest.mark.model
def test_the_model_reads_the_chats_persona_and_never_another(private_data_dir: Path) -> None:
    from nexus_desktop.chat.service import ChatService, ReplySaved
    from nexus_desktop.core import AppCore
    from nexus_desktop.llm.contract import ChatInput, ModelSource, RunContext, StreamEvent, StreamingSource

    core = AppCore()
    core.settings = core.settings.model_copy(update={"threads": 1, "max_tokens": 8})
    read: list[ChatInput] = []

    class Reading(StreamingSource):
        """The real model source, noting each request it is given."""

        def __init__(self, inner: ModelSource) -> None:
            self.inner = inner
            self.name, self.context_size = inner.name, inner.context_size

        def stream(self, request: ChatInput, context: RunContext) -> AsyncIterator[StreamEvent]:
            read.append(request)
            return self.inner.stream(request, context)

        async def count_tokens(self, texts: list[str]) -> list[int]:
            return await self.inner.count_tokens(texts)

        async def aclose(self) -> None:
            pass

    async def reading_source(character: str) -> ModelSource:
        return Reading(await core.sources.get(character))

    chat = ChatService(core.db, reading_source, lambda: core.settings)

    async def scenario() -> list[ReplySaved]:
        sam = await core.personas.add("Sam", "{{user}} collects rare stamps.")
        kit = await core.personas.add("Kit", "{{user}} races motorbikes.")
        assert sam.id is not None and kit.id is not None
        vega = core.store.list_characters()[0]
        assert vega.id is not None
        opened, _ = await chat.new_chat(vega.id)
        assert opened.id is not None
        await core.personas.use_in_chat(opened.id, kit.id)
        saved = [e async for e in chat.send(opened.id, "Hello!") if isinstance(e, ReplySaved)]
        await core.personas.use_in_chat(opened.id, sam.id)
        saved += [e async for e in chat.send(opened.id, "Hello again!") if isinstance(e, ReplySaved)]
        return saved

    try:
        saved = asyncio.run(scenario())
    finally:
        asyncio.run(core.aclose())
    assert len(saved) == 2 and len(read) == 2
    as_kit, as_sam = (request.messages[0].content for request in read)
    assert "Kit races motorbikes." in as_kit and "stamps" not in as_kit
    assert "Sam collects rare stamps." in as_sam and "motorbikes" not in as_sam
    assert "inside Kit's gaming PC" in as_kit  # {{user}} in the card reads the persona's name
    assert [request.sampling.stop for request in read] == [("\nKit:",), ("\nSam:",)]
