"""Game mode with the real SmolLM2 worker: a game starting unloads the model (its worker process
exits), its end loads it again, CPU chat keeps replying, a reply running when the game starts
finishes and is saved, and a message sent meanwhile is refused saying how to continue, with
nothing saved.  The game is a scripted probe (this machine has no GPU and no game)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from nexus_desktop.chat.service import ReplySaved, ReplyToken
from nexus_desktop.chat.sources import GameModeError, source_key
from nexus_desktop.core import AppCore
from nexus_desktop.gaming.controller import GameMode
from nexus_desktop.gaming.probes import ManualSwitch, ScriptedProbe

pytestmark = pytest.mark.model


@pytest.fixture
def core(private_data_dir: Path) -> Iterator[AppCore]:
    app = AppCore()
    app.settings = app.settings.model_copy(update={"threads": 1, "max_tokens": 16})
    yield app
    asyncio.run(app.aclose())


def scripted_game(core: AppCore, probe: ScriptedProbe, confirm_polls: int = 1) -> GameMode:
    """The core's game mode with a scripted game instead of NVML (closed with the core)."""
    core.game_mode = GameMode(
        [ManualSwitch(lambda: core.settings), probe],
        lambda: core.settings,
        core.sources,
        busy=lambda: core.chat.generating,
        pausers=[core.scheduler],
        confirm_polls=confirm_polls,
    )
    return core.game_mode


async def first_chat(core: AppCore) -> int:
    character = core.store.list_characters()[0]
    assert character.id is not None
    chat, _ = await core.chat.open_chat(character.id)
    assert chat.id is not None
    return chat.id


async def collect(events: AsyncIterator[Any]) -> list[Any]:
    return [event async for event in events]


async def reply(core: AppCore, chat_id: int, text: str) -> str:
    events = await collect(core.chat.send(chat_id, text))
    saved = [event for event in events if isinstance(event, ReplySaved)]
    assert saved, events
    return saved[-1].message.content


def worker_processes(core: AppCore) -> list[psutil.Process]:
    """The model worker and everything it started (the sandbox runs it as a child)."""
    source: Any = core.sources.current
    assert source is not None and source.pid is not None
    worker = psutil.Process(source.pid)
    return [worker, *worker.children(recursive=True)]


async def until_gone(processes: list[psutil.Process], seconds: float = 3.0) -> None:
    """The issue's target: the model's memory is freed within 3 s."""
    deadline = time.monotonic() + seconds
    while any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in processes):
        assert time.monotonic() < deadline, f"still running: {processes}"
        await asyncio.sleep(0.05)


def rows(core: AppCore, chat_id: int) -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in core.store.list_messages(chat_id)]


def test_a_game_unloads_the_model_and_its_end_loads_it_again(core: AppCore) -> None:
    probe = ScriptedProbe([False])
    game = scripted_game(core, probe)

    async def scenario() -> None:
        chat_id = await first_chat(core)
        await reply(core, chat_id, "Hello")
        worker = worker_processes(core)

        probe.answers = [True]
        state = await game.poll_now()
        assert (state.phase, state.action, state.reason) == ("on", "unload", "Scripted: scripted game")
        assert core.sources.state.phase == "idle"
        assert core.sources.state.note == "Unloaded for game mode"
        assert core.scheduler.paused == "game mode"
        await until_gone(worker)  # the worker process exited: its RAM and VRAM are free

        probe.answers = [False]
        assert (await game.poll_now()).phase == "off"
        assert core.sources.state.phase == "ready"  # it was loaded before the game: loaded again
        assert core.scheduler.paused == ""
        assert await reply(core, chat_id, "Are you back?")

    asyncio.run(scenario())


def test_without_a_game_the_model_stays_loaded(core: AppCore) -> None:
    game = scripted_game(core, ScriptedProbe([False]))

    async def scenario() -> None:
        await core.sources.get()
        worker = worker_processes(core)
        for _ in range(3):
            assert (await game.poll_now()).phase == "off"
        assert core.sources.state.phase == "ready"
        assert all(p.is_running() for p in worker)
        assert core.scheduler.paused == ""

    asyncio.run(scenario())


def test_a_message_during_game_mode_is_refused_saying_how_to_continue_and_nothing_is_lost(
    core: AppCore,
) -> None:
    probe = ScriptedProbe([True])
    game = scripted_game(core, probe)

    async def scenario() -> None:
        chat_id = await first_chat(core)
        before = rows(core, chat_id)
        await game.poll_now()
        with pytest.raises(GameModeError, match=r"Turn game mode off.*allow CPU chat in Settings"):
            await collect(core.chat.send(chat_id, "Still there?"))
        assert rows(core, chat_id) == before  # refused before saving: the text stays in the box
        assert core.sources.state.phase == "idle"  # refused, not failed

        probe.answers = [False]
        await game.poll_now()
        assert core.sources.state.phase == "idle"  # nothing was loaded before: loads on demand
        assert await reply(core, chat_id, "Still there?")

    asyncio.run(scenario())


