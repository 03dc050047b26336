"""Characters calling tools in a chat: commands, the model's decision, what is saved and shown.

The ``/roll`` path runs the real SmolLM2 model through the chat service.  The model-decided path
uses a scripted source (a small class implementing the model contract that answers with
predetermined outputs), because a 135M model's choice of tool is not predictable.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from nexus_desktop.chat.commands import parse_command
from nexus_desktop.chat.service import (
    ChatEvent,
    ChatService,
    ReplySaved,
    ReplyToken,
    ToolCalled,
    UserMessageSaved,
)
from nexus_desktop.chat.tool_schema import argument_problems
from nexus_desktop.chat.tools import (
    InProcessTools,
    LocalTool,
    ToolCall,
    ToolProvider,
    decide_tool_call,
    fill_arguments,
)
from nexus_desktop.core import AppCore
from nexus_desktop.llm.contract import (
    ChatInput,
    ChatMessage,
    ChatOutput,
    ModelSource,
    ReplyStats,
    RunContext,
    StreamEvent,
    StreamingSource,
    TokenEvent,
)
from nexus_desktop.modules.discovery import bundled_modules_dir
from nexus_desktop.modules.registry import ModuleHost
from nexus_desktop.modules.runtime.supervisor import ModuleSupervisor
from nexus_desktop.secrets import SecretStore

PLUGINS = bundled_modules_dir()
ROLL = re.compile(r"2d6: \[(\d), (\d)\] = (\d+)")


class ScriptedSource(StreamingSource):
    """A model that answers each request with the next of ``replies`` and remembers the requests."""

    def __init__(self, replies: Sequence[str]) -> None:
        self.replies = list(replies)
        self.requests: list[ChatInput] = []

    @property
    def name(self) -> str:
        return "scripted"

    @property
    def context_size(self) -> int:
        return 4096

    async def stream(self, request: ChatInput, context: RunContext) -> AsyncIterator[StreamEvent]:
        self.requests.append(request)
        text = self.replies.pop(0)
        for word in re.findall(r"\S+\s*", text):
            yield TokenEvent(word)
        yield ChatOutput(text, ReplyStats(10, len(text.split()), 0.1, 0.01, self.context_size, "stop"))

    async def count_tokens(self, texts: list[str]) -> list[int]:
        return [len(text.split()) + 1 for text in texts]

    async def aclose(self) -> None:
        pass


class RecordingSource(StreamingSource):
    """The real model, with every request it is asked kept for the test to read."""

    def __init__(self, inner: ModelSource) -> None:
        self.inner = inner
        self.requests: list[ChatInput] = []

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def context_size(self) -> int:
        return self.inner.context_size

    async def stream(self, request: ChatInput, context: RunContext) -> AsyncIterator[StreamEvent]:
        self.requests.append(request)
        async for event in self.inner.stream(request, context):
            yield event

    async def count_tokens(self, texts: list[str]) -> list[int]:
        return await self.inner.count_tokens(texts)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture
def tools(private_data_dir: Path) -> InProcessTools:
    provider = InProcessTools()
    for name in ("dice", "notes"):
        provider.load_folder(PLUGINS / name)
    return provider


@pytest.fixture
def core(private_data_dir: Path) -> Iterator[AppCore]:
    app = AppCore()
    app.settings = app.settings.model_copy(update={"threads": 1, "max_tokens": 24, "temperature": 0.7})
    yield app
    asyncio.run(app.aclose())


def chat_with(
    core: AppCore,
    source: ModelSource,
    tools: ToolProvider,
    *,
    tools_by_model: bool = True,
    route: Any = None,
) -> ChatService:
    async def get_source(_character: str) -> ModelSource:
        return source

    core.settings = core.settings.model_copy(update={"tools_by_model": tools_by_model})
    core.chat = ChatService(
        core.db, get_source, lambda: core.settings, lambda: tools, route=route, collect=core.collector.collect
    )
    return core.chat


async def collect(events: AsyncIterator[ChatEvent]) -> list[ChatEvent]:
    return [event async for event in events]


async def open_first_chat(core: AppCore, extensions: dict[str, Any] | None = None) -> int:
    character = core.store.list_characters()[0]
    assert character.id is not None
    if extensions is not None:
        card = dict(character.card)
        card["extensions"] = {**card.get("extensions", {}), **extensions}
        core.store.update_character(character.id, character.name, card, character.avatar)
    chat, _ = await core.chat.new_chat(character.id)
    assert chat.id is not None
    return chat.id


def send(core: AppCore, text: str, extensions: dict[str, Any] | None = None) -> tuple[int, list[ChatEvent]]:
    async def scenario() -> tuple[int, list[ChatEvent]]:
        chat_id = await open_first_chat(core, extensions)
        return chat_id, await collect(core.chat.send(chat_id, text))

    return asyncio.run(scenario())


def user_turn(request: ChatInput) -> str:
    return next(m.content for m in reversed(request.messages) if m.role == "user")


# Commands -----------------------------------------------------------------------------------


@pytest.mark.model
def test_roll_command_calls_dice_shows_the_call_saves_it_and_the_character_replies(
    core: AppCore, tools: InProcessTools
) -> None:
    async def scenario() -> tuple[RecordingSource, int, list[ChatEvent]]:
        # The worker's pipes belong to the event loop that started it: one loop for the whole test.
        source = RecordingSource(await core.sources.get())
        chat_with(core, source, tools)
        chat_id = await open_first_chat(core)
        return source, chat_id, await collect(core.chat.send(chat_id, "/roll 2d6"))

    source, chat_id, events = asyncio.run(scenario())

    assert isinstance(events[0], UserMessageSaved)
    called = events[1]
    assert isinstance(called, ToolCalled)
    assert called.name == "dice.roll" and called.arguments == {"notation": "2d6"}
    roll = ROLL.fullmatch(called.result.content)
    assert called.result.ok and roll and int(roll.group(1)) + int(roll.group(2)) == int(roll.group(3))
    assert any(isinstance(e, ReplyToken) for e in events)
    reply = events[-1]
    assert isinstance(reply, ReplySaved) and reply.message.content.strip()

    stored = core.store.list_messages(chat_id)
    assert [m.role for m in stored] == ["assistant", "user", "tool", "assistant"]
    tool_message = stored[2]
    assert tool_message.id == called.message.id
    assert tool_message.content == f'dice.roll(notation="2d6")\n{called.result.content}'
    assert tool_message.stats is not None
    assert tool_message.stats["tool"] == "dice.roll" and tool_message.stats["via"] == "command"
    assert tool_message.stats["ok"] is True and tool_message.stats["result"] == called.result.content

    # A command needs no decision from the model: its one request is the reply, which sees the result.
    [request] = source.requests
    assert request.grammar is None and request.json_schema is None
    assert (
        user_turn(request)
        == f'/roll 2d6\n\n[Tool dice.roll(notation="2d6") returned: {called.result.content}]'
    )


def test_a_command_with_bad_input_saves_the_error_and_the_character_still_replies(
    core: AppCore, tools: InProcessTools
) -> None:
    source = ScriptedSource(["Those are not dice I know."])
    chat_with(core, source, tools)

    chat_id, events = send(core, "/roll banana")

    called = next(e for e in events if isinstance(e, ToolCalled))
    assert not called.result.ok
    assert called.result.error == "'banana' is not dice notation; write it like 2d6, d20+3 or 4d6kh3."
    stored = core.store.list_messages(chat_id)
    assert stored[2].role == "tool" and stored[2].stats and stored[2].stats["ok"] is False
    assert stored[2].content.endswith(
        "Failed: 'banana' is not dice notation; write it like 2d6, d20+3 or 4d6kh3."
    )
    assert isinstance(events[-1], ReplySaved) and events[-1].message.content == "Those are not dice I know."


def test_a_character_whose_card_allows_no_tools_treats_a_command_as_text(
    core: AppCore, tools: InProcessTools
) -> None:
    source = ScriptedSource(["Roll what?"])
    chat_with(core, source, tools)

    chat_id, events = send(core, "/roll 2d6", extensions={"nexus": {"tools": []}})

    assert not any(isinstance(e, ToolCalled) for e in events)
    assert [m.role for m in core.store.list_messages(chat_id)] == ["assistant", "user", "assistant"]
    assert len(source.requests) == 1 and user_turn(source.requests[0]) == "/roll 2d6"


def test_commands_run_bundled_modules_in_their_own_processes_through_the_supervisor(
    core: AppCore, tmp_path: Path, private_data_dir: Path
) -> None:
    host = ModuleHost(
        core.store.engine,
        bundled_dir=PLUGINS,
        user_dir=tmp_path / "user",
        builtins=False,
        environ={"NEXUS_LOAD_MODULES": "dice,notes"},
    )
    host.refresh()
    for name in ("dice", "notes"):
        host.approve(host.review(name))

    async def scenario() -> tuple[list[ChatEvent], list[ChatEvent], dict[str, int | None]]:
        secrets = SecretStore(f"nexus-test-{uuid.uuid4().hex[:8]}", timeout=5)
        supervisor = ModuleSupervisor(host, secrets, call_timeout=30)
        try:
            await supervisor.start()
            chat_with(core, ScriptedSource(["Nice roll!", "I will remember."]), supervisor)
            chat_id = await open_first_chat(core)
            rolled = await collect(core.chat.send(chat_id, "/roll 2d6"))
            noted = await collect(core.chat.send(chat_id, "/remember My cat is called Tom."))
            return rolled, noted, {name: status.pid for name, status in supervisor.status().items()}
        finally:
            await supervisor.aclose()

    rolled, noted, pids = asyncio.run(scenario())
    roll = next(e for e in rolled if isinstance(e, ToolCalled))
    assert roll.result.ok and ROLL.fullmatch(roll.result.content), roll.result
    assert isinstance(rolled[-1], ReplySaved) and rolled[-1].message.content == "Nice roll!"
    note = next(e for e in noted if isinstance(e, ToolCalled))
    assert note.result.ok and note.result.content == "Remembered note #1: My cat is called Tom.", note.result
    # Each module ran in a process of its own, and the note went to its own data folder.
    assert None not in pids.values() and len({*pids.values(), os.getpid()}) == 3
    assert (private_data_dir / "module-data" / "notes" / "notes.sqlite3").is_file()


# The model's decision -----------------------------------------------------------------------


def test_a_promoted_intent_router_picks_the_tool_and_the_model_fills_its_arguments(
    core: AppCore, tools: InProcessTools
) -> None:
    routed: list[str] = []

    async def router(text: str) -> str:
        routed.append(text)
        return "roll_dice"

    source = ScriptedSource(['{"notation": "3d6"}', "Three dice, rolled."])
    chat_with(core, source, tools, tools_by_model=False, route=router)

    _chat_id, events = send(core, "chuck three dice")

    called = next(e for e in events if isinstance(e, ToolCalled))
    assert routed == ["chuck three dice"]
    assert (called.name, called.arguments) == ("dice.roll", {"notation": "3d6"})
    assert called.message.stats is not None and called.message.stats["via"] == "router"
    assert isinstance(events[-1], ReplySaved)


def test_saying_whether_the_router_was_right_becomes_router_training_data(
    core: AppCore, tools: InProcessTools
) -> None:
    import sqlite3

    async def router(_text: str) -> str:
        return "roll_dice"

    source = ScriptedSource(['{"notation": "1d20"}', "Rolled.", '{"notation": "1d6"}', "Rolled again."])
    chat_with(core, source, tools, tools_by_model=False, route=router)

    async def scenario() -> tuple[Any, Any, Any]:
        chat_id = await open_first_chat(core)
        first = next(
            e for e in await collect(core.chat.send(chat_id, "roll a d20")) if isinstance(e, ToolCalled)
        )
        second = next(
            e
            for e in await collect(core.chat.send(chat_id, "what do you remember?"))
            if isinstance(e, ToolCalled)
        )
        confirmed = await core.chat.judge_route(first.message.id, True)
        corrected = await core.chat.judge_route(second.message.id, False, "recall_note")
        with pytest.raises(ValueError, match="one of chat, roll_dice"):
            await core.chat.judge_route(second.message.id, False, "dance")
        return first, confirmed, corrected

    first, confirmed, corrected = asyncio.run(scenario())
    assert first.message.stats["route"] == {"text": "roll a d20", "label": "roll_dice"}
    assert confirmed.stats["route"]["verdict"] == "right"
    assert corrected.stats["route"]["verdict"] == "wrong"
    assert corrected.stats["route"]["corrected_label"] == "recall_note"
    assert core.collector.flush(30)
    conn = sqlite3.connect(core.store.path)
    rows = conn.execute(
        "SELECT signal, payload FROM training_example WHERE dataset = 'router' ORDER BY id"
    ).fetchall()
    conn.close()
    assert [(signal, json.loads(payload)) for signal, payload in rows] == [
        ("route_confirmed", {"text": "roll a d20", "label": "roll_dice"}),
        ("route_corrected", {"text": "what do you remember?", "label": "recall_note"}),
    ]


def test_the_router_labels_the_chat_offers_are_the_zoo_routers_labels() -> None:
    from nexus_desktop.chat.routing import ROUTE_CHOICES
    from nexus_desktop.training.zoo import get_spec

    assert list(ROUTE_CHOICES) == list(get_spec("router").labels)


def test_the_router_saying_chat_means_a_plain_reply(core: AppCore, tools: InProcessTools) -> None:
    async def router(_text: str) -> str:
        return "chat"

    source = ScriptedSource(["Just a chat."])
    chat_with(core, source, tools, tools_by_model=False, route=router)

    _chat_id, events = send(core, "how was your day?")

    assert not any(isinstance(e, ToolCalled) for e in events)
    assert isinstance(events[-1], ReplySaved) and events[-1].message.content == "Just a chat."


def test_without_the_setting_the_model_is_not_asked_to_pick_a_tool(
    core: AppCore, tools: InProcessTools
) -> None:
    source = ScriptedSource(["Just chatting, no dice needed."])
    chat_with(core, source, tools, tools_by_model=False)

    _chat_id, events = send(core, "Could you throw two dice for me?")

    assert not any(isinstance(e, ToolCalled) for e in events)
    assert isinstance(events[-1], ReplySaved)
    assert events[-1].message.content == "Just chatting, no dice needed."


def test_the_model_can_decide_to_call_a_tool_and_the_reply_uses_its_result(
    core: AppCore, tools: InProcessTools
) -> None:
    source = ScriptedSource(["dice.roll", '{"notation": "2d6"}', "The dice clatter across the table."])
    chat_with(core, source, tools)

    chat_id, events = send(core, "Could you throw two dice for me?")

    called = next(e for e in events if isinstance(e, ToolCalled))
    assert called.name == "dice.roll" and called.arguments == {"notation": "2d6"} and called.result.ok
    assert [m.role for m in core.store.list_messages(chat_id)] == ["assistant", "user", "tool", "assistant"]
    assert core.store.list_messages(chat_id)[2].stats["via"] == "model"  # type: ignore[index]

    pick, fill, reply = source.requests
    assert pick.grammar is not None and '"dice.roll"' in pick.grammar and '"none"' in pick.grammar
    assert user_turn(pick) == "Could you throw two dice for me?"
    assert fill.json_schema == {
        "type": "object",
        "properties": {"notation": {"type": "string"}},  # length bounds are checked afterwards
        "required": ["notation"],
        "additionalProperties": False,
    }
    assert f"returned: {called.result.content}]" in user_turn(reply)
    assert (
        isinstance(events[-1], ReplySaved)
        and events[-1].message.content == "The dice clatter across the table."
    )


def test_when_the_model_decides_no_tool_only_the_reply_is_saved(core: AppCore, tools: InProcessTools) -> None:
    source = ScriptedSource(["none", "Hello there!"])
    chat_with(core, source, tools)

    chat_id, events = send(core, "Hi!")

    assert not any(isinstance(e, ToolCalled) for e in events)
    assert [m.role for m in core.store.list_messages(chat_id)] == ["assistant", "user", "assistant"]
    assert len(source.requests) == 2


def test_arguments_from_the_model_that_break_the_schema_call_no_tool(
    core: AppCore, tools: InProcessTools
) -> None:
    source = ScriptedSource(["notes.forget", '{"id": "the cat"}', "Alright."])
    chat_with(core, source, tools)

    chat_id, events = send(core, "Forget about my cat.")

    assert not any(isinstance(e, ToolCalled) for e in events)
    assert [m.role for m in core.store.list_messages(chat_id)] == ["assistant", "user", "assistant"]


def test_regenerating_after_a_tool_call_keeps_the_result_and_does_not_call_again(
    core: AppCore, tools: InProcessTools
) -> None:
    source = ScriptedSource(["First telling.", "Second telling."])
    chat_with(core, source, tools)

    async def scenario() -> tuple[int, list[ChatEvent]]:
        chat_id = await open_first_chat(core)
        await collect(core.chat.send(chat_id, "/roll 2d6"))
        return chat_id, await collect(core.chat.regenerate(chat_id))

    chat_id, events = asyncio.run(scenario())
    assert not any(isinstance(e, ToolCalled) for e in events)
    stored = core.store.list_messages(chat_id)
    assert [m.role for m in stored] == ["assistant", "user", "tool", "assistant"]
    assert stored[-1].swipes == ["First telling.", "Second telling."]
    assert "[Tool dice.roll" in user_turn(source.requests[-1])


def test_when_the_reply_after_a_tool_failed_respond_answers_without_calling_again(
    core: AppCore, tools: InProcessTools
) -> None:
    source = ScriptedSource(["Here is the reply."])
    chat_with(core, source, tools)

    async def scenario() -> tuple[int, list[ChatEvent]]:
        chat_id = await open_first_chat(core)
        core.store.add_message(chat_id, "user", "/roll 2d6")
        core.store.add_message(chat_id, "tool", 'dice.roll(notation="2d6")\n2d6: [1, 2] = 3')
        return chat_id, await collect(core.chat.respond(chat_id))

    chat_id, events = asyncio.run(scenario())
    assert not any(isinstance(e, ToolCalled) for e in events)
    assert [m.role for m in core.store.list_messages(chat_id)] == ["assistant", "user", "tool", "assistant"]
    assert user_turn(source.requests[0]).endswith(
        '[Tool dice.roll(notation="2d6") returned: 2d6: [1, 2] = 3]'
    )


@pytest.mark.model
def test_the_real_model_calls_a_tool_for_some_request_and_every_call_it_makes_is_valid(
    core: AppCore, tools: InProcessTools
) -> None:
    offered = tools.tools()
    asks = ("Roll 2d6 for me please", "Hi, how are you today?", "Remember that my cat is called Tom.")

    async def decide_all() -> list[ToolCall | None]:
        source = await core.sources.get()
        return [await decide_tool_call(source, [ChatMessage("user", text)], offered) for text in asks]

    calls = [call for call in asyncio.run(decide_all()) if call is not None]
    assert calls, "the model called no tool for any request: this test would pass with tools broken"
    for call in calls:
        assert call.via == "model"
        assert argument_problems(tools_by_name(tools)[call.name].parameters, call.arguments) == []


@pytest.mark.model
def test_the_real_model_can_be_asked_for_the_arguments_of_every_bundled_tool(core: AppCore) -> None:
    # A schema llama.cpp cannot compile into a grammar crashes the model process; none may.
    provider = InProcessTools()
    for name in ("dice", "notes", "system-monitor", "weather"):
        provider.load_folder(PLUGINS / name)

    async def ask_all() -> dict[str, dict[str, Any] | None]:
        source = await core.sources.get()
        return {
            tool.name: await fill_arguments(source, tool, "Please do it for Paris, 2d6, tea or coffee.")
            for tool in provider.tools()
        }

    answers = asyncio.run(ask_all())
    assert set(answers) == {tool.name for tool in provider.tools()}
    filled = [name for name, arguments in answers.items() if arguments is not None]
    assert filled, "the model filled in no tool's arguments: this test would pass with tools broken"
    for name, arguments in answers.items():
        if arguments is not None:
            assert argument_problems(tools_by_name(provider)[name].parameters, arguments) == [], name


# Commands and arguments, without a model ----------------------------------------------------


def tools_by_name(tools: InProcessTools) -> dict[str, LocalTool]:
    return {tool.name: tool for tool in tools.tools()}


def test_commands_name_a_tool_by_its_last_part_or_its_module(tools: InProcessTools) -> None:
    offered = [
        *tools.tools(),
        LocalTool(
            "weather.current",
            "Weather.",
            {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            "weather",
        ),
    ]
    assert parse_command("/roll 2d6 adv", offered) == ToolCall(
        "dice.roll", {"notation": "2d6 adv"}, "command"
    )
    assert parse_command("/dice.roll d20", offered) == ToolCall("dice.roll", {"notation": "d20"}, "command")
    assert parse_command("/coin", offered) == ToolCall("dice.coin", {}, "command")
    assert parse_command("/pick tea, coffee", offered) == ToolCall(
        "dice.pick", {"options": ["tea", "coffee"]}, "command"
    )
    assert parse_command("/forget 3", offered) == ToolCall("notes.forget", {"id": 3}, "command")
    assert parse_command("/weather Paris", offered) == ToolCall(
        "weather.current", {"city": "Paris"}, "command"
    )
    assert parse_command('/pick {"options": ["a", "b"], "count": 2}', offered) == ToolCall(
        "dice.pick", {"options": ["a", "b"], "count": 2}, "command"
    )


def test_text_that_is_not_a_command_for_a_tool_is_left_to_the_chat(tools: InProcessTools) -> None:
    offered = tools.tools()
    for text in ("roll 2d6", "Let me /roll 2d6", "/", "/dance wildly", "/notes"):
        assert parse_command(text, offered) is None, text


def test_argument_problems_name_each_wrong_field() -> None:
    schema = {
        "type": "object",
        "properties": {
            "n": {"type": "integer", "minimum": 1},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["n"],
        "additionalProperties": False,
    }
    assert argument_problems(schema, {"n": 2, "tags": ["a"]}) == []
    assert argument_problems(schema, {"n": 0, "tags": [1], "x": True}) == [
        "n must be at least 1",
        "tags[0] must be string, not 1",
        "'x' is not an argument of this tool",
    ]
    assert argument_problems(schema, {"n": True}) == ["n must be integer, not true"]
    assert argument_problems(schema, {}) == ["'n' is missing"]
    assert json.dumps(argument_problems(schema, [])) == '["arguments must be object, not []"]'


# Provider routing: the task router picks who chooses the tool and who routes -------------------


def test_the_task_router_sends_the_tool_choice_to_the_configured_remote_provider(
    core: AppCore, tools: InProcessTools
) -> None:
    from sqlmodel import select

    from nexus_desktop.db.engine import session
    from nexus_desktop.providers import TaskRouter
    from nexus_desktop.providers.tables import RouteRecord
    from tests.chat_server import running_chat_server

    with running_chat_server() as remote:
        remote.tool_choices = ["dice.roll"]
        remote.tool_arguments = ['{"notation": "2d6"}']
        core.settings = core.settings.model_copy(
            update={"remote_base_url": remote.base_url, "remote_model": "scripted", "tools_by_model": True}
        )
        router = TaskRouter(core.store.engine, lambda: core.settings, {}.get)
        chat_source = ScriptedSource(["Two dice, rolled."])

        async def get_source(_character: str) -> ModelSource:
            return chat_source

        core.chat = ChatService(core.db, get_source, lambda: core.settings, lambda: tools, task_router=router)
        _chat_id, events = send(core, "roll two six-sided dice for me")

    called = next(e for e in events if isinstance(e, ToolCalled))
    assert called.name == "dice.roll" and called.arguments == {"notation": "2d6"} and called.result.ok
    # The remote provider chose and filled in the call; the chat's own model only wrote the reply.
    asked = [("grammar" in r, "response_format" in r) for r in remote.requests]
    assert asked == [(True, False), (False, True)]
    assert [r.grammar for r in chat_source.requests] == [None]
    with session(core.store.engine) as db:
        [row] = db.exec(select(RouteRecord)).all()
    assert (row.task, row.source_name, row.outcome) == ("routing", "remote: scripted", "ok")


def test_without_a_trained_router_a_remote_provider_routes_build_requests_when_the_user_allows_it(
    private_data_dir: Path,
) -> None:
    from nexus_desktop.chat.routing import IntentRouter
    from nexus_desktop.db.store import Store
    from nexus_desktop.providers import TaskRouter
    from nexus_desktop.settings import Settings
    from tests.chat_server import running_chat_server

    store = Store(private_data_dir / "nexus.db")
    settings = Settings()
    task_router = TaskRouter(store.engine, lambda: settings, {}.get)

    def allowed() -> bool:
        return settings.tools_by_model

    router = IntentRouter(
        lambda: None, lexical=lambda: None, task_router=task_router, model_may_route=allowed
    )
    try:
        with running_chat_server() as remote:
            remote.tool_choices = ["build_module"]
            # No remote provider: the small local model never routes, allowed or not.
            settings = Settings(tools_by_model=True)
            assert asyncio.run(router.route("build me a tracker for my Steam playtime")) is None
            # A remote provider the user did not allow to pick (one more call per message): no call.
            settings = Settings(remote_base_url=remote.base_url, remote_model="scripted")
            assert asyncio.run(router.route("build me a tracker for my Steam playtime")) is None
            assert remote.requests == []
            settings = Settings(remote_base_url=remote.base_url, remote_model="scripted", tools_by_model=True)
            assert asyncio.run(router.route("build me a tracker for my Steam playtime")) == "build_module"
            [request] = remote.requests
            assert "build_module: Build a module" in request["messages"][0]["content"]
        rates = asyncio.run(task_router.success_rates())
        assert [(r.task, r.source_name, r.ok, r.total) for r in rates] == [
            ("routing", "remote: scripted", 1, 1)
        ]
    finally:
        asyncio.run(router.aclose())
        store.close()
