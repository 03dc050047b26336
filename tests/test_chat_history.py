"""Every chat a character has: listed newest first, renamed, deleted, branched, and searched across
all characters, in a real SQLite database (search reads the FTS5 index the v5 triggers keep)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from nexus_desktop.changes import Change, Changes
from nexus_desktop.chat.history import ChatHistory, fts_query
from nexus_desktop.db.migrations import MIGRATIONS
from nexus_desktop.db.store import AsyncStore, NotFoundError, Store
from nexus_desktop.db.tables import Chat


@pytest.fixture
def changes() -> Changes:
    return Changes()


@pytest.fixture
def history(store: Store, changes: Changes) -> Iterator[ChatHistory]:
    db = AsyncStore(store)
    yield ChatHistory(db, changes)
    db._executor.shutdown(wait=True)


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def new_chat(store: Store, character: str, *turns: str, title: str = "") -> Chat:
    """A chat opened by the character's greeting, then ``turns`` alternating user / character."""
    found = store.find_character(character) or store.add_character(character, {"name": character})
    assert found.id is not None
    chat = store.create_chat(found.id, [f"Hello from {character}."], title=title)
    assert chat.id is not None
    for number, turn in enumerate(turns):
        store.add_message(chat.id, "user" if number % 2 == 0 else "assistant", turn)
    return chat


def test_every_chat_of_a_character_is_listed_newest_first_with_its_count_and_last_line(
    store: Store, history: ChatHistory
) -> None:
    old = new_chat(
        store, "Vega", "Tell me about the stars.", "They burn.\nAnd they sing.", title="Stargazing"
    )
    new = new_chat(store, "Vega")  # "New chat": the old one stays listed
    new_chat(store, "Juniper", "Ahoy")

    listed = run(history.chats(old.character_id))

    assert [c.id for c in listed] == [new.id, old.id]
    assert listed[1].title == "Stargazing" and listed[1].message_count == 3
    assert listed[1].preview == "They burn."  # the newest message's first line
    assert listed[0].title.startswith("Chat from ") and listed[0].preview == "Hello from Vega."
    assert {c.character_name for c in run(history.chats())} == {"Vega", "Juniper"}
    store.add_message(old.id or 0, "user", "Still there?")  # writing to it brings it back to the top
    assert [c.id for c in run(history.chats(old.character_id))] == [old.id, new.id]


def test_renaming_shows_the_new_title_and_an_empty_one_is_refused(
    store: Store, history: ChatHistory, changes: Changes
) -> None:
    chat = new_chat(store, "Vega")
    seen: list[Change] = []
    changes.subscribe(seen.append)

    with pytest.raises(ValueError, match="Give the chat a title"):
        run(history.rename(chat.id or 0, "   "))
    run(history.rename(chat.id or 0, "  The   long voyage "))

    assert run(history.summary(chat.id or 0)).title == "The long voyage"
    assert seen == [Change("chats", chat_id=chat.id, character_id=chat.character_id, origin=history)]
    with pytest.raises(NotFoundError, match="no longer exists"):
        run(history.rename(12345, "Gone"))


def test_deleting_a_chat_removes_it_and_its_messages_from_the_list_and_search(
    store: Store, history: ChatHistory
) -> None:
    doomed = new_chat(store, "Vega", "the lighthouse keeper")
    kept = new_chat(store, "Vega", "the lighthouse at dawn")
    assert len(run(history.search("lighthouse"))) == 2

    run(history.delete(doomed.id or 0))

    assert [c.id for c in run(history.chats(doomed.character_id))] == [kept.id]
    assert [hit.chat_id for hit in run(history.search("lighthouse"))] == [kept.id]
    with pytest.raises(NotFoundError):
        run(history.open(doomed.id or 0))