def test_with_cpu_chat_allowed_a_reply_arrives_during_game_mode(core: AppCore) -> None:
    core.settings = core.settings.model_copy(update={"game_mode_action": "cpu"})
    probe = ScriptedProbe([True])
    game = scripted_game(core, probe)

    async def scenario() -> None:
        chat_id = await first_chat(core)
        await reply(core, chat_id, "Hello")
        on_gpu_settings = worker_processes(core)

        state = await game.poll_now()
        assert (state.phase, state.action) == ("on", "cpu")
        assert core.sources.state.phase == "ready"  # loaded again, every layer on the CPU
        assert core.sources.state.gpu_layers == 0
        await until_gone(on_gpu_settings)
        assert await reply(core, chat_id, "Can we talk while I play?")

        probe.answers = [False]
        await game.poll_now()
        assert core.sources.state.phase == "ready"
        assert core.sources.game_action is None

    asyncio.run(scenario())


def test_cpu_chat_needs_a_new_model_process_only_when_layers_would_be_on_the_gpu(core: AppCore) -> None:
    auto = core.settings  # gpu_layers "auto": llama.cpp would offload what it can
    assert source_key(auto, cpu_only=True) != source_key(auto)
    on_cpu = auto.model_copy(update={"gpu_layers": 0})
    assert source_key(on_cpu, cpu_only=True) == source_key(on_cpu)  # already all on the CPU


def test_a_game_starting_mid_reply_lets_the_reply_finish_and_saves_it(core: AppCore) -> None:
    core.settings = core.settings.model_copy(update={"max_tokens": 48})
    probe = ScriptedProbe([False])
    game = scripted_game(core, probe)

    async def scenario() -> None:
        chat_id = await first_chat(core)
        await core.sources.get()
        worker = worker_processes(core)
        entering: asyncio.Task[Any] | None = None
        phase_when_saved = ""
        saved: ReplySaved | None = None
        async for event in core.chat.send(chat_id, "Tell me a long story about a dragon."):
            if isinstance(event, ReplyToken) and entering is None:
                probe.answers = [True]  # the game starts while the reply is being written
                entering = asyncio.create_task(game.poll_now())
                await asyncio.sleep(0.2)
            if isinstance(event, ReplySaved):
                saved, phase_when_saved = event, game.state.phase
        assert entering is not None and saved is not None
        assert phase_when_saved == "entering"  # game mode waited for this reply
        assert saved.output.stats is not None and saved.output.stats.finish_reason != "cancelled"
        assert saved.message.content.strip()
        assert (await entering).phase == "on"
        await until_gone(worker)
        stored = rows(core, chat_id)
        assert stored[-2:] == [
            ("user", "Tell me a long story about a dragon."),
            ("assistant", saved.message.content),
        ]

    asyncio.run(scenario())


def test_a_detected_game_must_be_seen_twice_while_the_switch_acts_at_once(core: AppCore) -> None:
    probe = ScriptedProbe([False])
    game = scripted_game(core, probe, confirm_polls=2)

    async def scenario() -> None:
        await game.poll_now()
        probe.answers = [True]
        assert (await game.poll_now()).phase == "off"  # one sighting: maybe a launcher's flash
        assert (await game.poll_now()).phase == "on"
        probe.answers = [False]
        assert (await game.poll_now()).phase == "on"
        assert (await game.poll_now()).phase == "off"

        core.settings = core.settings.model_copy(update={"game_mode_manual": True})
        state = await game.poll_now()
        assert (state.phase, state.reason) == ("on", "Switch: on")
        core.settings = core.settings.model_copy(update={"game_mode_manual": False})
        assert (await game.poll_now()).phase == "off"

    asyncio.run(scenario())


def test_with_detection_off_only_the_switch_starts_game_mode(core: AppCore) -> None:
    core.settings = core.settings.model_copy(update={"game_mode_detect": False})
    game = scripted_game(core, ScriptedProbe([True]))

    async def scenario() -> None:
        assert (await game.poll_now()).phase == "off"
        core.settings = core.settings.model_copy(update={"game_mode_manual": True})
        assert (await game.poll_now()).phase == "on"

    asyncio.run(scenario())


def test_game_mode_events_reach_listeners_in_order(core: AppCore) -> None:
    game = scripted_game(core, ScriptedProbe([True]))
    seen: list[str] = []
    game.listeners.subscribe(lambda state: seen.append(state.phase))

    async def scenario() -> None:
        await game.poll_now()
        game.probes[1] = ScriptedProbe([False])
        await game.poll_now()

    asyncio.run(scenario())
    assert seen == ["entering", "on", "off"]


def test_the_switch_saved_by_another_process_is_taken_into_the_running_app(core: AppCore) -> None:
    """``nexus game-mode on`` writes the saved settings; the app's poll adopts the switch."""

    async def scenario() -> None:
        await core.game_mode.poll_now()
        assert core.game_mode.state.phase == "off"
        saved = core.store.load_settings()
        core.store.save_settings(saved.model_copy(update={"game_mode_manual": True}))  # as the CLI does
        state = await core.game_mode.poll_now()
        assert core.settings.game_mode_manual is True
        assert (state.phase, state.reason) == ("on", "Switch: on")
        assert core.store.load_settings().threads == saved.threads  # nothing else was touched

    asyncio.run(scenario())
