"""The chat service: send, stop, regenerate, edit and delete, with everything persisted.

Qt-free and asyncio-only, so the window, the CLI and the tests drive the same code.  A user
message is saved before generation starts and a reply is saved once it is complete (or stopped),
so a crash or SIGKILL mid-reply loses at most the reply in flight.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from nexus_desktop.cards.model import CharacterCard
from nexus_desktop.chat.commands import parse_command
from nexus_desktop.chat.prompt import PromptPlan, Turn, build_prompt
from nexus_desktop.chat.routing import LABEL_TOOLS, ROUTE_CHOICES, label_for_tool
from nexus_desktop.chat.tools import (
    ToolCall,
    ToolInfo,
    ToolOutcome,
    ToolProvider,
    ToolRecord,
    ToolResult,
    decide_tool_call,
    fill_arguments,
    tool_turn_text,
    tools_for_card,
)
from nexus_desktop.db.store import AsyncStore
from nexus_desktop.db.tables import Chat, Message
from nexus_desktop.llm.contract import (
    ChatInput,
    ChatMessage,
    ChatOutput,
    ModelCrashedError,
    ModelError,
    ModelSource,
    RunContext,
    TokenEvent,
)
from nexus_desktop.settings import Settings
from nexus_desktop.training import examples as signals

log = logging.getLogger(__name__)


class EmptyMessageError(ValueError):
    def __init__(self) -> None:
        super().__init__("Type a message before sending.")


class NothingToRegenerateError(ValueError):
    def __init__(self) -> None:
        super().__init__("There is no reply to regenerate yet; send a message first.")


@dataclass(frozen=True)
class UserMessageSaved:
    message: Message


@dataclass(frozen=True)
class HistoryTrimmed:
    dropped: int

    @property
    def notice(self) -> str:
        noun = "message" if self.dropped == 1 else "messages"
        return (
            f"The {self.dropped} oldest {noun} no longer fit the model's context and were left out "
            "of this reply. They are still saved here."
        )


@dataclass(frozen=True)
class ReplyToken:
    text: str


@dataclass(frozen=True)
class ReplySaved:
    message: Message
    output: ChatOutput


@dataclass(frozen=True)
class ToolCalled:
    """A tool ran before the reply; ``message`` is the saved ``tool`` message (its ``stats`` hold
    the ``ToolRecord`` as a dict: tool, arguments, via, ok, result, error, seconds)."""

    name: str
    arguments: dict[str, Any]
    result: ToolOutcome
    message: Message


ChatEvent = UserMessageSaved | HistoryTrimmed | ToolCalled | ReplyToken | ReplySaved
SourceGetter = Callable[[str], Awaitable[ModelSource]]
"""The model source for a reply of the named character (its persona adapter may apply)."""
SettingsGetter = Callable[[], Settings]
Route = Callable[[str], Awaitable[str | None]]
"""The intent router: a label for the user's message, or None when no router is promoted."""
Collect = Callable[[signals.Signal], None]
"""Hands a learning signal to the collector; never raises, never blocks (see training.collector)."""
ToolsGetter = Callable[[], ToolProvider | None]


def strip_speaker(text: str, name: str) -> str:
    """Small models often open with "Vega:"; the bubble already says who speaks."""
    text = text.strip()
    prefix = f"{name}:"
    return text[len(prefix) :].lstrip() if text.startswith(prefix) else text


def _turns(messages: tuple[ChatMessage, ...]) -> tuple[signals.Turn, ...]:
    return tuple((m.role, m.content) for m in messages)


def stats_record(output: ChatOutput, model: str) -> dict[str, Any]:
    s = output.stats
    return {
        "model": model,
        "tokens_per_second": round(s.tokens_per_second, 2),
        "prompt_tokens": s.prompt_tokens,
        "completion_tokens": s.completion_tokens,
        "context_used": s.context_used,
        "context_size": s.context_size,
        "seconds": round(s.seconds, 3),
        "first_token_seconds": round(s.first_token_seconds, 3),
        "finish_reason": s.finish_reason,
    }


