"""Writing tools: Continue, Impersonate, the author's note and hide from context.

What the prompt carries is read where the model reads it: the requests a real OpenAI-compatible
server on loopback receives (``tests/chat_server.py``) through the app's own source, over a real
SQLite file.  Continue and Impersonate also run against the real SmolLM2 through llama.cpp.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nexus_desktop.cards.model import CharacterCard
from nexus_desktop.chat.events import Impersonated, ReplySaved, ReplyToken
from nexus_desktop.chat.history import ChatHistory
from nexus_desktop.chat.personas import add_persona
from nexus_desktop.chat.prompt import AuthorNote, Turn, build_prompt
from nexus_desktop.chat.service import ChatService, NothingToContinueError
from nexus_desktop.chat.st_chat import read_st_chat
from nexus_desktop.chat.writing import IMPERSONATION_PROMPT
from nexus_desktop.core import AppCore
from nexus_desktop.db.store import Store
from nexus_desktop.llm.local import LocalLlamaSource
from tests.chat_server import ChatServer, running_chat_server
from tests.test_reply_pipeline import GREETING, Rig, collect, make_rig, until

NOTE = "[{{char}} is worried about the storm.]"


@pytest.fixture
def server() -> Iterator[ChatServer]:
    with running_chat_server() as chat_server:
        yield chat_server


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


async def chat_with_history(rig: Rig) -> int:
    """A chat of the greeting, the user's "Hi there." and the reply "Hello, pilot."."""
    chat_id = await rig.new_chat()
    rig.store.add_message(chat_id, "user", "Hi there.")
    rig.store.add_message(chat_id, "assistant", "Hello, pilot.")
    return chat_id


def contents(request: dict[str, Any]) -> list[str]:
    return [str(m["content"]) for m in request["messages"]]


# The author's note -----------------------------------------------------------------------------


def test_the_authors_note_reaches_the_prompt_at_its_depth_and_an_empty_one_adds_nothing(
    store: Store, server: ChatServer
) -> None:
    async def scenario() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        async with make_rig(store, server) as rig:
            chat_id = await chat_with_history(rig)
            await rig.chat.set_author_note(chat_id, NOTE, 2, "system")
            await collect(rig.chat.send(chat_id, "Where are we?"))
            await rig.chat.set_author_note(chat_id, NOTE, 0, "user")
            await collect(rig.chat.send(chat_id, "And now?"))
            await rig.chat.set_author_note(chat_id, "  ", 2, "system")
            await collect(rig.chat.send(chat_id, "Thanks."))
            return tuple(server.chat_requests())  # type: ignore[return-value]

    at_two, at_zero, none = run(scenario())
    # [system, greeting, "Hi there.", NOTE, "Hello, pilot.", "Where are we?"]: 2 from the end.
    chat = at_two["messages"][1:]
    assert chat[-3] == {"role": "system", "content": "[Vega is worried about the storm.]"}
    assert [m["content"] for m in chat[-2:]] == ["Hello, pilot.", "Where are we?"]
    # Depth 0 goes after the last message, as the user's message when so chosen.
    assert at_zero["messages"][-1] == {"role": "user", "content": "[Vega is worried about the storm.]"}
    assert at_zero["messages"][-2]["content"] == "And now?"
    # Cleared: the prompt is the chat alone.
    assert not any("storm" in text for text in contents(none))
    assert contents(none)[1:] == [
        GREETING, "Hi there.", "Hello, pilot.", "Where are we?", "one two three four five", "And now?",
        "one two three four five", "Thanks.",
    ]  # fmt: skip


def test_the_authors_note_is_stored_with_the_chat_and_a_bad_depth_or_role_is_refused(
    store: Store, server: ChatServer
) -> None:
    async def scenario() -> int:
        async with make_rig(store, server) as rig:
            chat_id = await rig.new_chat()
            await rig.chat.set_author_note(chat_id, "  Keep it short.  ", 7, "assistant")
            with pytest.raises(ValueError, match="0 to 999, not 1000"):
                await rig.chat.set_author_note(chat_id, "Other", 1000, "system")
            with pytest.raises(ValueError, match="one of system, user, assistant, not 'narrator'"):
                await rig.chat.set_author_note(chat_id, "Other", 2, "narrator")
            return chat_id

    chat_id = run(scenario())
    chat = Store(store.path).get_chat(chat_id)  # a new connection: it is on disk
    note = (chat.author_note, chat.author_note_depth, chat.author_note_role)
    assert note == ("Keep it short.", 7, "assistant")


