"""The chat service: send, stop, regenerate, edit and delete, with everything persisted.

Qt-free and asyncio-only, so the window, the CLI and the tests drive the same code.  A user
message is saved before generation starts and a reply is saved once it is complete (or stopped),
so a crash or SIGKILL mid-reply loses at most the reply in flight.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from nexus_desktop.cards.model import CharacterCard
from nexus_desktop.chat.events import (
    ChatEvent,
    GovernorNotice,
    HistoryTrimmed,
    ReplySaved,
    ReplyToken,
    ToolCalled,
    UserMessageSaved,
)
from nexus_desktop.chat.metering import RecordCall
from nexus_desktop.chat.pipeline import (
    InterceptorsGetter,
    ReplyPipeline,
    SettingsGetter,
    SourceGetter,
    stats_record,
    strip_speaker,
)
from nexus_desktop.chat.routing import ROUTE_CHOICES
from nexus_desktop.chat.tool_rounds import Collect, Route, ToolsGetter
from nexus_desktop.control.governor import Governor
from nexus_desktop.db.store import AsyncStore
from nexus_desktop.db.tables import Chat, Message
from nexus_desktop.llm.contract import ModelError, RunContext
from nexus_desktop.training import examples as signals

log = logging.getLogger(__name__)

__all__ = [
    "ChatEvent",
    "ChatService",
    "EmptyMessageError",
    "GovernorNotice",
    "HistoryTrimmed",
    "NothingToRegenerateError",
    "ReplySaved",
    "ReplyToken",
    "ToolCalled",
    "UserMessageSaved",
    "stats_record",
    "strip_speaker",
]


class EmptyMessageError(ValueError):
    def __init__(self) -> None:
        super().__init__("Type a message before sending.")


class NothingToRegenerateError(ValueError):
    def __init__(self) -> None:
        super().__init__("There is no reply to regenerate yet; send a message first.")


class ChatService:
    def __init__(
        self,
        db: AsyncStore,
        get_source: SourceGetter,
        get_settings: SettingsGetter,
        get_tools: ToolsGetter | None = None,
        collect: Collect | None = None,
        route: Route | None = None,
        *,
        governor: Governor | None = None,
        get_interceptors: InterceptorsGetter | None = None,
        record_call: RecordCall | None = None,
    ) -> None:
        """``governor``: the character policies to enforce (one on this database when None);
        ``get_interceptors``: the modules' chat hooks once modules run; ``record_call``: takes a
        ``ModelCall`` for every model call a reply makes (``MetricsRecorder.record``)."""
        self.db = db
        self._collect: Collect = collect or (lambda _signal: None)
        self.governor = governor or Governor(db.store.engine)
        self.pipeline = ReplyPipeline(
            db,
            get_source,
            get_settings,
            self.governor,
            get_tools=get_tools,
            get_interceptors=get_interceptors,
            collect=self._collect,
            route=route,
            record_call=record_call,
        )
        self._runs: dict[int, RunContext] = {}
        """The reply being written in each chat: one at a time per chat, chats in parallel."""

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
        return bool(self._runs)

    def generating_in(self, chat_id: int) -> bool:
        return chat_id in self._runs

    def stop(self, chat_id: int | None = None) -> None:
        """Stop the reply being written in ``chat_id``, or every reply when None."""
        for chat, run in list(self._runs.items()):
            if chat_id is None or chat == chat_id:
                run.cancel.cancel()

    async def send(self, chat_id: int, text: str) -> AsyncIterator[ChatEvent]:
        if not text.strip():
            raise EmptyMessageError()
        last, user_message = await self.db.call(self._save_user_message, chat_id, text)
        await self._collect_swipe_choice(last)
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
        if chat_id in self._runs:
            raise ModelError("A reply is already being written in this chat; wait for it or press Stop.")
        run = self._runs[chat_id] = RunContext()
        try:
            async for event in self.pipeline.run(chat_id, regenerate_id, new_text, run):
                yield event
        finally:
            del self._runs[chat_id]

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

    def _save_user_message(self, chat_id: int, text: str) -> tuple[Message | None, Message]:
        """The chat's last message so far (for the swipe choice) and the saved new one, in one trip
        to the database thread."""
        messages = self.db.store.list_messages(chat_id)
        return (messages[-1] if messages else None), self.db.store.add_message(chat_id, "user", text)

    async def _collect_swipe_choice(self, last: Message | None) -> None:
        """Moving on after regenerating means the shown alternative beat the others."""
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
