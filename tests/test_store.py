"""The database keeps characters, chats, swipes and settings across restarts."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlmodel import SQLModel

from nexus_desktop.builder import tables as builder_tables  # noqa: F401  (registered too)
from nexus_desktop.coevolve import tables as coevolve_tables  # noqa: F401  (registered too)
from nexus_desktop.control import tables as control_tables  # noqa: F401  (registered too)
from nexus_desktop.db import tables  # noqa: F401  (registers the tables in SQLModel.metadata)
from nexus_desktop.db.migrations import MIGRATIONS
from nexus_desktop.db.store import NotFoundError, Store
from nexus_desktop.settings import Settings


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "nexus.db"


def reopen(store: Store) -> Store:
    store.close()
    return Store(store.path)


def test_database_uses_wal_journal_and_latest_schema(db_path: Path) -> None:
    Store(db_path).close()
    conn = sqlite3.connect(db_path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


def test_migrated_schema_matches_the_table_models(db_path: Path) -> None:
    Store(db_path).close()
    conn = sqlite3.connect(db_path)
    for name, table in SQLModel.metadata.tables.items():
        columns = {row[1] for row in conn.execute(f"PRAGMA table_info({name})")}
        assert columns == {c.name for c in table.columns}, name


def test_reopening_does_not_rerun_migrations_or_lose_data(db_path: Path) -> None:
    store = Store(db_path)
    store.add_character("Vega", {"name": "Vega"})
    store = reopen(store)
    assert [c.name for c in store.list_characters()] == ["Vega"]


def test_database_from_a_newer_app_is_refused_with_advice(db_path: Path) -> None:
    Store(db_path).close()
    conn = sqlite3.connect(db_path)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    conn.commit()
    with pytest.raises(RuntimeError, match="newer NEXUS Desktop"):
        Store(db_path)


def test_a_new_chat_opens_with_the_greeting_and_alternates_as_swipes(db_path: Path) -> None:
    store = Store(db_path)
    character = store.add_character("Vega", {"name": "Vega"})
    assert character.id is not None
    chat = store.create_chat(character.id, ["Hello, pilot.", "Systems green."])
    assert chat.id is not None
    [greeting] = store.list_messages(chat.id)
    assert greeting.role == "assistant"
    assert greeting.swipes == ["Hello, pilot.", "Systems green."]
    assert greeting.content == "Hello, pilot."


def test_swipes_edits_and_deletes_survive_a_restart(db_path: Path) -> None:
    store = Store(db_path)
    character = store.add_character("Vega", {"name": "Vega"})
    assert character.id is not None
    chat = store.create_chat(character.id)
    assert chat.id is not None
    user = store.add_message(chat.id, "user", "hi")
    reply = store.add_message(chat.id, "assistant", "first", {"tokens_per_second": 50.0})
    assert reply.id is not None and user.id is not None
    store.add_swipe(reply.id, "second", {"tokens_per_second": 40.0})
    store.set_swipe_index(reply.id, 0)
    store.edit_message(reply.id, "first, edited")

    store = reopen(store)
    messages = store.list_messages(chat.id)
    assert [m.content for m in messages] == ["hi", "first, edited"]
    assert messages[1].swipes == ["first, edited", "second"]
    assert messages[1].stats is None  # edited text has no generation figures
    assert store.set_swipe_index(reply.id, 1).stats == {"tokens_per_second": 40.0}

    store.delete_message(user.id)
    assert [m.content for m in reopen(store).list_messages(chat.id)] == ["second"]


def test_choosing_a_swipe_that_does_not_exist_is_refused(db_path: Path) -> None:
    store = Store(db_path)
    character = store.add_character("Vega", {"name": "Vega"})
    assert character.id is not None
    chat = store.create_chat(character.id, ["hello"])
    assert chat.id is not None
    [greeting] = store.list_messages(chat.id)
    assert greeting.id is not None
    with pytest.raises(IndexError, match="no alternative 3"):
        store.set_swipe_index(greeting.id, 2)


def test_deleting_a_character_deletes_its_chats(db_path: Path) -> None:
    store = Store(db_path)
    character = store.add_character("Vega", {"name": "Vega"})
    assert character.id is not None
    chat = store.create_chat(character.id, ["hello"])
    store.delete_character(character.id)
    assert store.list_characters() == []
    assert chat.id is not None
    assert store.list_messages(chat.id) == []
    with pytest.raises(NotFoundError):
        store.get_chat(chat.id)


def test_settings_round_trip_and_bad_stored_values_fall_back_to_defaults(db_path: Path) -> None:
    store = Store(db_path)
    store.save_settings(Settings(temperature=0.3, gpu_layers=12, model_path="/models/a.gguf"))
    store = reopen(store)
    settings = store.load_settings()
    assert (settings.temperature, settings.gpu_layers, settings.model_path) == (0.3, 12, "/models/a.gguf")

    conn = sqlite3.connect(db_path)
    conn.execute(
        "UPDATE setting SET value = json_set(value, '$.temperature', 99, '$.unknown', 1) WHERE key='settings'"
    )
    conn.commit()
    settings = reopen(store).load_settings()
    assert settings.temperature == Settings().temperature
    assert settings.model_path == "/models/a.gguf"


def test_character_lookup_by_name_ignores_case(db_path: Path) -> None:
    store = Store(db_path)
    store.add_character("Vega", {"name": "Vega"})
    found = store.find_character("vega")
    assert found is not None and found.name == "Vega"
    assert store.find_character("nobody") is None


def test_saving_messages_while_another_connection_writes_never_fails_as_locked(db_path: Path) -> None:
    """The training collector writes on its own connection while the chat saves messages.

    A transaction that reads and then writes must not fail with "database is locked" because
    another connection committed in between (SQLite refuses that upgrade without waiting).
    """
    import threading

    store = Store(db_path)
    character = store.add_character("Vega", {"name": "Vega"})
    assert character.id is not None
    chat = store.create_chat(character.id, ["Hello."])
    assert chat.id is not None
    stop = threading.Event()
    other_writes = 0

    def other_writer() -> None:
        nonlocal other_writes
        conn = sqlite3.connect(db_path, isolation_level=None, timeout=5)
        while not stop.is_set():
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("UPDATE chat SET title = title WHERE id = ?", (chat.id,))
            conn.execute("COMMIT")
            other_writes += 1
        conn.close()

    writer = threading.Thread(target=other_writer)
    writer.start()
    try:
        for i in range(300):
            store.add_message(chat.id, "user", f"message {i}")
    finally:
        stop.set()
        writer.join()
    assert other_writes > 0
    assert len(store.list_messages(chat.id)) == 301