def test_the_note_and_a_continued_reply_sit_where_sillytavern_puts_them() -> None:
    async def words(texts: list[str]) -> list[int]:
        return [len(text.split()) for text in texts]

    card = CharacterCard(name="Vega", post_history_instructions="Answer as {{char}}.")
    history = [Turn("user", "Hi."), Turn("assistant", "Well, the engines")]
    plan = asyncio.run(
        build_prompt(
            card,
            history,
            user_name="Sam",
            count_tokens=words,
            context_size=4096,
            reply_tokens=100,
            author_note=AuthorNote("{{user}} is tired.", depth=1),
            continuing=True,
        )
    )
    assert [(m.role, m.content) for m in plan.messages[1:]] == [
        ("system", "Sam is tired."),
        ("user", "Hi."),
        ("system", "Answer as Vega."),
        ("assistant", "Well, the engines"),  # last: the model writes on from its last word
    ]


# Hide from context ------------------------------------------------------------------------------


def test_a_hidden_message_stays_in_the_chat_but_leaves_the_prompt_and_comes_back_when_shown(
    store: Store, server: ChatServer
) -> None:
    async def scenario() -> tuple[int, int, list[dict[str, Any]]]:
        async with make_rig(store, server) as rig:
            chat_id = await rig.new_chat()
            secret = rig.store.add_message(chat_id, "user", "The code is 4512.")
            rig.store.add_message(chat_id, "assistant", "Noted.")
            assert secret.id is not None
            hidden = await rig.chat.set_hidden(secret.id, True)
            assert hidden.hidden
            await collect(rig.chat.send(chat_id, "What is the code?"))
            await rig.chat.set_hidden(secret.id, False)
            await collect(rig.chat.send(chat_id, "And again?"))
            return chat_id, secret.id, server.chat_requests()

    chat_id, secret_id, (while_hidden, once_shown) = run(scenario())
    assert "The code is 4512." not in contents(while_hidden)
    assert "Noted." in contents(while_hidden)  # only the hidden one is left out
    assert "The code is 4512." in contents(once_shown)
    stored = Store(store.path).list_messages(chat_id)
    assert [m.content for m in stored][:3] == [GREETING, "The code is 4512.", "Noted."]  # still there
    assert not next(m for m in stored if m.id == secret_id).hidden


def test_hidden_messages_and_the_note_survive_a_branch_and_a_sillytavern_export_and_import(
    store: Store, server: ChatServer, tmp_path: Path
) -> None:
    async def scenario() -> tuple[int, Path, int]:
        async with make_rig(store, server) as rig:
            chat_id = await chat_with_history(rig)
            first_user = rig.store.list_messages(chat_id)[1]
            assert first_user.id is not None
            await rig.chat.set_hidden(first_user.id, True)
            await rig.chat.set_author_note(chat_id, NOTE, 3, "user")
            history = ChatHistory(rig.chat.db)
            branch = await history.branch_whole(chat_id)
            assert branch.id is not None
            path = tmp_path / "exported.jsonl"
            await history.export_st(branch.id, path)
            imported = await history.import_st(path)
            return branch.id, path, imported.chat.id

    branch_id, path, imported_id = run(scenario())
    copy = Store(store.path)
    assert [m.hidden for m in copy.list_messages(branch_id)] == [False, True, False]
    assert copy.get_chat(branch_id).author_note == NOTE
    exported = read_st_chat(path)
    assert [m.hidden for m in exported.messages] == [False, True, False]  # is_system, as SillyTavern hides
    assert {k: exported.metadata[k] for k in ("note_prompt", "note_depth", "note_role")} == {
        "note_prompt": NOTE, "note_depth": 3, "note_role": 1,
    }  # fmt: skip
    back = copy.get_chat(imported_id)
    assert (back.author_note, back.author_note_depth, back.author_note_role) == (NOTE, 3, "user")
    assert [m.hidden for m in copy.list_messages(imported_id)] == [False, True, False]


# Continue --------------------------------------------------------------------------------------


def test_continue_sends_the_reply_as_a_prefill_and_saves_one_longer_message(
    store: Store, server: ChatServer
) -> None:
    async def scenario() -> tuple[int, list[Any]]:
        async with make_rig(store, server) as rig:
            chat_id = await chat_with_history(rig)
            return chat_id, await collect(rig.chat.continue_reply(chat_id))

    chat_id, events = run(scenario())
    [request] = server.chat_requests()
    assert request["messages"][-1] == {"role": "assistant", "content": "Hello, pilot."}
    assert "".join(e.text for e in events if isinstance(e, ReplyToken)) == "one two three four five"
    stored = Store(store.path).list_messages(chat_id)
    assert len(stored) == 3 and len(stored[-1].swipes) == 1
    assert stored[-1].content == "Hello, pilot.one two three four five"  # as the model wrote on
    assert isinstance(events[-1], ReplySaved) and events[-1].message.content == stored[-1].content
    assert stored[-1].stats is not None and stored[-1].stats["continued"] is True


