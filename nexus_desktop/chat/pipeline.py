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
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any, Protocol

from nexus_desktop.cards.model import CharacterCard
from nexus_desktop.chat.events import (
    ChatEvent,
    GovernorNotice,
    HistoryTrimmed,
    ReplySaved,
    ReplyToken,
)
from nexus_desktop.chat.metering import MeteredSource, RecordCall
from nexus_desktop.chat.prompt import PromptPlan, Turn, build_prompt
from nexus_desktop.chat.tool_rounds import Collect, ReplyScope, Route, ToolRounds, ToolsGetter, model_text
from nexus_desktop.chat.tools import tool_turn_text
from nexus_desktop.control.governor import BudgetSpentError, Governor, TokenGrant, budget_cut_text
from nexus_desktop.control.policy import Policy, PolicyError
from nexus_desktop.db.store import AsyncStore
from nexus_desktop.db.tables import Character, Chat, Message
from nexus_desktop.llm.contract import (
    ChatInput,
    ChatMessage,
    ChatOutput,
    ModelError,
    ModelSource,
    ReplyStats,
    RunContext,
    TokenEvent,
)
from nexus_desktop.modules.specs import MessageContext
from nexus_desktop.settings import Settings
from nexus_desktop.training import examples as signals

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


def strip_speaker(text: str, name: str) -> str:
    """Small models often open with "Vega:"; the bubble already says who speaks."""
    text = text.strip()
    prefix = f"{name}:"
    return text[len(prefix) :].lstrip() if text.startswith(prefix) else text


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


def _turns(messages: tuple[ChatMessage, ...]) -> tuple[signals.Turn, ...]:
    return tuple((m.role, m.content) for m in messages)


class ReplyPipeline:
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
    ) -> None:
        self.db = db
        self.governor = governor
        self.tools = ToolRounds(db, governor, get_tools, route, collect)
        self._get_source = get_source
        self._get_settings = get_settings
        self._get_interceptors = get_interceptors
        self._collect = collect
        self._record_call = record_call
        self._token_cache: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._background: set[asyncio.Task[None]] = set()

    async def run(
        self, chat_id: int, regenerate_id: int | None, new_text: str | None, run: RunContext
    ) -> AsyncIterator[ChatEvent]:
        scope, notice = await self._scope(chat_id, regenerate_id, run)
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
        self, chat_id: int, regenerate_id: int | None, run: RunContext
    ) -> tuple[ReplyScope, GovernorNotice | None]:
        chat, character, history, stored = await self.db.call(self._load, chat_id)
        card = CharacterCard.model_validate(character.card)
        if regenerate_id is not None:
            history = [m for m in history if m.id != regenerate_id]
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
            character_id=chat.character_id,
            character_name=card.name,
            user_name=settings.user_name,
        )
        return ReplyScope(chat_id, card, policy, settings, source, run, context, history), notice

    def _load(self, chat_id: int) -> tuple[Chat, Character, list[Message], Policy | PolicyError]:
        """Everything a reply reads first, in one trip to the database thread (each trip costs a
        thread hand-over, which a busy machine makes slow)."""
        store = self.db.store
        chat = store.get_chat(chat_id)
        character = store.get_character(chat.character_id)
        history = store.list_messages(chat_id)
        try:
            policy: Policy | PolicyError = self.governor.policy_for(chat.character_id)
        except PolicyError as error:
            policy = error
        return chat, character, history, policy

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
        saved = await self.db.call(self.db.store.add_message, scope.chat_id, "assistant", answer, stats)
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
        name, settings = scope.card.name, scope.settings
        try:
            grant = await self.db.call(
                self.governor.reserve_tokens, name, scope.policy, plan.prompt_tokens, settings.max_tokens
            )
        except BudgetSpentError as error:
            yield GovernorNotice("budget_spent", str(error))
            return
        output: ChatOutput | None = None
        try:
            # Like SillyTavern's stopping strings: the model must not write the user's next line.
            sampling = replace(
                settings.sampling(), stop=(f"\n{settings.user_name}:",), max_tokens=grant.reply_tokens
            )
            request = ChatInput(messages=plan.messages, sampling=sampling)
            async for event in scope.source.stream(request, scope.run):
                if isinstance(event, TokenEvent):
                    yield ReplyToken(event.text)
                else:
                    output = event
            if output is None:
                raise ModelError("The model stopped without finishing its reply. Try again.")
            text = strip_speaker(output.text, name)
            stats = stats_record(output, scope.source.name)
            cut = grant.cut and output.stats.finish_reason == "length"
            if cut:
                stats["budget_cut"] = True
            save = self._settle_and_save
            saved = await self.db.call(save, scope, grant, output, text, stats, regenerate_id)
        finally:
            if output is None:  # failed or abandoned: the reservation counts for nothing
                await self.db.call(self.governor.release, grant)
        if saved is None:
            return
        if output.stats.finish_reason != "cancelled":
            self._collect(signals.ReplySaved(name, _turns(plan.messages), text))
        yield ReplySaved(saved, output)
        if cut:
            yield GovernorNotice("budget_reached", budget_cut_text(name))

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
        used = output.stats.prompt_tokens + output.stats.completion_tokens
        self.governor.settle_tokens(grant, used, reply=bool(text))
        if not text:
            return None
        if regenerate_id is not None:
            return self.db.store.add_swipe(regenerate_id, text, stats)
        return self.db.store.add_message(scope.chat_id, "assistant", text, stats)

    async def _plan(self, scope: ReplyScope) -> PromptPlan:
        turns: list[Turn] = []
        for m in scope.history:
            if m.role != "tool":
                turns.append(Turn("user" if m.role == "user" else "assistant", model_text(m)))
            elif turns and turns[-1].role == "user":
                # Folded into the user's turn: chat templates that insist on user/assistant
                # alternation (Mistral, Gemma) reject a separate tool or system message here.
                turns[-1] = Turn("user", f"{turns[-1].content}\n\n{tool_turn_text(m.content)}")
            else:
                turns.append(Turn("user", tool_turn_text(m.content)))
        return await build_prompt(
            scope.card,
            turns,
            user_name=scope.settings.user_name,
            count_tokens=scope.source.count_tokens,
            context_size=scope.source.context_size,
            reply_tokens=scope.settings.max_tokens,
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
