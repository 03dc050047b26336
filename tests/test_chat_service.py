"""Chatting through the app core with the real SmolLM2 model: stream, stop, swipe, trim, switch."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from nexus_desktop.chat.service import (
    ChatEvent,
    EmptyMessageError,
    HistoryTrimmed,
    NothingToRegenerateError,
    ReplySaved,
    ReplyToken,
    UserMessageSaved,
    strip_speaker,
)
from nexus_desktop.core import AppCore
from nexus_desktop.llm.contract import ModelCrashedError, ModelFileError

pytestmark = pytest.mark.model


@pytest.fixture
def core(private_data_dir: Path) -> Iterator[AppCore]:
    app = AppCore()
    app.settings = app.settings.model_copy(update={"threads": 1, "max_tokens": 24, "temperature": 0.7})
    yield app
    asyncio.run(app.aclose())


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


async def collect(events: AsyncIterator[ChatEvent], stop_after_tokens: int | None = None, core=None):  # type: ignore[no-untyped-def]
    seen: list[ChatEvent] = []
    async for event in events:
        seen.append(event)
        tokens = sum(isinstance(e, ReplyToken) for e in seen)
        if stop_after_tokens is not None and tokens == stop_after_tokens:
            core.chat.stop()
    return seen


async def first_chat(core: AppCore) -> int:
    character = core.store.list_characters()[0]
    assert character.id is not None
    chat, messages = await core.chat.open_chat(character.id)
    assert chat.id is not None
    assert messages and messages[0].role == "assistant"  # the greeting
    return chat.id


def test_a_reply_streams_token_by_token_and_is_saved_with_its_figures(core: AppCore) -> None:
    async def scenario():  # type: ignore[no-untyped-def]
        chat_id = await first_chat(core)
        events = await collect(core.chat.send(chat_id, "Hello! Who are you?"))
        return chat_id, events

    chat_id, events = run(scenario())
    assert isinstance(events[0], UserMessageSaved)
    tokens = [e.text for e in events if isinstance(e, ReplyToken)]
    assert len(tokens) > 3
    saved = events[-1]
    assert isinstance(saved, ReplySaved)
    assert saved.message.content == strip_speaker("".join(tokens), "Vega")
    assert saved.message.stats is not None
    assert saved.message.stats["tokens_per_second"] > 0
    assert saved.message.stats["context_used"] > saved.message.stats["completion_tokens"]
    stored = core.store.list_messages(chat_id)
    assert [m.role for m in stored] == ["assistant", "user", "assistant"]


def test_stop_keeps_the_partial_reply_and_the_model_stays_usable(core: AppCore) -> None:
    core.settings = core.settings.model_copy(update={"max_tokens": 300})

    async def scenario():  # type: ignore[no-untyped-def]
        chat_id = await first_chat(core)
        stopped = await collect(core.chat.send(chat_id, "Describe your ship in detail."), 4, core)
        again = await collect(core.chat.send(chat_id, "Thanks."))
        return stopped, again

    stopped, again = run(scenario())
    saved = stopped[-1]
    assert isinstance(saved, ReplySaved)
    assert saved.output.stats.finish_reason == "cancelled"
    assert 4 <= saved.output.stats.completion_tokens < 300
    assert isinstance(again[-1], ReplySaved)


def test_regenerate_adds_a_swipe_and_keeps_the_first(core: AppCore) -> None:
    async def scenario():  # type: ignore[no-untyped-def]
        chat_id = await first_chat(core)
        first = await collect(core.chat.send(chat_id, "Pick a number."))
        second = await collect(core.chat.regenerate(chat_id))
        return chat_id, first[-1], second[-1]

    chat_id, first, second = run(scenario())
    assert isinstance(first, ReplySaved) and isinstance(second, ReplySaved)
    last = core.store.list_messages(chat_id)[-1]
    assert last.id == first.message.id
    assert len(last.swipes) == 2 and last.swipe_index == 1
    assert last.swipes[0] == first.message.content


def test_regenerate_before_any_reply_says_to_send_first(core: AppCore) -> None:
    async def scenario() -> None:
        chat_id = await first_chat(core)
        await collect(core.chat.regenerate(chat_id))

    with pytest.raises(NothingToRegenerateError, match="send a message first"):
        run(scenario())


def test_an_empty_message_is_refused_and_nothing_is_saved(core: AppCore) -> None:
    async def scenario() -> int:
        chat_id = await first_chat(core)
        with pytest.raises(EmptyMessageError):
            await collect(core.chat.send(chat_id, "  \n "))
        return chat_id

    chat_id = run(scenario())
    assert len(core.store.list_messages(chat_id)) == 1


def test_a_chat_longer_than_the_context_trims_the_oldest_with_a_notice(core: AppCore) -> None:
    core.settings = core.settings.model_copy(update={"context_size": 512, "max_tokens": 8})

    async def scenario():  # type: ignore[no-untyped-def]
        chat_id = await first_chat(core)
        for i in range(6):
            core.store.add_message(chat_id, "user", f"Fact {i}: " + "the engines hum softly " * 12)
            core.store.add_message(chat_id, "assistant", "Noted.")
        return await collect(core.chat.send(chat_id, "What did I say last?"))

    events = run(scenario())
    notices = [e for e in events if isinstance(e, HistoryTrimmed)]
    assert notices and notices[0].dropped > 0
    assert "oldest" in notices[0].notice and "still saved" in notices[0].notice
    assert isinstance(events[-1], ReplySaved)


def test_switching_models_needs_no_restart(core: AppCore, smollm2_path: Path, tmp_path: Path) -> None:
    other = tmp_path / "other-model.gguf"
    shutil.copy(smollm2_path, other)

    async def scenario():  # type: ignore[no-untyped-def]
        chat_id = await first_chat(core)
        await collect(core.chat.send(chat_id, "Hi"))
        before = core.sources.current
        await core.update_settings(core.settings.model_copy(update={"model_path": str(other)}))
        events = await collect(core.chat.send(chat_id, "Still there?"))
        return before, events

    before, events = run(scenario())
    saved = events[-1]
    assert isinstance(saved, ReplySaved)
    assert saved.message.stats is not None and saved.message.stats["model"] == "other-model.gguf"
    assert core.sources.current is not before


def test_a_bad_model_file_refuses_the_send_and_saves_nothing(core: AppCore, tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\x00" * 64)
    core.settings = core.settings.model_copy(update={"model_path": str(broken)})

    async def scenario() -> int:
        chat_id = await first_chat(core)
        with pytest.raises(ModelFileError):
            await collect(core.chat.send(chat_id, "Are you there?"))
        return chat_id

    chat_id = run(scenario())
    assert [m.role for m in core.store.list_messages(chat_id)] == ["assistant"]  # the greeting only


def test_a_crashed_model_process_is_reported_and_the_next_message_works(core: AppCore) -> None:
    core.settings = core.settings.model_copy(update={"max_tokens": 300})

    async def scenario():  # type: ignore[no-untyped-def]
        chat_id = await first_chat(core)
        await collect(core.chat.send(chat_id, "Warm up."))
        source = core.sources.current
        with pytest.raises(ModelCrashedError):
            async for event in core.chat.send(chat_id, "Tell me a long story."):
                if isinstance(event, ReplyToken):
                    os.kill(source.pid, signal.SIGKILL)  # type: ignore[union-attr]
        return await collect(core.chat.send(chat_id, "Are you back?"))

    events = run(scenario())
    assert isinstance(events[-1], ReplySaved)


def collected(core: AppCore) -> list[tuple[str, str]]:
    """(kind, signal) of every stored training example."""
    import sqlite3

    assert core.collector.flush(30)
    conn = sqlite3.connect(core.store.path)
    try:
        return [tuple(row) for row in conn.execute("SELECT kind, signal FROM training_example ORDER BY id")]
    finally:
        conn.close()


def test_ratings_corrections_edits_and_swipe_choices_become_training_data(core: AppCore) -> None:
    async def scenario():  # type: ignore[no-untyped-def]
        chat_id = await first_chat(core)
        first = (await collect(core.chat.send(chat_id, "Name a star.")))[-1]
        await collect(core.chat.regenerate(chat_id))
        await collect(core.chat.send(chat_id, "And another?"))  # moving on picks the shown swipe
        second = (await collect(core.chat.send(chat_id, "One more.")))[-1]
        rated = await core.chat.rate_message(second.message.id, False, corrected="Vega, of course.")
        await core.chat.edit_message(first.message.id, "Sirius, the brightest.")
        return rated

    rated = run(scenario())
    assert rated.content == "Vega, of course." and rated.stats == {"corrected": True}
    assert rated.swipe_stats[0]["rating"] == -1
    examples = set(collected(core))
    assert ("sft", "reply_saved") in examples
    assert ("preference", "swipe") in examples  # the shown swipe beat the one passed over
    assert {("sft", "correction"), ("preference", "correction")} <= examples
    assert ("classification", "thumbs_down") in examples  # for the reply-quality evaluator
    assert {("sft", "edit"), ("preference", "edit")} <= examples


def test_a_reply_that_opens_with_the_speakers_name_is_saved_without_it() -> None:
    assert strip_speaker("Vega: Systems green.", "Vega") == "Systems green."
    assert strip_speaker("  Systems green. Vega: out.\n", "Vega") == "Systems green. Vega: out."