def test_continue_after_the_users_message_says_what_to_do_and_saves_nothing(
    store: Store, server: ChatServer
) -> None:
    async def scenario() -> tuple[int, int]:
        async with make_rig(store, server) as rig:
            chat_id = await chat_with_history(rig)
            rig.store.add_message(chat_id, "user", "Go on.")
            with pytest.raises(NothingToContinueError, match=r"The last message is yours.*Regenerate"):
                await collect(rig.chat.continue_reply(chat_id))
            last = rig.store.list_messages(chat_id)[-1]
            assert last.id is not None
            rig.store.delete_message(last.id)
            reply = rig.store.list_messages(chat_id)[-1]
            assert reply.id is not None
            await rig.chat.set_hidden(reply.id, True)
            with pytest.raises(NothingToContinueError, match="hidden from the prompt"):
                await collect(rig.chat.continue_reply(chat_id))
            return chat_id, len(server.chat_requests())

    chat_id, requests = run(scenario())
    assert requests == 0
    stored = Store(store.path).list_messages(chat_id)
    assert [m.content for m in stored] == [GREETING, "Hi there.", "Hello, pilot."]


# Impersonate -----------------------------------------------------------------------------------


def test_impersonate_writes_as_the_persona_and_saves_nothing(store: Store, server: ChatServer) -> None:
    add_persona(store.engine, "Sam", "A tired freighter pilot.", make_default=True)

    async def scenario() -> tuple[int, list[Any]]:
        async with make_rig(store, server) as rig:
            chat_id = await chat_with_history(rig)
            return chat_id, await collect(rig.chat.impersonate(chat_id))

    chat_id, events = run(scenario())
    [request] = server.chat_requests()
    assert request["messages"][-1] == {
        "role": "system",
        "content": IMPERSONATION_PROMPT.replace("{{user}}", "Sam").replace("{{char}}", "Vega"),
    }
    assert "A tired freighter pilot." in request["messages"][0]["content"]
    assert request["stop"] == ["\nVega:"]  # it must not go on as the character
    assert isinstance(events[-1], Impersonated) and events[-1].text == "one two three four five"
    assert len(Store(store.path).list_messages(chat_id)) == 3


def test_stop_ends_an_impersonation_and_frees_the_chat(store: Store, server: ChatServer) -> None:
    async def scenario() -> tuple[list[Any], bool, list[Any]]:
        async with make_rig(store, server) as rig:
            chat_id = await chat_with_history(rig)
            server.hold()
            running = asyncio.create_task(collect(rig.chat.impersonate(chat_id)))
            await until(lambda: server.waiting == 1, "the impersonation to reach the server")
            rig.chat.stop(chat_id)
            stopped = await asyncio.wait_for(running, 20)
            server.release()
            busy = rig.chat.generating_in(chat_id)
            return stopped, busy, await collect(rig.chat.impersonate(chat_id))

    stopped, busy, again = run(scenario())
    assert not busy
    assert isinstance(stopped[-1], Impersonated) and stopped[-1].output.stats.finish_reason == "cancelled"
    assert isinstance(again[-1], Impersonated) and again[-1].text  # the chat works on


# With the real SmolLM2 --------------------------------------------------------------------------


@pytest.fixture
def core(private_data_dir: Path) -> Iterator[AppCore]:
    app = AppCore()
    app.settings = app.settings.model_copy(update={"threads": 1, "max_tokens": 24, "temperature": 0.7})
    yield app
    asyncio.run(app.aclose())


@pytest.mark.model
def test_continue_and_impersonate_with_the_local_model(core: AppCore) -> None:
    partial = "Once upon a time, in a land far"

    async def scenario() -> tuple[int, str, list[Any], int]:
        character = core.store.list_characters()[0]
        assert character.id is not None
        chat, _ = await core.chat.open_chat(character.id)
        assert chat.id is not None
        core.store.add_message(chat.id, "user", "Tell me a story.")
        core.store.add_message(chat.id, "assistant", partial)
        chat_service: ChatService = core.chat
        await collect(chat_service.continue_reply(chat.id))
        source = core.sources.current
        assert isinstance(source, LocalLlamaSource)
        prompt = await source.last_prompt()
        count = len(core.store.list_messages(chat.id))
        return chat.id, prompt, await collect(chat_service.impersonate(chat.id)), count

    chat_id, prompt, impersonated, count = run(scenario())
    last = core.store.list_messages(chat_id)[-1]
    assert last.content.startswith(partial) and len(last.content) > len(partial)
    assert len(last.swipes) == 1 and count == 3  # one message, one alternative
    assert prompt.endswith(partial)  # inside the character's turn: no end-of-turn after it
    assert isinstance(impersonated[-1], Impersonated) and impersonated[-1].text.strip()
    assert len(core.store.list_messages(chat_id)) == count  # impersonating saved nothing
