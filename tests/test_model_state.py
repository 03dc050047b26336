"""The source manager owns the model's state: loading, ready, failed, and what is loaded.

Qt-free, with the real SmolLM2 model in its real worker process and a real broken GGUF file.
Only a failed load or a crashed model process makes the state failed.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from nexus_desktop.chat.prompt import PromptTooLongError
from nexus_desktop.chat.service import ReplySaved, ReplyToken
from nexus_desktop.chat.sources import ModelState
from nexus_desktop.core import AppCore
from nexus_desktop.llm.contract import ModelCrashedError, ModelFileError

pytestmark = pytest.mark.model


@pytest.fixture
def core(private_data_dir: Path) -> Iterator[AppCore]:
    app = AppCore()
    app.settings = app.settings.model_copy(update={"threads": 1, "max_tokens": 16})
    yield app
    asyncio.run(app.aclose())


def watch(core: AppCore) -> list[ModelState]:
    seen: list[ModelState] = []
    core.sources.listeners.subscribe(seen.append)
    return seen


async def first_chat(core: AppCore) -> int:
    character = core.store.list_characters()[0]
    assert character.id is not None
    chat, _ = await core.chat.open_chat(character.id)
    assert chat.id is not None
    return chat.id


def test_loading_the_model_goes_from_loading_to_ready_with_what_was_loaded(
    core: AppCore, smollm2_path: Path
) -> None:
    seen = watch(core)
    assert core.sources.state.phase == "idle"
    asyncio.run(core.sources.get())
    assert [state.phase for state in seen] == ["loading", "ready"]
    ready = core.sources.state
    assert ready.name == smollm2_path.name
    assert ready.context_size == core.settings.context_size
    assert ready.gpu_layers == 0  # this machine runs it on the CPU
    assert ready.llama_cpp  # the worker says which llama.cpp serves it
    assert ready.error is None


def test_a_broken_model_file_makes_the_state_failed_with_the_reason(core: AppCore, tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\x00" * 64)
    core.settings = core.settings.model_copy(update={"model_path": str(broken)})
    seen = watch(core)
    with pytest.raises(ModelFileError):
        asyncio.run(core.sources.get())
    assert [state.phase for state in seen] == ["loading", "failed"]
    failed = core.sources.state
    assert failed.name == "broken.gguf"
    assert isinstance(failed.error, ModelFileError) and "broken.gguf" in str(failed.error)

    core.settings = core.settings.model_copy(update={"model_path": ""})  # back to the bundled model
    asyncio.run(core.sources.get())
    assert core.sources.state.phase == "ready"


def test_a_message_too_long_for_the_context_leaves_the_model_ready(core: AppCore) -> None:
    core.settings = core.settings.model_copy(update={"context_size": 512})

    async def scenario() -> int:
        chat_id = await first_chat(core)
        await core.sources.get()
        with pytest.raises(PromptTooLongError):
            await core.chat.send(chat_id, "the engines hum softly " * 200).__anext__()
        return chat_id

    seen = watch(core)
    chat_id = asyncio.run(scenario())
    assert core.sources.state.phase == "ready"
    assert [state.phase for state in seen] == ["loading", "ready"]
    assert [m.role for m in core.store.list_messages(chat_id)] == ["assistant"]  # nothing saved


def test_a_crashed_model_process_makes_the_state_failed_until_the_next_reply_restarts_it(
    core: AppCore,
) -> None:
    core.settings = core.settings.model_copy(update={"max_tokens": 300})

    async def scenario() -> list[object]:
        chat_id = await first_chat(core)
        source = await core.sources.get()
        with pytest.raises(ModelCrashedError):
            async for event in core.chat.send(chat_id, "Tell me a long story."):
                if isinstance(event, ReplyToken):
                    os.kill(source.pid, signal.SIGKILL)  # type: ignore[attr-defined]
        crashed = core.sources.state
        core.settings = core.settings.model_copy(update={"max_tokens": 8})
        await core.sources.get()  # what the window does before each send
        return [crashed, [event async for event in core.chat.send(chat_id, "Are you back?")]]

    seen = watch(core)
    crashed, events = asyncio.run(scenario())
    assert isinstance(crashed, ModelState) and crashed.phase == "failed"
    assert isinstance(crashed.error, ModelCrashedError) and "the app is fine" in str(crashed.error)
    assert [state.phase for state in seen] == ["loading", "ready", "failed", "loading", "ready"]
    assert isinstance(events, list) and isinstance(events[-1], ReplySaved)


def test_an_error_from_a_listener_does_not_stop_the_others(core: AppCore) -> None:
    heard: list[str] = []

    def broken(_state: ModelState) -> None:
        raise RuntimeError("a view's bug")

    core.sources.listeners.subscribe(broken)
    core.sources.listeners.subscribe(lambda state: heard.append(state.phase))
    asyncio.run(core.sources.get())
    assert heard == ["loading", "ready"]
