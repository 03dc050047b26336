"""Keep-alive with the real SmolLM2 worker: a model unused for the keep-alive time unloads by
itself (its worker process exits) and the next message loads it again; a model in use, or one
kept for ever, stays loaded."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from nexus_desktop.core import AppCore
from nexus_desktop.gaming.keep_alive import KeepAlive
from nexus_desktop.settings import Settings
from tests.test_game_mode import first_chat, reply, until_gone, worker_processes

pytestmark = pytest.mark.model


@pytest.fixture
def core(private_data_dir: Path) -> Iterator[AppCore]:
    app = AppCore()
    app.settings = app.settings.model_copy(update={"threads": 1, "max_tokens": 16})
    yield app
    asyncio.run(app.aclose())


def keep_alive(core: AppCore, seconds: float, busy: bool = False) -> KeepAlive:
    """The core's keep-alive with a limit in seconds; ``busy`` pretends a reply is running."""
    core.keep_alive = KeepAlive(
        core.sources, lambda: core.settings, busy=lambda: busy or core.chat.generating, idle_seconds=seconds
    )
    return core.keep_alive


def test_an_unused_model_unloads_by_itself_and_the_next_message_loads_it(core: AppCore) -> None:
    keeper = keep_alive(core, 1.0)

    async def scenario() -> None:
        chat_id = await first_chat(core)
        await reply(core, chat_id, "Hello")
        worker = worker_processes(core)
        keeper.start()  # its own loop, as in the app
        while core.sources.state.phase == "ready":
            await asyncio.sleep(0.1)
        assert core.sources.state.phase == "idle"
        assert core.sources.state.note == "Unloaded after 1 s unused; the next message loads it again"
        await until_gone(worker)
        await keeper.aclose()
        assert await reply(core, chat_id, "Are you there?")  # loads again on demand
        assert core.sources.state.phase == "ready"

    asyncio.run(asyncio.wait_for(scenario(), timeout=240))


def test_a_model_used_recently_stays_loaded(core: AppCore) -> None:
    keeper = keep_alive(core, 60.0)

    async def scenario() -> None:
        await core.sources.get()
        worker = worker_processes(core)
        assert await keeper.check_now() is False
        assert core.sources.state.phase == "ready"
        assert all(p.is_running() for p in worker)

    asyncio.run(scenario())


def test_a_reply_being_written_counts_as_use(core: AppCore) -> None:
    keeper = keep_alive(core, 0.0, busy=True)

    async def scenario() -> None:
        await core.sources.get()
        assert await keeper.check_now() is False
        assert core.sources.state.phase == "ready"

    asyncio.run(scenario())


def test_the_setting_follows_ollama_minutes_zero_after_each_reply_negative_never() -> None:
    settings = Settings()
    keeper = KeepAlive(None, lambda: settings, busy=lambda: False)  # type: ignore[arg-type]
    assert keeper.idle_limit() == 300.0  # the default, as Ollama's: 5 minutes
    settings = settings.model_copy(update={"keep_alive_minutes": 0})
    assert keeper.idle_limit() == 0.0
    settings = settings.model_copy(update={"keep_alive_minutes": -1})
    assert keeper.idle_limit() is None


def test_kept_for_ever_the_model_never_unloads(core: AppCore) -> None:
    core.settings = core.settings.model_copy(update={"keep_alive_minutes": -1})
    keeper = KeepAlive(core.sources, lambda: core.settings, busy=lambda: False)

    async def scenario() -> None:
        await core.sources.get()
        core.sources.last_used -= 10 * 24 * 3600  # ten days unused
        assert await keeper.check_now() is False
        assert core.sources.state.phase == "ready"

    asyncio.run(scenario())
