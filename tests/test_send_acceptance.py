"""A message is saved only once its send is accepted: a refused send leaves the chat as it was.

The model is a real OpenAI-compatible server on loopback (``tests/chat_server.py``) reached
through the app's ``OpenAICompatSource``, or a real broken GGUF file; the database is a real
SQLite file.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from nexus_desktop.chat.prompt import PromptTooLongError
from nexus_desktop.chat.service import ReplyRunningError, UserMessageSaved
from nexus_desktop.core import AppCore
from nexus_desktop.db.store import Store
from nexus_desktop.llm.contract import ModelFileError
from tests.chat_server import ChatServer, running_chat_server
from tests.test_reply_pipeline import GREETING, collect, make_rig, replies, until


@pytest.fixture
def server() -> Iterator[ChatServer]:
    with running_chat_server() as chat_server:
        yield chat_server


def rows(store: Store, chat_id: int) -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in store.list_messages(chat_id)]


def test_an_accepted_send_saves_the_message_and_its_reply(store: Store, server: ChatServer) -> None:
    async def scenario() -> int:
        async with make_rig(store, server) as rig:
            chat_id = await rig.new_chat()
            events = await collect(rig.chat.send(chat_id, "Hello"))
            assert isinstance(events[0], UserMessageSaved) and replies(events)
            return chat_id

    chat_id = asyncio.run(scenario())
    assert rows(store, chat_id) == [
        ("assistant", GREETING),
        ("user", "Hello"),
        ("assistant", "one two three four five"),
    ]


def test_a_second_send_while_a_reply_runs_is_refused_and_saves_nothing(
    store: Store, server: ChatServer
) -> None:
    async def scenario() -> tuple[int, list[tuple[str, str]]]:
        async with make_rig(store, server) as rig:
            chat_id = await rig.new_chat()
            server.hold()
            first = asyncio.create_task(collect(rig.chat.send(chat_id, "Hello")))
            await until(lambda: server.waiting == 1, "the first reply to reach the model")
            with pytest.raises(ReplyRunningError, match="already being written"):
                await collect(rig.chat.send(chat_id, "Are you there?"))
            while_running = rows(store, chat_id)
            server.release()
            assert replies(await first)
            return chat_id, while_running

    chat_id, while_running = asyncio.run(scenario())
    assert while_running == [("assistant", GREETING), ("user", "Hello")]
    assert rows(store, chat_id)[-2:] == [("user", "Hello"), ("assistant", "one two three four five")]


def test_a_message_too_long_for_the_context_is_refused_before_it_is_saved(
    store: Store, server: ChatServer
) -> None:
    async def scenario() -> int:
        async with make_rig(store, server) as rig:  # a 4096-token context, about 4 characters a token
            chat_id = await rig.new_chat()
            with pytest.raises(PromptTooLongError, match="Shorten the message"):
                await collect(rig.chat.send(chat_id, "word " * 5000))
            assert not server.chat_requests()  # refused before the model was asked
            return chat_id

    chat_id = asyncio.run(scenario())
    assert rows(store, chat_id) == [("assistant", GREETING)]


def test_a_model_that_cannot_load_refuses_the_send_and_saves_nothing(
    private_data_dir: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\x00" * 64)
    core = AppCore()
    core.settings = core.settings.model_copy(update={"model_path": str(broken)})

    async def scenario() -> int:
        try:
            character = core.store.list_characters()[0]
            assert character.id is not None
            chat, _ = await core.chat.open_chat(character.id)
            assert chat.id is not None
            with pytest.raises(ModelFileError, match=r"broken\.gguf|GGUF"):
                await collect(core.chat.send(chat.id, "Are you there?"))
            return chat.id
        finally:
            await core.aclose()

    chat_id = asyncio.run(scenario())
    reopened = Store(private_data_dir / "nexus.db")
    try:
        assert [m.role for m in reopened.list_messages(chat_id)] == ["assistant"]  # the greeting only
    finally:
        reopened.close()