def test_branching_copies_the_messages_up_to_the_chosen_one_into_a_new_chat(
    store: Store, history: ChatHistory
) -> None:
    chat = new_chat(
        store, "Vega", "Left or right?", "Left, always.", "Why left?", "Luck.", title="Crossroads"
    )
    messages = store.list_messages(chat.id or 0)
    store.add_swipe(messages[2].id or 0, "Right, obviously.")  # the chosen reply has two swipes

    branch = run(history.branch(messages[2].id or 0))

    assert branch.title == "Branch of Crossroads #3"
    _, copied = run(history.open(branch.id or 0))
    assert [(m.role, m.swipes, m.swipe_index) for m in copied] == [
        (m.role, m.swipes, m.swipe_index) for m in store.list_messages(chat.id or 0)[:3]
    ]
    assert copied[2].content == "Right, obviously."
    assert len(store.list_messages(chat.id or 0)) == 5  # the original is untouched
    assert run(history.chats(chat.character_id))[0].id == branch.id  # newest first: opened at once


def test_branching_from_a_message_deleted_meanwhile_says_so_and_makes_nothing(
    store: Store, history: ChatHistory
) -> None:
    chat = new_chat(store, "Vega", "One", "Two")
    message = store.list_messages(chat.id or 0)[1]
    store.delete_message(message.id or 0)

    with pytest.raises(NotFoundError, match="That message was deleted, so there is nothing to branch from"):
        run(history.branch(message.id or 0))
    assert len(run(history.chats(chat.character_id))) == 1
    run(history.branch(store.list_messages(chat.id or 0)[0].id or 0))  # positive control
    assert len(run(history.chats(chat.character_id))) == 2


def test_search_finds_words_in_every_characters_chats_with_a_snippet(
    store: Store, history: ChatHistory
) -> None:
    vega = new_chat(store, "Vega", "Have you seen the comet tonight?", title="Night sky")
    new_chat(store, "Juniper", "The comet passed over the Skylark.")
    new_chat(store, "Juniper", "Fog again.")

    hits = run(history.search("comet"))

    assert sorted(hit.character_name for hit in hits) == ["Juniper", "Vega"]
    vega_hit = next(hit for hit in hits if hit.chat_id == vega.id)
    assert vega_hit.chat_title == "Night sky"
    assert vega_hit.snippet == "Have you seen the \x02comet\x03 tonight?"
    assert vega_hit.message_id == store.list_messages(vega.id or 0)[1].id
    assert run(history.search("come")) and run(history.search("COMET FOG")) == []  # every word must be there


def test_search_follows_the_shown_swipe_and_edits(store: Store, history: ChatHistory) -> None:
    chat = new_chat(store, "Vega", "Pick a colour")
    reply = store.add_message(chat.id or 0, "assistant", "Crimson.")
    store.add_swipe(reply.id or 0, "Turquoise.")  # now shown

    assert run(history.search("crimson")) == [] and len(run(history.search("turquoise"))) == 1
    store.set_swipe_index(reply.id or 0, 0)
    assert len(run(history.search("crimson"))) == 1 and run(history.search("turquoise")) == []
    store.edit_message(reply.id or 0, "Scarlet.")
    assert run(history.search("crimson")) == [] and len(run(history.search("scarlet"))) == 1


@pytest.mark.parametrize(
    ("typed", "found"),
    [
        ('"', 0),
        ("*", 0),
        ("'", 0),
        ("comet*", 1),
        ("(comet", 1),
        ("comet AND", 1),  # "and" is a word of the message, not an operator
        ("NEAR(", 1),
        ("-comet", 1),
        ("^comet", 1),
        ("comet OR ''", 1),
        ("col:comet", 0),  # "col" is not in the message
    ],
)
def test_search_syntax_characters_typed_by_users_are_words_not_errors(
    store: Store, history: ChatHistory, typed: str, found: int
) -> None:
    new_chat(store, "Vega", "The comet, AND the moon: near, or far?")
    assert len(run(history.search(typed))) == found


