"""Replies under the governor and the modules' chat interceptors, end to end.

The model is a real OpenAI-compatible server on loopback (``tests/chat_server.py``) reached
through the app's own ``OpenAICompatSource``; the database is a real SQLite file; module
interceptors run in real module processes under the real supervisor.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select

from nexus_desktop.cards.model import CharacterCard
from nexus_desktop.chat.events import ChatEvent, GovernorNotice, ReplySaved, ReplyToken, ToolCalled
from nexus_desktop.chat.pipeline import Interceptors
from nexus_desktop.chat.service import ChatService
from nexus_desktop.chat.tools import InProcessTools, ToolProvider
from nexus_desktop.control.governor import Governor
from nexus_desktop.control.policy import Policy
from nexus_desktop.control.tables import BudgetUsage, ModelCall
from nexus_desktop.db.store import AsyncStore, Store
from nexus_desktop.llm.contract import RemoteServerError
from nexus_desktop.llm.openai_compat import OpenAICompatSource
from nexus_desktop.modules.discovery import bundled_modules_dir
from nexus_desktop.modules.runtime.supervisor import ModuleSupervisor
from nexus_desktop.modules.runtime.validate import module_data_dir
from nexus_desktop.secrets import SecretStore
from nexus_desktop.settings import Settings
from tests.chat_server import MODEL, ChatServer, running_chat_server
from tests.hostile.runtime_modules import approve_all, developer_host, install_modules, make_supervisor

GREETING = "Hello, traveller."


@pytest.fixture
def server() -> Iterator[ChatServer]:
    with running_chat_server() as chat_server:
        yield chat_server


@dataclass
class Rig:
    store: Store
    server: ChatServer
    governor: Governor
    chat: ChatService
    calls: list[ModelCall]
    character_id: int

    async def new_chat(self) -> int:
        chat, _ = await self.chat.new_chat(self.character_id)
        assert chat.id is not None
        return chat.id

    def set_policy(self, **fields: Any) -> None:
        self.governor.set_policy(self.character_id, Policy(**fields))

    async def reservation(self) -> int:
        """What one "Hello" in a fresh chat reserves (prompt plus reply cap): the server holds
        the reply while the governor shows it.  The reply then runs and its usage settles."""
        chat_id = await self.new_chat()
        self.server.hold()
        reply = asyncio.create_task(collect(self.chat.send(chat_id, "Hello")))
        await until(lambda: self.server.waiting == 1, "the probe reply to reach the server")
        held = self.governor.held_tokens("Vega")
        self.server.release()
        assert any(isinstance(e, ReplySaved) for e in await reply)
        return held


@contextlib.asynccontextmanager
async def make_rig(
    store: Store,
    server: ChatServer,
    *,
    tools: ToolProvider | None = None,
    interceptors: Interceptors | None = None,
    clock: Callable[[], datetime] | None = None,
    **settings: Any,
) -> AsyncIterator[Rig]:
    card = CharacterCard(name="Vega", description="A starship pilot.", first_mes=GREETING)
    character = store.add_character("Vega", card.model_dump(mode="json"))
    assert character.id is not None
    source = OpenAICompatSource(server.base_url, MODEL, api_key=None, context_size=4096)
    options = Settings().model_copy(update={"max_tokens": 8, **settings})
    governor = Governor(store.engine, clock=clock) if clock else Governor(store.engine)
    calls: list[ModelCall] = []

    async def get_source(_character: str) -> OpenAICompatSource:
        return source

    db = AsyncStore(store)
    chat = ChatService(
        db,
        get_source,
        lambda: options,
        get_tools=(lambda: tools) if tools is not None else None,
        governor=governor,
        get_interceptors=(lambda: interceptors) if interceptors is not None else None,
        record_call=calls.append,
    )
    try:
        yield Rig(store, server, governor, chat, calls, character.id)
    finally:
        await chat.pipeline.wait_finished()
        await source.aclose()
        db.close()


async def collect(events: AsyncIterator[ChatEvent]) -> list[ChatEvent]:
    return [event async for event in events]


async def until(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def notices(events: list[ChatEvent]) -> list[tuple[str, str]]:
    return [(e.kind, e.text) for e in events if isinstance(e, GovernorNotice)]


def replies(events: list[ChatEvent]) -> list[str]:
    return [e.message.content for e in events if isinstance(e, ReplySaved)]


def usage(store: Store) -> tuple[int, int, int]:
    with Session(store.engine) as s:
        row = s.exec(select(BudgetUsage).where(BudgetUsage.character == "Vega")).first()
    return (row.tokens, row.tool_calls, row.replies) if row else (0, 0, 0)


def last_user_turn(request: dict[str, Any]) -> str:
    return str(next(m["content"] for m in reversed(request["messages"]) if m["role"] == "user"))


# Budgets ------------------------------------------------------------------------------------


def test_32_concurrent_replies_against_a_budget_for_10_run_exactly_10_and_none_overspends(
    store: Store, server: ChatServer
) -> None:
    async def scenario() -> tuple[int, list[list[ChatEvent]], int]:
        async with make_rig(store, server) as rig:
            rig.set_policy(daily_token_budget=10**6)
            reservation = await rig.reservation()
            budget = usage(store)[0] + 10 * reservation + reservation // 2  # room for 10, not 11
            rig.set_policy(daily_token_budget=budget)
            chats = [await rig.new_chat() for _ in range(32)]
            server.hold()  # no reply settles before every one of the 32 has asked for its tokens
            tasks = [asyncio.create_task(collect(rig.chat.send(chat, "Hello"))) for chat in chats]
            await until(lambda: sum(task.done() for task in tasks) == 22, "22 replies to be refused")
            await until(lambda: server.waiting == 10, "the other 10 to reach the model")
            held_at_server = sum(task.done() for task in tasks)
            server.release()
            return budget, list(await asyncio.gather(*tasks)), held_at_server

    budget, results, held_at_server = asyncio.run(scenario())
    ran = [events for events in results if replies(events)]
    refused = [events for events in results if not replies(events)]
    assert (len(ran), len(refused), held_at_server) == (10, 22, 22)
    assert all(
        notices(events) == [("budget_spent", "Vega's daily token budget is spent; it resets at midnight.")]
        for events in refused
    )
    assert len(server.chat_requests()) == 11  # the probe and the 10: no refused reply reached the model
    tokens, _, reply_count = usage(store)
    assert tokens <= budget and reply_count == 11
    # Every user message was kept, refused or not: the probe's and the 32.
    assert sum(m.role == "user" for chat in range(1, 34) for m in store.list_messages(chat)) == 33


def test_a_budget_reached_mid_reply_ends_it_cleanly_with_a_notice_and_keeps_the_partial_reply(
    store: Store, server: ChatServer
) -> None:
    async def scenario() -> tuple[int, list[ChatEvent], list[ChatEvent], int]:
        async with make_rig(store, server) as rig:
            rig.set_policy(daily_token_budget=10**6)
            prompt = await rig.reservation() - 8  # the reply cap is 8 tokens
            budget = usage(store)[0] + prompt + 3  # three reply tokens left
            rig.set_policy(daily_token_budget=budget)
            server.reply_words = 12
            chat_id = await rig.new_chat()
            cut = await collect(rig.chat.send(chat_id, "Hello"))
            before = len(server.chat_requests())
            spent = await collect(rig.chat.send(chat_id, "Go on."))
            assert len(server.chat_requests()) == before  # no model call once the budget is spent
            return budget, cut, spent, chat_id

    budget, cut, spent, chat_id = asyncio.run(scenario())
    assert [e.text for e in cut if isinstance(e, ReplyToken)] == ["one", " two", " three"]
    saved = next(e for e in cut if isinstance(e, ReplySaved))
    assert saved.message.content == "one two three" and saved.message.stats is not None
    assert saved.message.stats["budget_cut"] is True and saved.output.stats.finish_reason == "length"
    assert isinstance(cut[-1], GovernorNotice) and cut[-1].kind == "budget_reached"
    assert (
        cut[-1].text == "Vega's daily token budget is spent; the reply was cut short. It resets at midnight."
    )
    assert notices(spent) == [("budget_spent", "Vega's daily token budget is spent; it resets at midnight.")]
    assert usage(store)[0] <= budget
    assert [(m.role, m.content) for m in store.list_messages(chat_id)] == [
        ("assistant", GREETING),
        ("user", "Hello"),
        ("assistant", "one two three"),
        ("user", "Go on."),
    ]


def test_a_failed_model_call_leaves_usage_unchanged_and_the_retry_counts(
    store: Store, server: ChatServer
) -> None:
    async def scenario() -> tuple[tuple[int, int, int], int, list[ChatEvent]]:
        async with make_rig(store, server) as rig:
            rig.set_policy(daily_token_budget=10_000)
            chat_id = await rig.new_chat()
            server.fail_chat = True
            with pytest.raises(RemoteServerError):
                await collect(rig.chat.send(chat_id, "Hello"))
            after_failure = usage(store)
            held = rig.governor.held_tokens("Vega")
            server.fail_chat = False
            return after_failure, held, await collect(rig.chat.respond(chat_id))

    after_failure, held, retried = asyncio.run(scenario())
    assert after_failure == (0, 0, 0) and held == 0
    assert replies(retried) == ["one two three four five"]
    tokens, _, reply_count = usage(store)
    assert tokens > 5 and reply_count == 1


def test_every_model_call_of_a_reply_is_recorded_with_its_task_and_figures(
    store: Store, server: ChatServer, private_data_dir: Path
) -> None:
    tools = InProcessTools()
    tools.load_folder(bundled_modules_dir() / "dice")
    server.tool_choices, server.tool_arguments = ["dice.roll"], ['{"notation": "2d6"}']

    async def scenario() -> list[ModelCall]:
        async with make_rig(store, server, tools=tools, tools_by_model=True) as rig:
            chat_id = await rig.new_chat()
            await collect(rig.chat.send(chat_id, "Roll two dice for me."))
            server.fail_chat = True
            with pytest.raises(RemoteServerError):
                await collect(rig.chat.send(chat_id, "And again."))
            return rig.calls

    calls = asyncio.run(scenario())
    assert [(c.task_type, c.ok) for c in calls] == [
        ("tool_choice", True),
        ("tool_arguments", True),
        ("chat", True),
        ("tool_choice", True),  # the server picks "none" now
        ("chat", False),
    ]
    chat = calls[2]
    assert (chat.service, chat.source, chat.model, chat.character) == (
        "chat",
        "remote",
        "remote: scripted",
        "Vega",
    )
    assert chat.tokens_in > 0 and chat.tokens_out == 5 and chat.seconds > 0
    assert chat.first_token_seconds is not None and chat.first_token_seconds <= chat.seconds
    assert calls[-1].tokens_out == 0 and calls[-1].first_token_seconds is None
    assert usage(store)[0] == sum(c.tokens_in + c.tokens_out for c in calls if c.ok)


# Tools --------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now().astimezone()

    def __call__(self) -> datetime:
        return self.now


def offered(request: dict[str, Any]) -> set[str]:
    """The tool names a tool-choice request offered (its grammar's alternatives, less ``none``)."""
    return set(json.loads("[" + request["grammar"].removeprefix("root ::= ").replace(" | ", ",") + "]")) - {
        "none"
    }


@pytest.fixture
def dice(private_data_dir: Path) -> InProcessTools:
    tools = InProcessTools()
    tools.load_folder(bundled_modules_dir() / "dice")
    return tools


def test_a_tool_on_cooldown_is_not_offered_and_is_offered_again_once_it_ends(
    store: Store, server: ChatServer, dice: InProcessTools
) -> None:
    clock = Clock()

    async def scenario() -> tuple[list[ChatEvent], list[ChatEvent], set[str], set[str]]:
        async with make_rig(store, server, tools=dice, clock=clock, tools_by_model=True) as rig:
            rig.set_policy(tool_cooldowns={"dice.roll": 60})
            chat_id = await rig.new_chat()
            first = await collect(rig.chat.send(chat_id, "/roll 2d6"))
            clock.now += timedelta(seconds=30)
            await collect(rig.chat.send(chat_id, "Anything to roll?"))
            while_cooling = offered(server.requests[-2])
            refused = await collect(rig.chat.send(chat_id, "/roll 1d4"))
            clock.now += timedelta(seconds=31)
            await collect(rig.chat.send(chat_id, "Anything to roll now?"))
            return first, refused, while_cooling, offered(server.requests[-2])

    first, refused, while_cooling, after = asyncio.run(scenario())
    assert [e.name for e in first if isinstance(e, ToolCalled)] == ["dice.roll"]
    assert "dice.roll" not in while_cooling and "dice.coin" in while_cooling
    assert not any(isinstance(e, ToolCalled) for e in refused)
    assert notices(refused) == [
        ("tool_unavailable", "dice.roll is cooling down; Vega can use it again in 30 s.")
    ]
    assert replies(refused)  # the character still answers
    assert "dice.roll" in after


def test_a_tool_whose_prerequisite_was_not_used_in_the_chat_is_refused_with_the_reason_then_allowed(
    store: Store, server: ChatServer, dice: InProcessTools
) -> None:
    async def scenario() -> tuple[list[ChatEvent], list[ChatEvent]]:
        async with make_rig(store, server, tools=dice) as rig:
            rig.set_policy(tool_prerequisites={"dice.coin": ["dice.roll"]})
            chat_id = await rig.new_chat()
            refused = await collect(rig.chat.send(chat_id, "/coin"))
            await collect(rig.chat.send(chat_id, "/roll 2d6"))
            return refused, await collect(rig.chat.send(chat_id, "/coin"))

    refused, allowed = asyncio.run(scenario())
    reason = "dice.coin was not run: it needs dice.roll to be used earlier in this chat."
    assert notices(refused) == [("prerequisite", reason)]
    call = next(e for e in refused if isinstance(e, ToolCalled))
    assert not call.result.ok and call.result.error == reason
    assert call.message.content == f"dice.coin()\nFailed: {reason}"  # kept in the chat, for the model too
    assert replies(refused)
    call = next(e for e in allowed if isinstance(e, ToolCalled))
    assert call.result.ok and call.result.content in ("Heads", "Tails") and notices(allowed) == []


def test_a_reply_makes_as_many_tool_rounds_as_its_policy_allows(
    store: Store, server: ChatServer, dice: InProcessTools
) -> None:
    async def scenario() -> tuple[list[ChatEvent], list[ChatEvent]]:
        async with make_rig(store, server, tools=dice, tools_by_model=True) as rig:
            chat_id = await rig.new_chat()
            server.tool_choices = ["dice.roll", "dice.coin"]
            server.tool_arguments = ['{"notation": "2d6"}']
            default = await collect(rig.chat.send(chat_id, "Roll, then flip."))
            rig.set_policy(tool_rounds_per_reply=2)
            server.tool_choices = ["dice.roll", "dice.coin"]
            server.tool_arguments = ['{"notation": "2d6"}']
            return default, await collect(rig.chat.send(chat_id, "Roll, then flip."))

    default, two_rounds = asyncio.run(scenario())
    assert [e.name for e in default if isinstance(e, ToolCalled)] == ["dice.roll"]
    assert [e.name for e in two_rounds if isinstance(e, ToolCalled)] == ["dice.roll", "dice.coin"]
    assert replies(two_rounds)


# Module interceptors ------------------------------------------------------------------------

POLITE = """
import json, os
from nexus_desktop.modules.hookspecs import hookimpl

where = {}


class Plugin:
    @hookimpl
    def startup(self, app_info):
        where["dir"] = app_info["data_dir"]

    @hookimpl
    def message_will_send(self, message, context):
        return message + " [said politely]"

    @hookimpl
    def message_will_be_answered(self, message, context):
        return "Pong, from the polite module." if message.startswith("/ping") else None

    @hookimpl
    def reply_did_finish(self, reply, context):
        with open(os.path.join(where["dir"], "finished.jsonl"), "a") as out:
            out.write(json.dumps({"chat": context.chat_id, "reply": reply}) + "\\n")


plugin = Plugin()
"""


def hostile(body: str) -> str:
    return f"""
import time
from nexus_desktop.modules.hookspecs import hookimpl


class Plugin:
    @hookimpl
    def message_will_send(self, message, context):
        {body}

    @hookimpl
    def message_will_be_answered(self, message, context):
        {body}


plugin = Plugin()
"""


HOOKS = ["message_will_send", "message_will_be_answered"]
MODULES: dict[str, tuple[str, dict[str, Any]]] = {
    "polite": (POLITE, {"hooks": ["startup", *HOOKS, "reply_did_finish"]}),
    "hangs": (hostile("time.sleep(3600)"), {"hooks": HOOKS}),
    "raises": (hostile("raise RuntimeError('interceptor broke')"), {"hooks": HOOKS}),
    "gives-a-dict": (hostile("return {'text': 'not a string'}"), {"hooks": HOOKS}),
    "gives-10-mb": (hostile("return 'x' * 10_000_000"), {"hooks": HOOKS}),
}


def test_faulty_module_interceptors_are_skipped_and_counted_and_a_good_one_shapes_the_reply(
    store: Store, server: ChatServer, tmp_path: Path
) -> None:
    host = developer_host(store, tmp_path, MODULES)
    approve_all(host)

    async def scenario() -> tuple[list[ChatEvent], list[ChatEvent], int, dict[str, int], list[Any]]:
        supervisor: ModuleSupervisor = make_supervisor(host, SecretStore("nexus-test-pipeline"))
        supervisor.interceptor_timeout = 1.0
        await supervisor.start()
        try:
            async with make_rig(store, server, interceptors=supervisor) as rig:
                chat_id = await rig.new_chat()
                filtered = await collect(rig.chat.send(chat_id, "Hello there"))
                before = len(server.chat_requests())
                answered = await collect(rig.chat.send(chat_id, "/ping"))
                asked_model = len(server.chat_requests()) - before
                await collect(rig.chat.regenerate(chat_id))  # the model, reading the kept filtered text
                await rig.chat.pipeline.wait_finished()
            faults = {name: status.interceptor_faults for name, status in supervisor.status().items()}
        finally:
            await supervisor.aclose()
        finished = (module_data_dir("polite") / "finished.jsonl").read_text().splitlines()
        return filtered, answered, asked_model, faults, [json.loads(line) for line in finished]

    filtered, answered, asked_model, faults, finished = asyncio.run(scenario())
    assert replies(filtered) == ["one two three four five"]  # the reply came despite four bad modules
    assert last_user_turn(server.chat_requests()[0]) == "Hello there [said politely]"
    user = store.list_messages(1)[1]
    assert user.content == "Hello there"  # what the user typed is what is stored
    assert user.stats == {"sent_as": "Hello there [said politely]"}
    assert asked_model == 0 and replies(answered) == ["Pong, from the polite module."]
    assert last_user_turn(server.chat_requests()[-1]) == "/ping [said politely]"
    assert [e.text for e in answered if isinstance(e, ReplyToken)] == ["Pong, from the polite module."]
    assert faults["polite"] == 0
    assert all(faults[name] >= 1 for name in ("hangs", "raises", "gives-a-dict", "gives-10-mb")), faults
    assert finished == [
        {"chat": 1, "reply": "one two three four five"},
        {"chat": 1, "reply": "Pong, from the polite module."},
        {"chat": 1, "reply": "one two three four five"},
    ]


# The running app ----------------------------------------------------------------------------


def test_the_app_runs_replies_under_its_governor_its_modules_interceptors_and_its_metrics(
    server: ChatServer, tmp_path: Path
) -> None:
    from nexus_desktop import paths
    from nexus_desktop.core import AppCore

    install_modules(tmp_path / "dev", {"polite": MODULES["polite"]})
    seed = Store(paths.database_path())
    remote = {"source": "remote", "remote_base_url": server.base_url, "remote_model": MODEL, "max_tokens": 8}
    developer = {"modules_developer_dir": str(tmp_path / "dev"), "modules_developer_mode": True}
    seed.save_settings(Settings().model_copy(update={**remote, **developer}))
    seed.close()

    async def scenario() -> tuple[str, list[ChatEvent], list[ChatEvent], list[ChatEvent]]:
        core = AppCore()
        try:
            character = core.store.list_characters()[0]
            assert character.id is not None
            chat, _ = await core.chat.new_chat(character.id)
            assert chat.id is not None
            core.governor.set_policy(character.id, Policy(daily_token_budget=1))
            refused = await collect(core.chat.send(chat.id, "Hello"))
            core.governor.set_policy(character.id, None)
            before_modules = await collect(core.chat.send(chat.id, "/ping"))
            await core.modules.refresh()
            await core.modules.approve(await core.modules.review("polite"))
            await core.start_modules(watch=False)
            answered = await collect(core.chat.send(chat.id, "/ping"))
            return character.name, refused, before_modules, answered
        finally:
            await core.aclose()

    name, refused, before_modules, answered = asyncio.run(scenario())
    assert [kind for kind, _ in notices(refused)] == ["budget_spent"]
    assert replies(before_modules) == ["one two three four five"]  # no modules yet: the model answers
    assert replies(answered) == ["Pong, from the polite module."]
    assert last_user_turn(server.chat_requests()[-1]) == "/ping"
    finished = (module_data_dir("polite") / "finished.jsonl").read_text().splitlines()
    assert [json.loads(line)["reply"] for line in finished] == ["Pong, from the polite module."]
    store = Store(paths.database_path())
    try:
        with Session(store.engine) as s:
            calls = list(s.exec(select(ModelCall).where(ModelCall.character == name)))
    finally:
        store.close()
    assert [(c.task_type, c.source, c.ok) for c in calls] == [("chat", "remote", True)]
