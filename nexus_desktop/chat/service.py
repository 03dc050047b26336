"""The chat service: send, stop, regenerate, continue, impersonate, edit, hide and delete, with
everything persisted (the writing tools are ``chat/writing.py``).

Qt-free and asyncio-only, so the window, the CLI and the tests drive the same code.  A user
message is saved once its send is accepted (before generation starts) and a reply once it is
complete (or stopped), so a crash or SIGKILL mid-reply loses at most the reply in flight, and a
refused send leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING

from nexus_desktop.cards.model import CharacterCard
from nexus_desktop.changes import Change, Changes
from nexus_desktop.chat import writing
from nexus_desktop.chat.events import (
    BuildStarted,
    ChatEvent,
    GovernorNotice,
    HistoryTrimmed,
    Impersonated,
    ReplySaved,
    ReplyToken,
    ToolCalled,
    UserMessageSaved,
)
from nexus_desktop.chat.group_prompt import GroupReplies
from nexus_desktop.chat.groups import Group, GroupError, group_of_chat
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
from nexus_desktop.chat.tool_rounds import ChatMemory, Collect, Route, ToolsGetter
from nexus_desktop.chat.writing import NothingToContinueError, reply_to_continue
from nexus_desktop.control.governor import Governor
from nexus_desktop.db.store import AsyncStore
from nexus_desktop.db.tables import Chat, Message
from nexus_desktop.llm.contract import ModelCrashedError, RunContext
from nexus_desktop.training import examples as signals

if TYPE_CHECKING:
    from nexus_desktop.providers import TaskRouter

log = logging.getLogger(__name__)

__all__ = [
    "BuildStarted",
    "ChatEvent",
    "ChatService",
    "EmptyMessageError",
    "GovernorNotice",
    "HistoryTrimmed",
    "Impersonated",
    "NothingToContinueError",
    "NothingToRegenerateError",
    "ReplyRunningError",
    "ReplySaved",
    "ReplyToken",
    "ToolCalled",
    "UserMessageSaved",
    "stats_record",
    "strip_speaker",
]


StartBuild = Callable[[str, int], Awaitable[int]]
"""Hands a module request to the builder: (the request, the chat it came from) -> the build id
(``BuildService.start``; the build runs in the background)."""
BUILD_COMMAND = "/build"
"""Typed before a description, it asks for a module build whatever the router says."""
BUILD_LABEL = "build_module"


def build_request(text: str) -> str | None:
    """The description after ``/build``, or None when ``text`` is not that command."""
    word, _, rest = text.strip().partition(" ")
    return (rest.strip() or None) if word.lower() == BUILD_COMMAND else None


class EmptyMessageError(ValueError):
    def __init__(self) -> None:
        super().__init__("Type a message before sending.")


class NothingToRegenerateError(ValueError):
    def __init__(self) -> None:
        super().__init__("There is no reply to regenerate yet; send a message first.")


class ReplyRunningError(ValueError):
    def __init__(self) -> None:
        super().__init__("A reply is already being written in this chat; wait for it or press Stop.")


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
        on_model_crash: Callable[[ModelCrashedError], object] | None = None,
        changes: Changes | None = None,
        start_build: StartBuild | None = None,
        task_router: TaskRouter | None = None,
        memory: ChatMemory | None = None,
    ) -> None:
        """``task_router``: picks the source that chooses tools when the model picks them
        (``providers``; the chat's own model without it); ``governor``: the character policies
        to enforce (one on this database when None);
        ``get_interceptors``: the modules' chat hooks once modules run; ``record_call``: takes a
        ``ModelCall`` for every model call a reply makes (``MetricsRecorder.record``);
        ``on_model_crash``: told when a reply saw the model process die
        (``SourceManager.report_crash``); ``changes``: where its writes are announced;
        ``start_build``: where a message the router labels ``build_module`` (or ``/build …``) goes
        instead of the model (``BuildService.start``); ``memory``: Engram, for the memories in
        each prompt and the notes tools (``engram.chat_memory``)."""
        self.db = db
        self._route = route
        self._start_build = start_build
        self._last_route: tuple[str, str | None] | None = None
        self.changes = changes or Changes()
        self._on_model_crash = on_model_crash or (lambda _error: None)
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
            route=self._route_once if route is not None else None,
            record_call=record_call,
            task_router=task_router,
            memory=memory,
        )
        self._runs: dict[int, RunContext] = {}
        """The reply being written in each chat: one at a time per chat, chats in parallel."""
        self.groups = GroupReplies(db, self.pipeline, self._claim, self._messages_changed)
        """A group chat's replies: who answers, each with its own card (``group_prompt.py``)."""

    # Chats --------------------------------------------------------------------------------

    async def open_chat(self, character_id: int, newest: int | None = None) -> tuple[Chat, list[Message]]:
        """The character's most recent chat (only its ``newest`` messages when given: a long
        chat opens fast), or a new one opened by its greeting."""
        chat = await self.db.call(self.db.store.latest_chat, character_id)
        if chat is None:
            return await self.new_chat(character_id)
        assert chat.id is not None
        return chat, await self.db.call(self.db.store.list_messages, chat.id, newest=newest)

    async def new_chat(self, character_id: int) -> tuple[Chat, list[Message]]:
        card = await self._card(character_id)
        greetings = [g for g in [card.first_mes, *card.alternate_greetings] if g.strip()]
        chat = await self.db.call(self.db.store.create_chat, character_id, greetings)
        assert chat.id is not None
        self.changes.emit(Change("chats", chat_id=chat.id, character_id=character_id))
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
        """Save the user's message and stream the reply to it.

        The message is saved only once the send is accepted: no reply is running in this chat,
        the model source can be had and the message fits the context.  A refused send raises
        with the real cause and leaves the chat as it was."""
        if not text.strip():
            raise EmptyMessageError()
        request = await self._module_request(text)
        if request is not None:
            async for event in self._hand_to_builder(chat_id, text, request):
                yield event
            return
        group = await self._group(chat_id)
        if group is not None:
            async for event in self.groups.send(group, chat_id, text):
                yield event
            return
        with self._claim(chat_id) as run:
            scope, notice = await self.pipeline.prepare(chat_id, None, run, pending=text)
            if run.cancel.cancelled:
                return  # stopped while the model loaded: nothing was sent, so nothing is saved
            user_message = await self.db.call(self.db.store.add_message, chat_id, "user", text)
            try:
                last = scope.history[-1] if scope.history else None
                scope.history.append(user_message)
                await self._collect_swipe_choice(last)
                yield UserMessageSaved(user_message)
                async for event in self.pipeline.run(scope, notice, None, text):
                    yield event
            finally:
                self._messages_changed(chat_id)

    async def _route_once(self, text: str) -> str | None:
        """The router's label for ``text``; the send that just routed it does not route it again."""
        assert self._route is not None
        if self._last_route is not None and self._last_route[0] == text:
            return self._last_route[1]
        label = await self._route(text)
        self._last_route = (text, label)
        return label

    async def _module_request(self, text: str) -> str | None:
        """What to build when ``text`` asks for a module (``/build …`` or the router's
        ``build_module``), else None; always None without a builder."""
        if self._start_build is None:
            return None
        typed = build_request(text)
        if typed is not None:
            return typed
        if self._route is not None and await self._route_once(text) == BUILD_LABEL:
            return text
        return None

    async def _hand_to_builder(self, chat_id: int, text: str, request: str) -> AsyncIterator[ChatEvent]:
        """Start the build first (a refused start saves nothing), then keep the user's message and
        a ``tool`` message naming the build, which the chat shows as its build card."""
        assert self._start_build is not None
        with self._claim(chat_id):
            build_id = await self._start_build(request, chat_id)
            user_message = await self.db.call(self.db.store.add_message, chat_id, "user", text)
            try:
                yield UserMessageSaved(user_message)
                build = {"build_id": build_id, "request": request}
                stats = {"tool": "module builder", "ok": True, "build": build}
                content = f"module builder\nstarted building a module for: {request}"
                card = await self.db.call(self.db.store.add_message, chat_id, "tool", content, stats)
                yield BuildStarted(build_id, card)
            finally:
                self._messages_changed(chat_id)

    async def regenerate(self, chat_id: int) -> AsyncIterator[ChatEvent]:
        """Generate another alternative ("swipe") for the last reply and show it."""
        messages = await self.db.call(self.db.store.list_messages, chat_id)
        if not messages or messages[-1].role != "assistant" or messages[-1].is_greeting:
            raise NothingToRegenerateError()
        group = await self._group(chat_id)
        replies = self.groups.regenerate(group, chat_id, messages[-1]) if group else None
        async for event in replies or self._reply(chat_id, regenerate_id=messages[-1].id):
            yield event

    async def respond(self, chat_id: int) -> AsyncIterator[ChatEvent]:
        """Reply to the last message when it is the user's (its reply failed or was empty), or a
        tool's result whose reply failed."""
        messages = await self.db.call(self.db.store.list_messages, chat_id)
        if not messages or messages[-1].role not in ("user", "tool"):
            raise NothingToRegenerateError()
        new_text = messages[-1].content if messages[-1].role == "user" else None
        group = await self._group(chat_id)
        replies = self.groups.respond(group, chat_id, messages[-1]) if group else None
        async for event in replies or self._reply(chat_id, regenerate_id=None, new_text=new_text):
            yield event

    async def speak(self, chat_id: int, character_id: int) -> AsyncIterator[ChatEvent]:
        """In a group chat: this member writes a reply now, whatever the turn order or its mute."""
        group = await self._group(chat_id)
        if group is None:
            raise GroupError("Only a group chat has members to ask; this chat is with one character.")
        async for event in self.groups.speak(group, chat_id, character_id):
            yield event

    async def _group(self, chat_id: int) -> Group | None:
        return await self.db.call(group_of_chat, self.db.store.engine, chat_id)

    async def continue_reply(self, chat_id: int) -> AsyncIterator[ChatEvent]:
        """Write more of the character's last reply, in the alternative shown: ``ReplyToken``s of
        the new text, then ``ReplySaved`` with the whole reply, its old text unchanged at its start.
        Refused, saying what to do instead, when the last message is not a reply the model sees."""
        reply = reply_to_continue(await self.db.call(self.db.store.list_messages, chat_id, newest=1))
        with self._claim(chat_id) as run:
            scope, notice = await self.pipeline.prepare(chat_id, None, run)
            if run.cancel.cancelled:
                return
            if not scope.history or scope.history[-1].id != reply.id:
                raise NothingToContinueError("The chat changed while Continue started; press it again.")
            try:
                if notice is not None:
                    yield notice
                async for event in self.pipeline.continue_reply(scope):
                    yield event
            finally:
                self._messages_changed(chat_id)

    async def impersonate(self, chat_id: int) -> AsyncIterator[ChatEvent]:
        """Write the user's next message in their persona's voice: ``ReplyToken``s, then
        ``Impersonated`` with the text for the message box.  Nothing is saved; ``stop`` stops it."""
        with self._claim(chat_id) as run:
            scope, notice = await self.pipeline.prepare(chat_id, None, run)
            if run.cancel.cancelled:
                return
            if notice is not None:
                yield notice
            async for event in self.pipeline.impersonate(scope):
                yield event

    async def _reply(
        self, chat_id: int, regenerate_id: int | None, new_text: str | None = None
    ) -> AsyncIterator[ChatEvent]:
        with self._claim(chat_id) as run:
            scope, notice = await self.pipeline.prepare(chat_id, regenerate_id, run)
            try:
                async for event in self.pipeline.run(scope, notice, regenerate_id, new_text):
                    yield event
            finally:
                self._messages_changed(chat_id)

    @contextlib.contextmanager
    def _claim(self, chat_id: int) -> Iterator[RunContext]:
        """This chat's one reply, for as long as it runs; refused while another runs in it."""
        if chat_id in self._runs:
            raise ReplyRunningError()
        run = self._runs[chat_id] = RunContext()
        try:
            yield run
        except ModelCrashedError as error:
            self._on_model_crash(error)
            raise
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
        self._messages_changed(edited.chat_id)
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
        judged = await self.db.call(self.db.store.update_stats, message_id, route=verdict)
        self._messages_changed(judged.chat_id)
        return judged

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
        self._messages_changed(rated.chat_id)
        return rated

    async def _collect_swipe_choice(self, last: Message | None) -> None:
        """Moving on after regenerating means the shown alternative beat the others."""
        if last is None or last.role != "assistant" or len(last.swipes) < 2 or last.is_greeting:
            return
        rejected = [text for i, text in enumerate(last.swipes) if i != last.swipe_index]
        name, context = await self._learning_context(last)
        self._collect(signals.SwipeChosen(name, context, last.content, rejected))

    async def _learning_context(self, message: Message) -> tuple[str, tuple[signals.Turn, ...]]:
        """The character's name and the chat turns before ``message``, as the collector wants them."""
        chat = await self.db.call(self.db.store.get_chat, message.chat_id)
        writer = message.speaker_id or chat.character_id  # a group chat's: whoever wrote it
        name = (await self._card(writer)).name if writer is not None else message.speaker_name
        history = await self.db.call(self.db.store.list_messages, message.chat_id)
        before = [m for m in history if m.position < message.position]
        return name, tuple((m.role, m.content) for m in before)

    async def set_hidden(self, message_id: int, hidden: bool) -> Message:
        """Leave the message out of the prompt (it stays in the chat, dimmed), or put it back."""
        message = await self.db.call(writing.set_hidden, self.db.store.engine, message_id, hidden)
        self._messages_changed(message.chat_id)
        return message

    async def set_author_note(self, chat_id: int, text: str, depth: int, role: str) -> Chat:
        """Store the chat's author's note (empty text: none); it goes into the next prompt."""
        chat = await self.db.call(writing.save_author_note, self.db.store.engine, chat_id, text, depth, role)
        self.changes.emit(Change("chats", chat_id=chat_id, character_id=chat.character_id))
        return chat

    async def delete_message(self, message_id: int) -> None:
        await self.db.call(self.db.store.delete_message, message_id)
        self._messages_changed(None)  # which chat it was in is gone with it

    async def show_swipe(self, message_id: int, index: int) -> Message:
        shown = await self.db.call(self.db.store.set_swipe_index, message_id, index)
        self._messages_changed(shown.chat_id)
        return shown

    def _messages_changed(self, chat_id: int | None) -> None:
        self.changes.emit(Change("messages", chat_id=chat_id))

    async def _card(self, character_id: int) -> CharacterCard:
        character = await self.db.call(self.db.store.get_character, character_id)
        return CharacterCard.model_validate(character.card)