class ChatService:
    def __init__(
        self,
        db: AsyncStore,
        get_source: SourceGetter,
        get_settings: SettingsGetter,
        get_tools: ToolsGetter | None = None,
        collect: Collect | None = None,
        route: Route | None = None,
    ) -> None:
        self.db = db
        self._collect: Collect = collect or (lambda _signal: None)
        self._route = route
        self._get_source = get_source
        self._get_settings = get_settings
        self._get_tools = get_tools
        self._run: RunContext | None = None
        self._token_cache: OrderedDict[tuple[str, str], int] = OrderedDict()

    # Chats --------------------------------------------------------------------------------

    async def open_chat(self, character_id: int) -> tuple[Chat, list[Message]]:
        """The character's most recent chat, or a new one opened by its greeting."""
        chat = await self.db.call(self.db.store.latest_chat, character_id)
        if chat is None:
            return await self.new_chat(character_id)
        assert chat.id is not None
        return chat, await self.db.call(self.db.store.list_messages, chat.id)

    async def new_chat(self, character_id: int) -> tuple[Chat, list[Message]]:
        card = await self._card(character_id)
        greetings = [g for g in [card.first_mes, *card.alternate_greetings] if g.strip()]
        chat = await self.db.call(self.db.store.create_chat, character_id, greetings)
        assert chat.id is not None
        return chat, await self.db.call(self.db.store.list_messages, chat.id)

    # Generation ---------------------------------------------------------------------------

    @property
    def generating(self) -> bool:
        return self._run is not None

    def stop(self) -> None:
        if self._run is not None:
            self._run.cancel.cancel()

    async def send(self, chat_id: int, text: str) -> AsyncIterator[ChatEvent]:
        if not text.strip():
            raise EmptyMessageError()
        await self._collect_swipe_choice(chat_id)
        user_message = await self.db.call(self.db.store.add_message, chat_id, "user", text)
        yield UserMessageSaved(user_message)
        async for event in self._reply(chat_id, regenerate_id=None, new_text=text):
            yield event

    async def regenerate(self, chat_id: int) -> AsyncIterator[ChatEvent]:
        """Generate another alternative ("swipe") for the last reply and show it."""
        messages = await self.db.call(self.db.store.list_messages, chat_id)
        if not messages or messages[-1].role != "assistant" or len(messages) < 2:
            raise NothingToRegenerateError()
        async for event in self._reply(chat_id, regenerate_id=messages[-1].id):
            yield event

    async def respond(self, chat_id: int) -> AsyncIterator[ChatEvent]:
        """Reply to the last message when it is the user's (its reply failed or was empty), or a
        tool's result whose reply failed."""
        messages = await self.db.call(self.db.store.list_messages, chat_id)
        if not messages or messages[-1].role not in ("user", "tool"):
            raise NothingToRegenerateError()
        new_text = messages[-1].content if messages[-1].role == "user" else None
        async for event in self._reply(chat_id, regenerate_id=None, new_text=new_text):
            yield event

    async def _reply(
        self, chat_id: int, regenerate_id: int | None, new_text: str | None = None
    ) -> AsyncIterator[ChatEvent]:
        if self._run is not None:
            raise ModelError("A reply is already being written; wait for it or press Stop.")
        self._run = RunContext()
        try:
            chat = await self.db.call(self.db.store.get_chat, chat_id)
            card = await self._card(chat.character_id)
            history = await self.db.call(self.db.store.list_messages, chat_id)
            if regenerate_id is not None:
                history = [m for m in history if m.id != regenerate_id]
            settings = self._get_settings()
            source = await self._get_source(card.name)
            if new_text is not None:
                called = await self._call_tool(chat_id, card, history, source, new_text)
                if called is not None:
                    history.append(called.message)
                    yield called
            plan = await self._plan(card, history, settings, source)
            if plan.dropped:
                yield HistoryTrimmed(plan.dropped)

            output: ChatOutput | None = None
            # Like SillyTavern's stopping strings: the model must not write the user's next line.
            sampling = replace(settings.sampling(), stop=(f"\n{settings.user_name}:",))
            request = ChatInput(messages=plan.messages, sampling=sampling)
            async for event in source.stream(request, self._run):
                if isinstance(event, TokenEvent):
                    yield ReplyToken(event.text)
                else:
                    output = event
            if output is None:
                raise ModelError("The model stopped without finishing its reply. Try again.")
            text = strip_speaker(output.text, card.name)
            if not text:
                return
            stats = stats_record(output, source.name)
            if regenerate_id is not None:
                saved = await self.db.call(self.db.store.add_swipe, regenerate_id, text, stats)
            else:
                saved = await self.db.call(self.db.store.add_message, chat_id, "assistant", text, stats)
            if output.stats.finish_reason != "cancelled":
                self._collect(signals.ReplySaved(card.name, _turns(plan.messages), text))
            yield ReplySaved(saved, output)
        finally:
            self._run = None

    async def _call_tool(
        self, chat_id: int, card: CharacterCard, history: list[Message], source: ModelSource, text: str
    ) -> ToolCalled | None:
        """Run the tool the user's command names or the model picks, and save its result."""
        provider = self._get_tools() if self._get_tools is not None else None
        if provider is None:
            return None
        tools = tools_for_card(card.extensions, provider.tools())
        if not tools:
            return None
        call: ToolCall | None = parse_command(text, tools)
        if call is None and self._route is not None:
            call = await self._routed_call(text, tools, source)
        if call is None and self._get_settings().tools_by_model:
            recent = [ChatMessage("user" if m.role == "user" else "assistant", m.content) for m in history]
            assert self._run is not None
            try:
                call = await decide_tool_call(source, recent, tools, context=self._run)
            except ModelCrashedError as error:
                # A grammar llama.cpp cannot parse kills its process; the reply goes on without a tool.
                log.warning("Choosing a tool crashed the model process: %s", error)
                call = None
        if call is None:
            return None
        try:
            outcome: ToolOutcome = await provider.call_tool(call.name, call.arguments)
        except Exception as error:  # a provider fault must not lose the user's reply
            outcome = ToolResult(False, "", f"The tool {call.name} could not be run ({error}); try again.")
        self._collect(signals.ToolCalled(text, call.name, dict(call.arguments), outcome.ok))
        record = ToolRecord.of(call, outcome)
        stats = record.as_dict()
        label = label_for_tool(call.name) if call.via == "router" else None
        if label is not None:
            # Kept so the user can say whether the router was right (judge_route): training data.
            stats["route"] = {"text": text, "label": label}
        saved = await self.db.call(self.db.store.add_message, chat_id, "tool", record.message_text(), stats)
        return ToolCalled(call.name, call.arguments, outcome, saved)

    async def _routed_call(self, text: str, tools: list[ToolInfo], source: ModelSource) -> ToolCall | None:
        """The promoted intent router picks the tool; the chat model fills in its arguments."""
        assert self._route is not None and self._run is not None
        label = await self._route(text)
        tool = next((t for t in tools if t.name == LABEL_TOOLS.get(label or "")), None)
        if tool is None:
            return None  # "chat", "build_module", or a tool this character may not use
        arguments = await fill_arguments(source, tool, text, context=self._run)
        return ToolCall(tool.name, arguments, "router") if arguments is not None else None

    async def _plan(
        self, card: CharacterCard, history: list[Message], settings: Settings, source: ModelSource
    ) -> PromptPlan:
        turns: list[Turn] = []
        for m in history:
            if m.role != "tool":
                turns.append(Turn("user" if m.role == "user" else "assistant", m.content))
            elif turns and turns[-1].role == "user":
                # Folded into the user's turn: chat templates that insist on user/assistant
                # alternation (Mistral, Gemma) reject a separate tool or system message here.
                turns[-1] = Turn("user", f"{turns[-1].content}\n\n{tool_turn_text(m.content)}")
            else:
                turns.append(Turn("user", tool_turn_text(m.content)))

        async def count(texts: list[str]) -> list[int]:
            return await self._count_cached(source, texts)

        return await build_prompt(
            card,
            turns,
            user_name=settings.user_name,
            count_tokens=count,
            context_size=source.context_size,
            reply_tokens=settings.max_tokens,
        )

    async def _count_cached(self, source: ModelSource, texts: list[str]) -> list[int]:
        # Re-tokenizing the whole history on every send is wasted work: counts are per model.
        keys = [(source.name, text) for text in texts]
        missing = list(dict.fromkeys(k for k in keys if k not in self._token_cache))
        if missing:
            counts = await source.count_tokens([text for _, text in missing])
            for key, n in zip(missing, counts, strict=True):
                self._token_cache[key] = n
        result = [self._token_cache[k] for k in keys]
        while len(self._token_cache) > 4096:
            self._token_cache.popitem(last=False)
        return result

    # Editing ------------------------------------------------------------------------------

    async def edit_message(self, message_id: int, text: str) -> Message:
        if not text.strip():
            raise EmptyMessageError()
        before = await self.db.call(self.db.store.get_message, message_id)
        edited = await self.db.call(self.db.store.edit_message, message_id, text)
        if before.role == "assistant" and before.content != text:
            name, context = await self._learning_context(before)
            self._collect(signals.ReplyEdited(name, context, before.content, text))
        return edited

    async def judge_route(self, message_id: int, right: bool, corrected_label: str | None = None) -> Message:
        """The user says whether the router picked the right thing for a tool call, or what was.

        Either way it becomes a router training example (``route_confirmed``/``route_corrected``);
        the verdict is kept with the call, so the chat shows it and asks only once.
        """
        message = await self.db.call(self.db.store.get_message, message_id)
        route = (message.stats or {}).get("route")
        if message.role != "tool" or not isinstance(route, dict):
            raise ValueError("This tool call was not picked by the router; there is nothing to judge.")
        if not right and corrected_label not in ROUTE_CHOICES:
            choices = ", ".join(ROUTE_CHOICES)
            raise ValueError(f"Say which it should have been: one of {choices}.")
        label = str(route.get("label"))
        right = right or corrected_label == label  # "wrong, it should be what it was" is a yes
        corrected = None if right else corrected_label
        self._collect(signals.RouteDecided(str(route.get("text")), label, right, corrected))
        verdict = {**route, "verdict": "right" if right else "wrong", "corrected_label": corrected}
        return await self.db.call(self.db.store.update_stats, message_id, route=verdict)

    async def rate_message(self, message_id: int, thumbs_up: bool, corrected: str | None = None) -> Message:
        """Thumbs up or down on the shown reply; a corrected reply becomes a new swipe and is shown."""
        message = await self.db.call(self.db.store.get_message, message_id)
        if message.role != "assistant":
            raise ValueError("Only the character's replies can be rated.")
        name, context = await self._learning_context(message)
        self._collect(signals.ReplyRated(name, context, message.content, thumbs_up, corrected or None))
        rated = await self.db.call(self.db.store.set_rating, message_id, 1 if thumbs_up else -1)
        if corrected and corrected.strip() and corrected != message.content:
            rated = await self.db.call(self.db.store.add_swipe, message_id, corrected, {"corrected": True})
        return rated

    async def _collect_swipe_choice(self, chat_id: int) -> None:
        """Moving on after regenerating means the shown alternative beat the others."""
        messages = await self.db.call(self.db.store.list_messages, chat_id)
        last = messages[-1] if messages else None
        if last is None or last.role != "assistant" or len(last.swipes) < 2 or last.position == 0:
            return
        rejected = [text for i, text in enumerate(last.swipes) if i != last.swipe_index]
        name, context = await self._learning_context(last)
        self._collect(signals.SwipeChosen(name, context, last.content, rejected))

    async def _learning_context(self, message: Message) -> tuple[str, tuple[signals.Turn, ...]]:
        """The character's name and the chat turns before ``message``, as the collector wants them."""
        chat = await self.db.call(self.db.store.get_chat, message.chat_id)
        card = await self._card(chat.character_id)
        history = await self.db.call(self.db.store.list_messages, message.chat_id)
        before = [m for m in history if m.position < message.position]
        return card.name, tuple((m.role, m.content) for m in before)

    async def delete_message(self, message_id: int) -> None:
        await self.db.call(self.db.store.delete_message, message_id)

    async def show_swipe(self, message_id: int, index: int) -> Message:
        return await self.db.call(self.db.store.set_swipe_index, message_id, index)

    async def _card(self, character_id: int) -> CharacterCard:
        character = await self.db.call(self.db.store.get_character, character_id)
        return CharacterCard.model_validate(character.card)
