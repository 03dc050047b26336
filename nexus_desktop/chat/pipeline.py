"""One reply as one pipeline, under the governor, with the modules' chat interceptors.

1. Build the context: the chat, the character's card and policy, the history, the source.
2. ``message_will_send``: the modules' filters, chained, change what the model reads.  The
   message stored stays what the user typed; the filtered text is kept in its ``sent_as`` stat,
   so later replies (and a regenerated one) read the same text.
3. ``message_will_be_answered``: the first module answer is saved as the reply; no model call.
4. Tool calls, up to the policy's rounds, among the tools it offers (``tool_rounds``); they run
   before the reply's text, which reads their results.
5. The model call: prompt plus reply cap reserved from the daily budget first, settled after a
   successful call; a smaller remainder lowers the cap, and a reply cut by it says so.
6. ``reply_did_finish``, fired without waiting for the modules.

Interceptors run out of process with a time limit (the module supervisor); a provider that
raises or answers with something other than text is skipped here as well.

Continue and Impersonate (``writing.py``, mixed in) read the same context, leave out the same
hidden messages and make the same budgeted model call (``_generate``); only what they write differs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

from nexus_desktop.cards.model import CharacterCard
from nexus_desktop.chat.events import (
    ChatEvent,
    GovernorNotice,
    HistoryTrimmed,
    ReplySaved,
    ReplyToken,
)
from nexus_desktop.chat.group_prompt import GROUP_NUDGE, heard_by
from nexus_desktop.chat.groups import GroupError, last_speaker
from nexus_desktop.chat.metering import MeteredSource, RecordCall
from nexus_desktop.chat.model_output import Generated, stats_record, strip_speaker
from nexus_desktop.chat.personas import persona_for_chat
from nexus_desktop.chat.prompt import PromptPlan, Turn, build_prompt
from nexus_desktop.chat.tool_rounds import (
    ChatMemory,
    Collect,
    ReplyScope,
    Route,
    ToolRounds,
    ToolsGetter,
    model_text,
)
from nexus_desktop.chat.tools import tool_turn_text
from nexus_desktop.chat.writing import WritingReplies, author_note
from nexus_desktop.control.governor import BudgetSpentError, Governor, TokenGrant, budget_cut_text
from nexus_desktop.control.policy import Policy, PolicyError
from nexus_desktop.db.store import AsyncStore
from nexus_desktop.db.tables import Character, Chat, Message, Persona
from nexus_desktop.llm.contract import (
    ChatInput,
    ChatMessage,
    ChatOutput,
    ModelError,
    ModelSource,
    PartialReplyError,
    ReplyStats,
    RunContext,
    TokenEvent,
)
from nexus_desktop.modules.specs import MessageContext
from nexus_desktop.settings import Settings
from nexus_desktop.training import examples as signals

if TYPE_CHECKING:
    from nexus_desktop.providers import TaskRouter

log = logging.getLogger(__name__)

SourceGetter = Callable[[str], Awaitable[ModelSource]]
"""The model source for a reply of the named character (its persona adapter may apply)."""
SettingsGetter = Callable[[], Settings]


class Interceptors(Protocol):
    """The modules' chat hooks (``ModuleSupervisor``); none of these raise for a module's fault."""

    async def filter_message(self, message: str, context: MessageContext) -> str: ...

    async def answer_message(self, message: str, context: MessageContext) -> str | None: ...

    async def reply_did_finish(self, reply: str, context: MessageContext) -> None: ...


InterceptorsGetter = Callable[[], Interceptors | None]


def _writer(scope: ReplyScope) -> tuple[int | None, str]:
    """Who writes this reply, as ``Message.speaker_id`` and ``speaker_name`` keep it."""
    return scope.context.character_id, scope.card.name


def _turns(messages: tuple[ChatMessage, ...]) -> tuple[signals.Turn, ...]:
    return tuple((m.role, m.content) for m in messages)


class ReplyPipeline(WritingReplies):
    def __init__(
        self,
        db: AsyncStore,
        get_source: SourceGetter,
        get_settings: SettingsGetter,
        governor: Governor,
        *,
        get_tools: ToolsGetter | None,
        get_interceptors: InterceptorsGetter | None,
        collect: Collect,
        route: Route | None,
        record_call: RecordCall | None,
        task_router: TaskRouter | None = None,
        memory: ChatMemory | None = None,
    ) -> None:
        self.db = db
        self.governor = governor
        self.memory = memory
        self.tools = ToolRounds(db, governor, get_tools, route, collect, task_router, memory)
        self._get_source = get_source
        self._get_settings = get_settings
        self._get_interceptors = get_interceptors
        self._collect = collect
        self._record_call = record_call
        self._token_cache: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._background: set[asyncio.Task[None]] = set()

    async def prepare(
        self,
        chat_id: int,
        regenerate_id: int | None,
        run: RunContext,
        *,
        pending: str | None = None,
        speaker_id: int | None = None,
    ) -> tuple[ReplyScope, GovernorNotice | None]:
        """What a reply reads first: the chat, the card, the policy and the model source.

        Raises, having saved nothing, when the reply cannot go ahead: the model source cannot be
        had, or ``pending`` (the user's new message, not saved yet) would not fit the context
        beside the card (``PromptTooLongError``).  A send is accepted only once this returns.
        ``speaker_id``: in a group chat, the member who writes this reply (``group_prompt.py``)."""
        scope, notice = await self._scope(chat_id, regenerate_id, run, speaker_id)
        if pending is not None:
            await self._plan(scope, pending=pending)  # the counts are cached for the reply's own plan
        return scope, notice

    async def run(
        self,
        scope: ReplyScope,
        notice: GovernorNotice | None,
        regenerate_id: int | None,
        new_text: str | None,
    ) -> AsyncIterator[ChatEvent]:
        """The reply itself, from ``prepare``'s scope (whose history ends with the message to answer)."""
        if notice is not None:
            yield notice
        interceptors = self._get_interceptors() if self._get_interceptors is not None else None
        sent = new_text
        try:
            if new_text is not None and interceptors is not None and scope.history[-1].role == "user":
                sent = await self._filter(interceptors, scope, new_text)
                answer = await self._answer(interceptors, sent, scope.context)
                if answer is not None:
                    yield ReplyToken(answer)
                    yield await self._save_answer(scope, answer)
                    self._finished(interceptors, answer, scope.context)
                    return
            if new_text is not None:
                async for tool_event in self.tools.run(scope, new_text, sent or new_text):
                    yield tool_event
            async for event in self._model_reply(scope, regenerate_id):
                yield event
                if isinstance(event, ReplySaved) and interceptors is not None:
                    self._finished(interceptors, event.message.content, scope.context)
        finally:
            if sent is not None and sent != new_text:
                self._keep_sent_as(scope, sent)

    async def wait_finished(self) -> None:
        """Wait for the ``reply_did_finish`` calls still running (tests, shutdown)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    # Steps --------------------------------------------------------------------------------

    async def _scope(
        self, chat_id: int, regenerate_id: int | None, run: RunContext, speaker_id: int | None = None
    ) -> tuple[ReplyScope, GovernorNotice | None]:
        chat, character, history, stored, persona = await self.db.call(self._load, chat_id, speaker_id)
        card = CharacterCard.model_validate(character.card)
        # Hidden messages stay in the chat, out of everything the model reads.
        history = [m for m in history if not m.hidden and m.id != regenerate_id]
        notice = None
        policy = stored if isinstance(stored, Policy) else Policy()
        if isinstance(stored, PolicyError):
            notice = GovernorNotice(
                "policy_unreadable",
                f"{card.name}'s limits could not be read ({stored}); this reply runs without them. "
                "Set them again in the character editor.",
            )
        settings = self._get_settings()
        inner = await self._get_source(card.name)

        async def count(texts: list[str]) -> list[int]:
            return await self._count_cached(inner, texts)

        source = MeteredSource(
            inner,
            character=card.name,
            governor=self.governor,
            policy=policy,
            count=count,
            record=self._record_call,
            in_db=self.db.call,
        )
        context = MessageContext(
            chat_id=chat_id,
            character_id=character.id,
            character_name=card.name,
            user_name=persona.name,
        )
        scope = ReplyScope(
            chat_id, card, policy, settings, source, run, context, history, persona, author_note(chat)
        )
        return scope, notice

    def _load(
        self, chat_id: int, speaker_id: int | None = None
    ) -> tuple[Chat, Character, list[Message], Policy | PolicyError, Persona]:
        """Everything a reply reads first, in one trip to the database thread (each trip costs a
        thread hand-over, which a busy machine makes slow)."""
        store = self.db.store
        chat = store.get_chat(chat_id)
        history = store.list_messages(chat_id)
        # A group chat's reply is its speaker's; Continue and Impersonate go on with the last one.
        writer = speaker_id or chat.character_id or last_speaker(history)
        if writer is None:
            raise GroupError("Nobody in this group has spoken yet; press Speak beside a member first.")
        character = store.get_character(writer)
        try:
            policy: Policy | PolicyError = self.governor.policy_for(writer)
        except PolicyError as error:
            policy = error
        return chat, character, history, policy, persona_for_chat(store.engine, chat_id)

    async def _filter(self, interceptors: Interceptors, scope: ReplyScope, text: str) -> str:
        try:
            filtered = await interceptors.filter_message(text, scope.context)
        except Exception:
            log.exception("The message filters failed; the message goes to the model as typed")
            return text
        if not isinstance(filtered, str) or not filtered.strip() or filtered == text:
            return text
        last = scope.history[-1]
        assert last.id is not None
        stats = [*last.swipe_stats, *[None] * (len(last.swipes) - len(last.swipe_stats))]
        stats[last.swipe_index] = {**(stats[last.swipe_index] or {}), "sent_as": filtered}
        last.swipe_stats = stats  # this reply's copy; the stored one is written once it is done
        return filtered

    async def _answer(self, interceptors: Interceptors, text: str, context: MessageContext) -> str | None:
        try:
            answer = await interceptors.answer_message(text, context)
        except Exception:
            log.exception("Asking the modules for an answer failed; the model answers")
            return None
        return answer if isinstance(answer, str) and answer.strip() else None

    async def _save_answer(self, scope: ReplyScope, answer: str) -> ReplySaved:
        stats = {"answered_by": "module"}
        saved = await self.db.call(
            self.db.store.add_message, scope.chat_id, "assistant", answer, stats, speaker=_writer(scope)
        )
        return ReplySaved(saved, ChatOutput(answer, ReplyStats(0, 0, 0.0, 0.0, None, "stop")))

    def _keep_sent_as(self, scope: ReplyScope, sent: str) -> None:
        """Store what the filters made of the user's message, for the next replies to read.

        Written after the reply rather than before the model call: the database thread runs
        calls in order, so the next reply still reads it, and this one did not wait for it.
        """
        message = next(m for m in reversed(scope.history) if m.role == "user")
        assert message.id is not None
        keep = self.db.call(self.db.store.update_stats, message.id, sent_as=sent)
        self._in_background(keep, "Keeping the filtered message")

    def _finished(self, interceptors: Interceptors, reply: str, context: MessageContext) -> None:
        self._in_background(interceptors.reply_did_finish(reply, context), "reply_did_finish")

    def _in_background(self, work: Awaitable[Any], what: str) -> None:
        async def run() -> None:
            try:
                await work
            except Exception:
                log.exception("%s failed", what)

        task = asyncio.create_task(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _model_reply(self, scope: ReplyScope, regenerate_id: int | None) -> AsyncIterator[ChatEvent]:
        plan = await self._plan(scope)
        if plan.dropped:
            yield HistoryTrimmed(plan.dropped)
        name = scope.card.name
        # Like SillyTavern's stopping strings: the model must not write the user's next line.
        async with contextlib.aclosing(self._generate(scope, plan, stop=scope.persona.name)) as events:
            async for event in events:
                if not isinstance(event, Generated):
                    yield event
                    continue
                output = event.output
                text = strip_speaker(output.text, name)
                stats = stats_record(output, scope.source.name)
                if event.budget_cut:
                    stats["budget_cut"] = True
                save = self._settle_and_save
                saved = await self.db.call(save, scope, event.grant, output, text, stats, regenerate_id)
                if saved is None:
                    return
                if output.stats.finish_reason != "cancelled":
                    self._collect(signals.ReplySaved(name, _turns(plan.messages), text))
                yield ReplySaved(saved, output)
                if event.budget_cut:
                    yield GovernorNotice("budget_reached", budget_cut_text(name))

    async def _generate(
        self, scope: ReplyScope, plan: PromptPlan, *, stop: str, continue_last: bool = False
    ) -> AsyncGenerator[ChatEvent | Generated, None]:
        """One model call for ``plan`` under the character's daily token budget: ``ReplyToken``s
        as they come, then one ``Generated``, whose tokens the caller settles as it saves.

        A spent budget yields a notice instead of a call; a call that fails or is abandoned
        releases its reservation.  ``stop``: the speaker whose next line the model must not write.
        """
        name, settings = scope.card.name, scope.settings
        try:
            grant = await self.db.call(
                self.governor.reserve_tokens, name, scope.policy, plan.prompt_tokens, settings.max_tokens
            )
        except BudgetSpentError as error:
            yield GovernorNotice("budget_spent", str(error))
            return
        output: ChatOutput | None = None
        failure: PartialReplyError | None = None
        try:
            # In a group, the other members' lines are not this reply's to write either.
            stops = tuple(f"\n{name}:" for name in (stop, *scope.others))
            sampling = replace(settings.sampling(), stop=stops, max_tokens=grant.reply_tokens)
            request = ChatInput(messages=plan.messages, sampling=sampling, continue_last=continue_last)
            try:
                async for event in scope.source.stream(request, scope.run):
                    if isinstance(event, TokenEvent):
                        yield ReplyToken(event.text)
                    else:
                        output = event
            except PartialReplyError as error:  # what was shown is saved, then the error is shown
                output, failure = error.output, error
            if output is None:
                raise ModelError("The model stopped without finishing its reply. Try again.")
        finally:
            if output is None:  # failed or abandoned: the reservation counts for nothing
                await self.db.call(self.governor.release, grant)
        yield Generated(output, grant)
        if failure is not None:
            raise failure

    def _settle(self, grant: TokenGrant, output: ChatOutput, *, reply: bool) -> None:
        """Count a finished call's tokens for its day, and the reply when it made one."""
        used = output.stats.prompt_tokens + output.stats.completion_tokens
        self.governor.settle_tokens(grant, used, reply=reply)

    def _settle_and_save(
        self,
        scope: ReplyScope,
        grant: TokenGrant,
        output: ChatOutput,
        text: str,
        stats: dict[str, Any],
        regenerate_id: int | None,
    ) -> Message | None:
        """Count the call's tokens, then save the reply (None when it came back empty): one trip."""
        self._settle(grant, output, reply=bool(text))
        if not text:
            return None
        if regenerate_id is not None:
            return self.db.store.add_swipe(regenerate_id, text, stats)
        return self.db.store.add_message(scope.chat_id, "assistant", text, stats, speaker=_writer(scope))

    async def _plan(
        self,
        scope: ReplyScope,
        *,
        pending: str | None = None,
        continuing: bool = False,
        instruction: str = "",
    ) -> PromptPlan:
        turns: list[Turn] = []
        for m in scope.history:
            if m.role != "tool":
                turns.append(heard_by(m, model_text(m), scope.context.character_id))
            elif turns and turns[-1].role == "user":
                # Folded into the user's turn: chat templates that insist on user/assistant
                # alternation (Mistral, Gemma) reject a separate tool or system message here.
                turns[-1] = Turn("user", f"{turns[-1].content}\n\n{tool_turn_text(m.content)}")
            else:
                turns.append(Turn("user", tool_turn_text(m.content)))
        if pending is not None:
            turns.append(Turn("user", pending))
        memories = await self._memories(scope, turns)
        return await build_prompt(
            scope.card,
            turns,
            user_name=scope.persona.name,
            persona_description=scope.persona.description,
            count_tokens=scope.source.count_tokens,
            context_size=scope.source.context_size,
            reply_tokens=scope.settings.max_tokens,
            author_note=scope.author_note,
            continuing=continuing,
            instruction=instruction or (GROUP_NUDGE if scope.others and not continuing else ""),
            memories=memories,
        )

    async def _memories(self, scope: ReplyScope, turns: list[Turn]) -> list[str]:
        """What the character remembers that bears on the last user message, when Settings say so."""
        count = scope.settings.memory_recall_count
        if self.memory is None or not scope.settings.memory_enabled or count == 0:
            return []
        query = next((turn.content for turn in reversed(turns) if turn.role == "user"), "")
        return await self.memory.for_prompt(scope.context.character_id, query, count)

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
