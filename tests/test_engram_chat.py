"""The chat and the notes module use Engram, with the real SmolLM2 model and embeddings."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from nexus_desktop.chat.prompt import MEMORY_HEADING
from nexus_desktop.chat.service import ChatEvent, ReplySaved, ToolCalled
from nexus_desktop.core import AppCore
from nexus_desktop.engram.chat_memory import NOTES_HEADING
from nexus_desktop.engram.embedder import Embedder
from nexus_desktop.llm.catalog import default_model_path
from nexus_desktop.llm.local import LocalLlamaSource
from nexus_desktop.modules.discovery import bundled_modules_dir
from tests.test_local_source import copy_with_patched_number

pytestmark = pytest.mark.model

FACT = "The user's sister Ana lives in Porto and teaches the cello."
HEADING = MEMORY_HEADING.replace("{{char}}", "Vega")


@pytest.fixture
def core(private_data_dir: Path) -> Iterator[AppCore]:
    app = AppCore()
    app.settings = app.settings.model_copy(update={"threads": 1, "max_tokens": 16, "temperature": 0.7})
    yield app
    asyncio.run(app.aclose())


async def collect(events: AsyncIterator[ChatEvent]) -> list[ChatEvent]:
    return [event async for event in events]


async def reply_and_prompt(core: AppCore, text: str) -> tuple[list[ChatEvent], str]:
    character = core.store.find_character("Vega")
    assert character is not None and character.id is not None
    chat, _ = await core.chat.open_chat(character.id)
    assert chat.id is not None
    events = await collect(core.chat.send(chat.id, text))
    source = core.sources.current
    assert isinstance(source, LocalLlamaSource)
    return events, await source.last_prompt()


def vega_id(core: AppCore) -> int:
    character = core.store.find_character("Vega")
    assert character is not None and character.id is not None
    return character.id


@pytest.mark.parametrize("enabled", [True, False])
def test_memories_join_the_prompt_only_when_memory_is_on(core: AppCore, enabled: bool) -> None:
    core.settings = core.settings.model_copy(update={"memory_enabled": enabled, "memory_recall_count": 2})

    async def scenario() -> tuple[list[ChatEvent], str]:
        await core.engram.imprint(vega_id(core), FACT, source="chat")
        await core.engram.imprint(vega_id(core), "Everyone on the station eats at noon.", shared=True)
        return await reply_and_prompt(core, "Where does my sister live these days?")

    events, prompt = asyncio.run(scenario())
    assert isinstance(events[-1], ReplySaved)
    if enabled:
        block = prompt.split(HEADING, 1)[1]
        assert f"- {FACT}" in block and "- Everyone on the station eats at noon." in block
    else:
        assert HEADING not in prompt and FACT not in prompt


def test_a_crashing_embedding_process_leaves_memories_out_and_the_chat_still_answers(
    core: AppCore, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    # A layer count of zero passes the header check but makes llama.cpp abort while loading.
    model = default_model_path()
    assert model is not None
    crashing = copy_with_patched_number(model, tmp_path / "no-layers.gguf", "llama.block_count", 0)

    async def scenario() -> tuple[list[ChatEvent], str]:
        await core.engram.imprint(vega_id(core), FACT)  # made by the real embedder
        await core.engram.embedder.aclose()
        core.engram.embedder = Embedder(crashing)
        return await reply_and_prompt(core, "Where does my sister live these days?")

    events, prompt = asyncio.run(scenario())
    assert isinstance(events[-1], ReplySaved) and events[-1].message.content
    assert HEADING not in prompt
    assert (
        "Memories left out of this reply: The embedding process crashed (SIGABRT) while loading its model"
        in caplog.text
    )


def test_a_note_the_character_remembers_is_imprinted_and_recalled_by_meaning(core: AppCore) -> None:
    core.builtin_tools.load_folder(bundled_modules_dir() / "notes")
    notes = [
        "Mara hates the taste of coffee and only drinks tea.",
        "Mara grew up on a farm in Ireland.",
        "Mara reads detective novels before bed.",
    ]

    async def scenario() -> tuple[list[str], list[tuple[str, str | None]], ToolCalled]:
        for note in notes:
            events, _ = await reply_and_prompt(core, f"/notes.remember {note}")
            assert any(isinstance(e, ToolCalled) and e.result.ok for e in events)
        memories = [(m.text, m.source) for m in await core.engram.list(vega_id(core))]
        events, _ = await reply_and_prompt(core, "/notes.recall Where was her childhood home?")
        called = next(e for e in events if isinstance(e, ToolCalled))
        others = await core.engram.list(vega_id(core) + 1, include_shared=False)
        return [m.text for m in others], memories, called

    others, memories, called = asyncio.run(scenario())
    assert memories == [(note, "notes") for note in notes]
    assert others == []  # another character did not get them
    # The module's word search finds nothing (no word in common); Engram finds it by meaning.
    assert called.result.ok
    assert called.result.content.startswith("No notes match that.")
    by_meaning = called.result.content.split(NOTES_HEADING, 1)[1].strip().splitlines()
    assert by_meaning[0] == "- Mara grew up on a farm in Ireland."
    assert NOTES_HEADING in called.message.content  # what the reply reads, and what the chat shows
