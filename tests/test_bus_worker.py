"""A second PC serves the characters: the app chats through real ``nexus worker`` subprocesses
serving the bundled SmolLM2 over a real nats-server on loopback.

Streaming, Stop, which machine answered, a worker SIGKILLed mid-reply (fail-over to another
within a second, or a clear error keeping the partial reply), a worker going away cleanly.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest

from nexus_desktop.chat.service import ChatEvent, ReplySaved, ReplyToken, ToolCalled
from nexus_desktop.core import AppCore
from nexus_desktop.llm.contract import ModelError, PartialReplyError
from tests.nats_support import NatsServer, WorkerProcess, nats_server, start_worker  # noqa: F401

pytestmark = pytest.mark.model


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[list[WorkerProcess]]:
    """Workers a test starts (``start_worker``), all stopped at the end, also on failure."""
    started: list[WorkerProcess] = []
    yield started
    for worker in started:
        worker.stop()


def serve(
    started: list[WorkerProcess], server: NatsServer, name: str, folder: Path, what: str = "model"
) -> WorkerProcess:
    worker = start_worker(server.url, name, folder / name, "--serve", what)
    started.append(worker)
    return worker


@pytest.fixture
def core(private_data_dir: Path, nats_server: NatsServer) -> Iterator[AppCore]:  # noqa: F811
    app = AppCore()
    app.settings = app.settings.model_copy(
        update={"source": "worker", "worker_url": nats_server.url, "max_tokens": 24, "temperature": 0.7}
    )
    yield app
    asyncio.run(app.aclose())


async def first_chat(core: AppCore, *, brief: bool = False) -> int:
    """A new chat with the first bundled character, or with one of a one-line card (``brief``):
    its short prompt is what a CPU-only worker processes in well under a second."""
    if brief:
        character = core.store.add_character("Brief", {"name": "Brief", "first_mes": "Hi."})
    else:
        character = core.store.list_characters()[0]
    assert character.id is not None
    chat, _ = await core.chat.open_chat(character.id)
    assert chat.id is not None
    return chat.id


async def collect(
    events: AsyncIterator[ChatEvent], core: AppCore, stop_after: int | None = None
) -> list[ChatEvent]:
    seen: list[ChatEvent] = []
    async for event in events:
        seen.append(event)
        if stop_after is not None and sum(isinstance(e, ReplyToken) for e in seen) == stop_after:
            core.chat.stop()
    return seen


def tokens(events: list[ChatEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, ReplyToken))


def test_a_chat_streams_from_a_worker_and_names_it(
    core: AppCore,
    nats_server: NatsServer,  # noqa: F811
    workers: list[WorkerProcess],
    tmp_path: Path,
) -> None:
    worker = serve(workers, nats_server, "gpc2", tmp_path)
    assert worker.line == (
        f"Serving the model SmolLM2-135M-Instruct.Q4_1.gguf as 'gpc2' on {nats_server.url}. Ctrl+C stops."
    )

    async def scenario() -> list[ChatEvent]:
        chat_id = await first_chat(core)
        events = await collect(core.chat.send(chat_id, "Hello, who are you?"), core)
        assert core.sources.state.name == "worker: gpc2 · SmolLM2-135M-Instruct.Q4_1.gguf"
        assert core.sources.current is not None and core.sources.current.context_size == 4096
        return events

    events = asyncio.run(scenario())
    assert sum(isinstance(e, ReplyToken) for e in events) >= 2  # streamed token by token
    saved = [e for e in events if isinstance(e, ReplySaved)]
    assert saved and saved[0].output.served_by == "gpc2"
    stored = core.store.get_message(saved[0].message.id)
    assert stored.content.strip() and stored.stats["served_by"] == "gpc2"
    assert tokens(events).strip().startswith(stored.content.strip()[:10])
    # Ctrl+C (SIGINT) deregisters and exits 0.
    worker.process.send_signal(signal.SIGINT)
    out, _ = worker.process.communicate(timeout=20)
    assert worker.process.returncode == 0 and "Worker stopped." in out


def test_stop_ends_the_reply_early_and_keeps_it(
    core: AppCore,
    nats_server: NatsServer,  # noqa: F811
    workers: list[WorkerProcess],
    tmp_path: Path,
) -> None:
    serve(workers, nats_server, "gpc2", tmp_path)
    core.settings = core.settings.model_copy(update={"max_tokens": 200})

    async def scenario() -> list[ChatEvent]:
        return await collect(
            core.chat.send(await first_chat(core), "Tell me a long story."), core, stop_after=3
        )

    started = time.monotonic()
    events = asyncio.run(scenario())
    saved = [e for e in events if isinstance(e, ReplySaved)]
    assert saved and saved[0].output.stats.finish_reason == "cancelled"
    assert saved[0].output.stats.completion_tokens < 20
    assert core.store.get_message(saved[0].message.id).content.strip() == tokens(events).strip()
    assert time.monotonic() - started < 30


async def _tap(url: str, seen: list[dict[str, object]]) -> nats.NATS:
    """Every Signal on the server, as the wire carries it."""
    client = await nats.connect(url)

    async def record(message: nats.aio.msg.Msg) -> None:
        try:
            seen.append(json.loads(message.data))
        except ValueError:
            pass

    await client.subscribe(">", cb=record)
    return client


def _kill_when_tokens_flow(
    core: AppCore, url: str, workers: list[WorkerProcess], after: int
) -> tuple[list[ChatEvent], float, str, BaseException | None]:
    """Send a message; once ``after`` tokens came, SIGKILL the worker sending them.  Returns the
    events, the seconds from the kill to the next token, the text shown before it, the error."""
    by_name = {worker.name: worker for worker in workers}
    wire: list[dict[str, object]] = []

    async def scenario() -> tuple[list[ChatEvent], float, str, BaseException | None]:
        tap = await _tap(url, wire)
        events: list[ChatEvent] = []
        killed_at, gap, shown = 0.0, -1.0, ""
        try:
            chat_id = await first_chat(core, brief=True)
            async for event in core.chat.send(chat_id, "Tell me a long story about a dragon."):
                events.append(event)
                if isinstance(event, ReplyToken) and killed_at and gap < 0:
                    gap = time.monotonic() - killed_at
                if not killed_at and sum(isinstance(e, ReplyToken) for e in events) == after:
                    await tap.flush()
                    sender = next(str(s["sender"]) for s in reversed(wire) if s.get("kind") == "token")
                    os.kill(by_name[sender].process.pid, signal.SIGKILL)
                    killed_at, shown = time.monotonic(), tokens(events)
        except ModelError as error:
            return events, gap, shown, error
        finally:
            await tap.close()
        return events, gap, shown, None

    return asyncio.run(scenario())


def test_a_worker_killed_mid_reply_fails_over_to_another_within_a_second(
    core: AppCore,
    nats_server: NatsServer,  # noqa: F811
    workers: list[WorkerProcess],
    tmp_path: Path,
) -> None:
    serve(workers, nats_server, "gpc2", tmp_path)
    serve(workers, nats_server, "gpc3", tmp_path)
    core.settings = core.settings.model_copy(update={"max_tokens": 60})
    events, gap, shown, error = _kill_when_tokens_flow(core, nats_server.url, workers, after=5)
    assert error is None
    assert 0 <= gap < 1.0  # the next token came from the other worker within a second
    saved = [e for e in events if isinstance(e, ReplySaved)]
    assert saved, "the reply was not finished"
    final = core.store.get_message(saved[0].message.id).content
    assert final.startswith(shown.strip()) and len(final) > len(shown.strip())  # nothing shown twice
    assert tokens(events).startswith(shown) and final.strip() == tokens(events).strip()
    assert saved[0].output.served_by in {"gpc2", "gpc3"}
    dead = [w.name for w in workers if w.process.poll() is not None]
    assert dead and saved[0].output.served_by not in dead


def test_a_lone_worker_killed_mid_reply_gives_a_clear_error_and_keeps_the_partial_reply(
    core: AppCore,
    nats_server: NatsServer,  # noqa: F811
    workers: list[WorkerProcess],
    tmp_path: Path,
) -> None:
    serve(workers, nats_server, "gpc2", tmp_path)
    core.settings = core.settings.model_copy(update={"max_tokens": 60})
    events, _, shown, error = _kill_when_tokens_flow(core, nats_server.url, workers, after=5)
    assert isinstance(error, PartialReplyError)
    assert "gpc2 stopped answering mid-reply" in str(error) and "nexus worker" in str(error)
    saved = [e for e in events if isinstance(e, ReplySaved)]
    assert saved and saved[0].output.text == tokens(events)  # the partial reply is kept, all of it
    assert core.store.get_message(saved[0].message.id).content.strip() == tokens(events).strip()
    assert tokens(events).startswith(shown)


def test_no_worker_on_the_server_is_a_clear_error_and_nothing_is_saved(core: AppCore) -> None:
    async def scenario() -> None:
        chat_id = await first_chat(core)
        before = core.store.list_messages(chat_id)
        with pytest.raises(ModelError, match=r"no worker serves chat there\. Start `nexus worker --connect"):
            await collect(core.chat.send(chat_id, "Anyone?"), core)
        assert core.store.list_messages(chat_id) == before

    asyncio.run(scenario())


def test_the_server_going_away_mid_reply_keeps_the_partial_reply_and_chat_works_once_it_is_back(
    core: AppCore,
    nats_server: NatsServer,  # noqa: F811
    workers: list[WorkerProcess],
    tmp_path: Path,
) -> None:
    serve(workers, nats_server, "gpc2", tmp_path)
    core.settings = core.settings.model_copy(update={"max_tokens": 60})

    async def scenario() -> tuple[list[ChatEvent], BaseException | None, list[ChatEvent]]:
        chat_id = await first_chat(core, brief=True)
        events: list[ChatEvent] = []
        error: BaseException | None = None
        try:
            async for event in core.chat.send(chat_id, "Tell me a long story about a comet."):
                events.append(event)
                if sum(isinstance(e, ReplyToken) for e in events) == 5 and nats_server.process:
                    await asyncio.to_thread(nats_server.stop)
        except ModelError as failure:
            error = failure
        await asyncio.to_thread(nats_server.start)  # the same port: both ends reconnect by themselves
        deadline = time.monotonic() + 20
        while True:
            try:
                return events, error, await collect(core.chat.send(chat_id, "Are you back?"), core)
            except ModelError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)

    events, error, after = asyncio.run(scenario())
    assert isinstance(error, PartialReplyError)
    assert "gpc2 stopped answering mid-reply" in str(error)
    saved = [e for e in events if isinstance(e, ReplySaved)]
    assert saved and core.store.get_message(saved[0].message.id).content.strip() == tokens(events).strip()
    again = [e for e in after if isinstance(e, ReplySaved)]
    assert again and again[0].output.served_by == "gpc2" and tokens(after).strip()


def test_a_typed_command_runs_a_tool_the_worker_serves_and_the_character_answers(
    core: AppCore,
    nats_server: NatsServer,  # noqa: F811
    workers: list[WorkerProcess],
    tmp_path: Path,
) -> None:
    serve(workers, nats_server, "gpc2", tmp_path, "model,tools")

    async def scenario() -> list[ChatEvent]:
        chat_id = await first_chat(core, brief=True)
        assert core.running_modules() is None  # this app runs no module: only the worker has dice
        return await collect(core.chat.send(chat_id, "/roll 2d6"), core)

    events = asyncio.run(scenario())
    called = [e for e in events if isinstance(e, ToolCalled)]
    assert called and called[0].name == "dice.roll" and called[0].arguments == {"notation": "2d6"}
    roll = re.fullmatch(r"2d6: \[(\d), (\d)\] = (\d+)", called[0].result.content)
    assert called[0].result.ok and roll and int(roll[1]) + int(roll[2]) == int(roll[3])
    saved = [e for e in events if isinstance(e, ReplySaved)]
    assert saved and saved[0].output.served_by == "gpc2"  # and the worker's model answered after it


def test_without_a_worker_serving_tools_the_command_is_not_a_tool(
    core: AppCore,
    nats_server: NatsServer,  # noqa: F811
    workers: list[WorkerProcess],
    tmp_path: Path,
) -> None:
    serve(workers, nats_server, "gpc2", tmp_path, "model")  # the negative control: model only

    async def scenario() -> list[ChatEvent]:
        return await collect(core.chat.send(await first_chat(core, brief=True), "/roll 2d6"), core)

    events = asyncio.run(scenario())
    assert not [e for e in events if isinstance(e, ToolCalled)]