def test_search_handles_accents_other_scripts_and_emoji(store: Store, history: ChatHistory) -> None:
    new_chat(store, "Vega", "Un café crème, s'il vous plaît.", "Привет, мир!", "我喜欢龙 🐉")

    assert len(run(history.search("cafe creme"))) == 1  # accents need not be typed
    assert len(run(history.search("Café"))) == 1
    assert len(run(history.search("мир"))) == 1
    assert len(run(history.search("我喜"))) == 1  # a prefix of an unspaced run
    assert run(history.search("🐉")) == [] and run(history.search("   ")) == []
    assert fts_query('say "hi" (now)*') == '"say"* "hi"* "now"*'


def test_messages_written_by_another_process_are_found(store: Store, history: ChatHistory) -> None:
    chat = new_chat(store, "Vega")
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from nexus_desktop.db.store import Store
        store = Store(Path({str(store.path)!r}))
        store.add_message({chat.id}, "user", "A message about albatrosses.")
        store.close()
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)

    hits = run(history.search("albatross"))
    assert [hit.chat_id for hit in hits] == [chat.id]


def test_messages_from_before_the_upgrade_are_searchable(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:  # the schema and data of the app before chat history (v4)
        for step in MIGRATIONS[:4]:
            step(conn)
        conn.execute(text("PRAGMA user_version = 4"))
        conn.execute(
            text(
                "INSERT INTO character (id, name, card, builtin, created_at, updated_at) "
                "VALUES (1, 'Vega', '{}', 0, '2024-01-01', '2024-01-01')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO chat (id, character_id, title, created_at, updated_at) "
                "VALUES (1, 1, '', '2024-01-01', '2024-01-01')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO message (chat_id, position, role, swipes, swipe_index, swipe_stats, created_at) "
                "VALUES (1, 0, 'assistant', :swipes, 1, '[null, null]', '2024-01-01')"
            ),
            {"swipes": '["Old words", "Ancient lighthouse"]'},
        )
    engine.dispose()

    store = Store(path)
    db = AsyncStore(store)
    try:
        hits = run(ChatHistory(db).search("lighthouse"))
        assert [(hit.character_name, hit.snippet) for hit in hits] == [("Vega", "Ancient \x02lighthouse\x03")]
        assert run(ChatHistory(db).search("old")) == []  # only the shown swipe
    finally:
        db.close()


# Group chats ------------------------------------------------------------------------------------


def crew(store: Store) -> tuple[int, int, Chat]:
    """Vega and Bramble, a group "Crew" of the two, and its first chat (their greetings)."""
    from nexus_desktop.chat.groups import create_group, latest_group_chat

    vega = store.add_character("Vega", {"name": "Vega", "first_mes": "Hi, {{user}}!"})
    bramble = store.add_character("Bramble", {"name": "Bramble", "first_mes": "Welcome in!"})
    assert vega.id is not None and bramble.id is not None
    group = create_group(store.engine, "Crew", [vega.id, bramble.id], "list")
    return vega.id, bramble.id, latest_group_chat(store.engine, group.id)


def test_a_groups_chats_are_listed_by_group_and_search_names_the_group(
    store: Store, history: ChatHistory
) -> None:
    vega, _bramble, group_chat = crew(store)
    assert group_chat.id is not None and group_chat.group_id is not None
    store.add_message(group_chat.id, "user", "Who keeps the lighthouse?")
    own = store.create_chat(vega, ["Ahoy."])
    store.add_message(own.id or 0, "user", "The lighthouse keeper is asleep.")

    listed = run(history.chats(group_id=group_chat.group_id))
    assert [(c.id, c.with_label, c.character_id) for c in listed] == [(group_chat.id, "Crew (group)", None)]
    assert listed[0].message_count == 3 and listed[0].preview == "Who keeps the lighthouse?"
    assert [c.id for c in run(history.chats(vega))] == [own.id]  # a member's own chats stay its own
    assert {c.with_label for c in run(history.chats())} == {"Crew (group)", "Vega"}  # every chat

    hits = run(history.search("lighthouse"))
    assert {(hit.chat_id, hit.with_label, hit.character_id) for hit in hits} == {
        (group_chat.id, "Crew (group)", None),
        (own.id, "Vega", vega),
    }


def st_group_file(path: Path) -> Path:
    """A group chat as SillyTavern saves one: a header naming no character, then lines whose
    "name" is each speaker (with the avatar fields SillyTavern adds to a member's lines)."""
    lines: list[dict[str, object]] = [
        {"user_name": "unused", "character_name": "unused", "create_date": "2024-7-12@01h31m37s"},
        {"name": "Vega", "is_user": False, "mes": "Hi, Rowan!", "original_avatar": "Vega.png", "extra": {}},
        {"name": "Bramble", "is_user": False, "mes": "Welcome in!", "original_avatar": "Bramble.png"},
        {"name": "Rowan", "is_user": True, "mes": "Hello, you two."},
        {"name": "bramble", "is_user": False, "mes": "Ale?", "swipes": ["Ale?", "Cider?"], "swipe_id": 0},
        {"name": "Moss", "is_user": False, "mes": "I was in this chat once."},
    ]
    lines[0]["chat_metadata"] = {"note_prompt": ""}
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")
    return path


def test_a_sillytavern_group_chat_imports_into_a_group_and_exports_with_each_speakers_name(
    store: Store, history: ChatHistory, tmp_path: Path
) -> None:
    vega, bramble, group_chat = crew(store)
    group_id = group_chat.group_id

    imported = run(history.import_st(st_group_file(tmp_path / "Crew night.jsonl"), group_id=group_id))

    assert imported.chat.group_id == group_id and imported.chat.message_count == 5
    assert imported.describe() == (
        "Imported 5 messages into the new chat “Crew night” of Crew; the lines of Moss, who is not "
        "in it, keep that name."
    )
    messages = store.list_messages(imported.chat.id)
    assert [(m.speaker_id, m.speaker_name) for m in messages] == [
        (vega, "Vega"),
        (bramble, "Bramble"),
        (None, ""),
        (bramble, "Bramble"),  # names match in any case
        (None, "Moss"),  # no member's: the line keeps its name, as a deleted member's does
    ]
    assert [m.is_greeting for m in messages] == [True, True, False, False, False]  # before the user's
    assert messages[1].st_extra == {"original_avatar": "Bramble.png"}

    out = tmp_path / "out.jsonl"
    run(history.export_st(imported.chat.id, out))
    written = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert written[0]["character_name"] == "Crew"
    assert [(line["name"], line["mes"]) for line in written[1:] if not line["is_user"]] == [
        ("Vega", "Hi, Rowan!"),
        ("Bramble", "Welcome in!"),
        ("Bramble", "Ale?"),
        ("Moss", "I was in this chat once."),
    ]
    assert written[2]["original_avatar"] == "Bramble.png"  # kept for SillyTavern

    # The file NEXUS wrote names the group: imported with nothing chosen, it goes back to it.
    again = run(history.import_st(out))
    assert again.chat.group_id == group_id and again.describe().endswith("keep that name.")
    assert [m.speaker_id for m in store.list_messages(again.chat.id)] == [m.speaker_id for m in messages]


def test_a_group_chat_file_with_no_group_chosen_or_named_asks_where_it_goes(
    store: Store, history: ChatHistory, tmp_path: Path
) -> None:
    _vega, _bramble, group_chat = crew(store)
    path = st_group_file(tmp_path / "Crew night.jsonl")

    with pytest.raises(LookupError, match="No character named unused; choose the character"):
        run(history.import_st(path))
    assert len(run(history.chats())) == 1  # only the group's own chat: nothing was imported
    run(history.import_st(path, group_id=group_chat.group_id))  # positive control: the group chosen
    assert len(run(history.chats(group_id=group_chat.group_id))) == 2
