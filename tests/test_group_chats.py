"""Group chats: who answers in each turn order, mutes, deleted members, and one real SmolLM2 turn
in which each member reads only its own card and lorebook."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from nexus_desktop.chat.events import ReplySaved, SpeakerChosen, UserMessageSaved
from nexus_desktop.chat.group_prompt import MANUAL_HINT
from nexus_desktop.chat.groups import Group, GroupError, Member, speakers
from nexus_desktop.core import AppCore
from nexus_desktop.db import migrations
from nexus_desktop.db.store import Store

# Turn order ---------------------------------------------------------------------------------------


def group(order: str, *members: Member) -> Group:
    return Group(1, "Crew", order, members)


def member(character_id: int | None, name: str, *, muted: bool = False, talk: float = 0.5) -> Member:
    return Member(character_id or 0, character_id, name, muted, talkativeness=talk)


VEGA, BRAMBLE, WREN = member(1, "Vega"), member(2, "Bramble Fernsby"), member(3, "Wren")


def names(chosen: list[Member]) -> list[str]:
    return [m.name for m in chosen]


def test_natural_order_the_member_the_message_names_answers() -> None:
    chatty = [
        member(1, "Vega", talk=1.0),
        member(2, "Bramble Fernsby", talk=1.0),
        member(3, "Wren", talk=1.0),
    ]
    crew = group("natural", *chatty)
    # Any word of the name, any case, and in the order the message names them.
    assert names(speakers(crew, "wren, then Fernsby: pour us a drink", None)) == ["Wren", "Bramble Fernsby"]
    assert names(speakers(crew, "Bramble?", 2)) == ["Bramble Fernsby"]  # named: may answer twice in a row
    # Positive control: named by nobody, the chatty ones answer (not the last to speak).
    assert names(speakers(crew, "Pour us a drink", 2)) == ["Vega", "Wren"]


def test_a_muted_member_never_answers_in_any_turn_order_but_can_be_asked_to() -> None:
    muted = member(1, "Vega", muted=True, talk=1.0)
    for order in ("natural", "list", "manual"):
        for seed in range(30):
            for said in ("Vega, status report", "Anyone there?"):
                chosen = speakers(group(order, muted, BRAMBLE, WREN), said, None, random.Random(seed))
                assert "Vega" not in names(chosen), (order, seed, said)
    # Positive control: unmuted, the same Vega answers when named, and in list order.
    assert names(speakers(group("natural", VEGA, BRAMBLE, WREN), "Vega, status report", None)) == ["Vega"]
    assert names(speakers(group("list", VEGA, BRAMBLE, WREN), "Anyone there?", None)) == [
        "Vega",
        "Bramble Fernsby",
        "Wren",
    ]


def test_natural_order_goes_in_turn_and_not_to_the_last_speaker_unless_alone() -> None:
    quiet = [member(1, "Vega", talk=0.0), member(2, "Bramble", talk=0.0), member(3, "Wren", talk=0.0)]
    # Nobody chatty enough: the next in the group's order after the one who spoke last.
    assert names(speakers(group("natural", *quiet), "Hello", 2)) == ["Wren"]
    assert names(speakers(group("natural", *quiet), "Hello", 3)) == ["Vega"]
    assert names(speakers(group("natural", *quiet), "Hello", None)) == ["Vega"]
    # Alone (the others muted or deleted), the last speaker answers again.
    alone = group("natural", member(1, "Vega", muted=True), member(2, "Bramble"), member(None, "Wren"))
    assert names(speakers(alone, "Hello", 2)) == ["Bramble"]


def test_list_order_asks_everyone_present_in_order_and_manual_order_nobody() -> None:
    gone = member(None, "Wren")
    assert names(speakers(group("list", VEGA, gone, BRAMBLE), "Hi", None)) == ["Vega", "Bramble Fernsby"]
    assert speakers(group("manual", VEGA, BRAMBLE), "Vega, Bramble: hi", None) == []


# Groups in the database ---------------------------------------------------------------------------


@pytest.fixture
def core(private_data_dir: Path) -> Iterator[AppCore]:
    app = AppCore()
    app.settings = app.settings.model_copy(update={"threads": 1, "max_tokens": 8})
    yield app
    asyncio.run(app.aclose())


def add(store: Store, name: str, description: str, lore: str, greeting: str = "") -> int:
    book = {"entries": [{"keys": ["hello"], "content": lore, "id": 1, "position": "after_char"}]}
    card = {"name": name, "description": description, "first_mes": greeting, "character_book": book}
    character = store.add_character(name, card)
    assert character.id is not None
    return character.id


def crew(store: Store) -> tuple[int, int]:
    vega = add(
        store,
        "Vega",
        "{{char}} pilots the starship Kestrel.",
        "The Kestrel's engines hum.",
        "Hi, {{user}}! I am {{char}}.",
    )
    bramble = add(
        store, "Bramble", "{{char}} brews mushroom ale.", "The tavern smells of moss.", "Welcome in!"
    )
    return vega, bramble


async def events_of(replies: AsyncIterator[Any]) -> list[Any]:
    return [event async for event in replies]


def test_a_group_needs_two_characters_and_a_refused_one_saves_nothing(core: AppCore) -> None:
    vega, bramble = crew(core.store)
    with pytest.raises(GroupError, match="at least 2 characters"):
        asyncio.run(core.groups.create("Solo", [vega]))
    assert asyncio.run(core.groups.all()) == []

    made = asyncio.run(core.groups.create("", [vega, bramble], "list"))  # positive control
    assert made.name == "Vega, Bramble" and [m.name for m in made.members] == ["Vega", "Bramble"]
    chat, messages = asyncio.run(core.groups.open_chat(made.id))
    # Each member's greeting opens the chat, under its name; {{char}} is the member itself.
    assert [(m.speaker_name, m.content) for m in messages] == [
        ("Vega", "Hi, {{user}}! I am Vega."),
        ("Bramble", "Welcome in!"),
    ]
    assert chat.group_id == made.id and chat.character_id is None


def test_a_group_with_a_deleted_member_opens_says_who_is_gone_and_the_others_go_on(core: AppCore) -> None:
    vega, bramble = crew(core.store)
    made = asyncio.run(core.groups.create("Crew", [vega, bramble], "list"))
    asyncio.run(core.groups.set_muted(made.id, vega, True))
    core.store.delete_character(bramble)

    after = asyncio.run(core.groups.get(made.id))
    assert [m.name for m in after.members] == ["Vega", "Bramble"]  # still listed, by name
    assert after.notice() is not None and after.notice().startswith("Bramble was deleted")  # type: ignore[union-attr]
    assert [m.muted for m in after.members] == [True, False]  # a kept member keeps its mute
    _chat, messages = asyncio.run(core.groups.open_chat(made.id))
    assert [m.speaker_name for m in messages] == ["Vega", "Bramble"]  # its greeting keeps its name
    assert [m.speaker_id for m in messages] == [vega, None]
    asyncio.run(core.groups.set_muted(made.id, vega, False))
    assert names(speakers(asyncio.run(core.groups.get(made.id)), "Hi", None)) == ["Vega"]  # the others go on


def test_a_group_left_with_no_members_says_what_to_do_and_a_send_saves_nothing(core: AppCore) -> None:
    vega, bramble = crew(core.store)
    made = asyncio.run(core.groups.create("Crew", [vega, bramble], "list"))
    chat, before = asyncio.run(core.groups.open_chat(made.id))
    assert chat.id is not None
    core.store.delete_character(vega)
    core.store.delete_character(bramble)

    empty = asyncio.run(core.groups.get(made.id))
    assert "Nobody is left in Crew" in (empty.notice() or "")
    assert "Add characters with Edit group, or delete the group" in (empty.notice() or "")
    with pytest.raises(GroupError, match="Nobody is left in Crew"):
        asyncio.run(events_of(core.chat.send(chat.id, "Anyone?")))
    assert [m.id for m in core.store.list_messages(chat.id)] == [m.id for m in before]


def test_manual_order_saves_the_message_and_waits_for_the_user_to_pick_who_speaks(core: AppCore) -> None:
    vega, bramble = crew(core.store)
    made = asyncio.run(core.groups.create("Crew", [vega, bramble], "manual"))
    chat, _ = asyncio.run(core.groups.open_chat(made.id))
    assert chat.id is not None
    events = asyncio.run(events_of(core.chat.send(chat.id, "Vega, Bramble: hello!")))
    assert [type(e) for e in events] == [UserMessageSaved]  # saved, and nobody answered
    assert core.store.list_messages(chat.id)[-1].content == "Vega, Bramble: hello!"
    with pytest.raises(GroupError, match="press Speak"):
        asyncio.run(events_of(core.chat.respond(chat.id)))
    assert MANUAL_HINT.startswith("In manual turn order")


def test_every_members_greeting_is_a_greeting_not_a_reply_to_rate_or_write_again(core: AppCore) -> None:
    from nexus_desktop.chat.service import NothingToRegenerateError

    vega, bramble = crew(core.store)
    made = asyncio.run(core.groups.create("Crew", [vega, bramble], "list"))
    chat, greetings = asyncio.run(core.groups.open_chat(made.id))
    assert chat.id is not None and greetings[1].id is not None
    assert [(m.position, m.is_greeting) for m in greetings] == [(0, True), (1, True)]

    with pytest.raises(NothingToRegenerateError):  # Bramble's greeting is last: nothing to regenerate
        asyncio.run(events_of(core.chat.regenerate(chat.id)))
    edited = asyncio.run(core.chat.edit_message(greetings[1].id, "Welcome, traveller!"))
    assert edited.content == "Welcome, traveller!" and edited.is_greeting  # still the card's
    reply = core.store.add_message(
        chat.id, "assistant", "Ale?", {"tokens_per_second": 9.0}, speaker=(bramble, "")
    )
    assert not reply.is_greeting  # positive control: a model's reply is one


def test_the_upgrade_keeps_every_chat_and_message_and_deleting_a_character_still_takes_its_chats(
    tmp_path: Path,
) -> None:
    path = tmp_path / "nexus.db"
    conn = sqlite3.connect(path)
    conn.close()
    from sqlmodel import create_engine

    engine = create_engine(f"sqlite:///{path}")
    with engine.connect() as connection:  # the schema as the previous release left it
        connection.commit()
        for version, step in enumerate(migrations.MIGRATIONS[:7], start=1):
            with connection.begin():
                step(connection)
                connection.execute(text(f"PRAGMA user_version = {version}"))
        with connection.begin():
            connection.execute(
                text(
                    "INSERT INTO character (id, name, card, builtin, created_at, updated_at, origin) "
                    "VALUES (1, 'Vega', '{\"name\": \"Vega\"}', 0, '2025-01-01', '2025-01-01', '')"
                )
            )
            connection.execute(
                text(
                    "INSERT INTO chat (id, character_id, title, created_at, updated_at, author_note) "
                    "VALUES (7, 1, 'Old chat', '2025-01-01', '2025-01-01', 'Keep it short.')"
                )
            )
            connection.execute(
                text(
                    "INSERT INTO message (chat_id, position, role, swipes, swipe_stats, created_at) "
                    "VALUES (7, 0, 'user', '[\"hello there\"]', '[null]', '2025-01-01')"
                )
            )
    engine.dispose()

    store = Store(path)  # upgrades
    try:
        chat = store.get_chat(7)
        assert (chat.title, chat.character_id, chat.group_id, chat.author_note) == (
            "Old chat",
            1,
            None,
            "Keep it short.",
        )
        assert [m.content for m in store.list_messages(7)] == ["hello there"]
        assert store.list_messages(7)[0].speaker_id is None
        store.delete_character(1)  # the foreign keys work again after the rebuild
        assert store.list_chats(1) == []
        with sqlite3.connect(path) as raw:
            assert raw.execute("SELECT count(*) FROM message").fetchone() == (0,)
    finally:
        store.close()


# The real model ------------------------------------------------------------------------------------


@pytest.mark.model
def test_in_list_order_each_member_answers_once_reading_only_its_own_card(core: AppCore) -> None:
    from nexus_desktop.chat.service import ChatService
    from nexus_desktop.llm.contract import ChatInput, ModelSource, RunContext, StreamEvent, StreamingSource

    read: list[tuple[str, ChatInput]] = []

    class Reading(StreamingSource):
        """The real model source, noting each request and whose reply it was for."""

        def __init__(self, inner: ModelSource, character: str) -> None:
            self.inner, self.character = inner, character
            self.name, self.context_size = inner.name, inner.context_size

        def stream(self, request: ChatInput, context: RunContext) -> AsyncIterator[StreamEvent]:
            read.append((self.character, request))
            return self.inner.stream(request, context)

        async def count_tokens(self, texts: list[str]) -> list[int]:
            return await self.inner.count_tokens(texts)

        async def aclose(self) -> None:
            pass

    async def reading_source(character: str) -> ModelSource:
        return Reading(await core.sources.get(character), character)

    chat = ChatService(core.db, reading_source, lambda: core.settings)
    vega, bramble = crew(core.store)

    async def scenario() -> tuple[list[Any], list[Any], list[Any]]:
        made = await core.groups.create("Crew", [vega, bramble], "list")
        opened, _ = await core.groups.open_chat(made.id)
        assert opened.id is not None
        sent = await events_of(chat.send(opened.id, "hello, you two!"))
        again = await events_of(chat.regenerate(opened.id))
        await core.groups.set_muted(made.id, vega, True)
        forced = await events_of(chat.speak(opened.id, vega))  # muted, yet asked: Vega speaks
        return sent, again, forced

    sent, again, forced = asyncio.run(scenario())
    order = [
        e.name if isinstance(e, SpeakerChosen) else "saved"
        for e in sent
        if isinstance(e, SpeakerChosen | ReplySaved)
    ]
    assert order == ["Vega", "saved", "Bramble", "saved"]  # one reply each, in the group's order
    replies = [e.message for e in sent if isinstance(e, ReplySaved)]
    assert [(m.speaker_id, m.speaker_name) for m in replies] == [(vega, "Vega"), (bramble, "Bramble")]

    (vega_reads, to_vega), (bramble_reads, to_bramble) = read[0], read[1]
    assert (vega_reads, bramble_reads) == ("Vega", "Bramble")  # each with its own source (adapter)
    vega_prompt = "\n".join(m.content for m in to_vega.messages)
    bramble_prompt = "\n".join(m.content for m in to_bramble.messages)
    # Its own card and lorebook, never the other member's.
    assert "Vega pilots the starship Kestrel." in vega_prompt and "The Kestrel's engines hum." in vega_prompt
    assert "mushroom ale" not in vega_prompt and "smells of moss" not in vega_prompt
    assert "Bramble brews mushroom ale." in bramble_prompt and "The tavern smells of moss." in bramble_prompt
    # What Vega said aloud is Bramble's to read (the model may echo its own lore in it); the rest
    # of Bramble's prompt holds nothing of Vega's card.
    unsaid = bramble_prompt.replace(replies[0].content.strip(), "")
    assert "starship Kestrel" not in unsaid and "engines hum" not in unsaid
    # The other member's lines reach it as "Name: text", and its reply stops before theirs.
    heard = [m for m in to_bramble.messages if m.role == "user" and m.content.startswith("Vega: ")]
    assert heard and heard[-1].content == f"Vega: {replies[0].content}"
    assert "\nVega:" in to_bramble.sampling.stop and "\nBramble:" in to_vega.sampling.stop

    # Regenerate writes another alternative by the same speaker, from that speaker's card.
    regenerated = [e.message for e in again if isinstance(e, ReplySaved)]
    assert len(regenerated) == 1 and regenerated[0].id == replies[1].id and len(regenerated[0].swipes) == 2
    assert read[2][0] == "Bramble" and "mushroom ale" in read[2][1].messages[0].content

    spoken = [e.message for e in forced if isinstance(e, ReplySaved)]
    assert [(m.speaker_id, m.speaker_name) for m in spoken] == [(vega, "Vega")]
