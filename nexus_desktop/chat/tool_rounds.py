"""The tool calls of one reply, under the character's policy.

A round is one tool call: the command the user typed or the router's pick (first round only),
else the model's own choice when ``tools_by_model`` is on.  A reply makes up to
``tool_rounds_per_reply`` rounds (one when the policy does not say, as before policies); a later
round offers only the tools not yet used in this reply.  The governor decides what is offered
(cooldowns, today's tool calls) and refuses a tool whose prerequisites were not used earlier in
this chat, with the reason saved as the tool's failed result and shown as a ``GovernorNotice``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from nexus_desktop.cards.model import CharacterCard
from nexus_desktop.chat.commands import parse_command
from nexus_desktop.chat.events import GovernorNotice, ToolCalled
from nexus_desktop.chat.metering import MeteredSource
from nexus_desktop.chat.prompt import AuthorNote
from nexus_desktop.chat.routing import LABEL_TOOLS, label_for_tool
from nexus_desktop.chat.tools import (
    ToolCall,
    ToolInfo,
    ToolOutcome,
    ToolProvider,
    ToolRecord,
    ToolResult,
    decide_tool_call,
    fill_arguments,
    tools_for_card,
)
from nexus_desktop.control.governor import DEFAULT_TOOL_ROUNDS, BudgetSpentError, Governor, ToolLimitError
from nexus_desktop.control.policy import Policy
from nexus_desktop.db.store import AsyncStore
from nexus_desktop.db.tables import Message, Persona
from nexus_desktop.llm.contract import ChatMessage, ModelCrashedError, ModelError, ModelSource, RunContext
from nexus_desktop.modules.specs import MessageContext
from nexus_desktop.settings import Settings
from nexus_desktop.training import examples as signals

if TYPE_CHECKING:
    from nexus_desktop.providers import RouteDecision, TaskRouter

log = logging.getLogger(__name__)

ToolsGetter = Callable[[], ToolProvider | None]
Route = Callable[[str], Awaitable[str | None]]
"""The intent router: a label for the user's message, or None when no router is promoted."""
Collect = Callable[[signals.Signal], None]


class ChatMemory(Protocol):
    """What a reply asks of Engram (``engram.chat_memory``); neither method raises for Engram's faults."""

    async def for_prompt(self, character_id: int | None, query: str, count: int) -> list[str]: ...

    async def after_tool(
        self, character_id: int | None, name: str, arguments: Mapping[str, Any], outcome: ToolOutcome
    ) -> ToolOutcome: ...


@dataclass
class ReplyScope:
    """What one reply knows while it runs."""

    chat_id: int
    card: CharacterCard
    policy: Policy
    settings: Settings
    source: MeteredSource
    run: RunContext
    context: MessageContext
    history: list[Message]
    persona: Persona
    """Who the user is in this chat (``chat/personas.py``)."""
    author_note: AuthorNote | None = None
    """The chat's author's note (``chat/writing.py``)."""
    others: tuple[str, ...] = ()
    """In a group chat, the other members' names: the reply stops before their next lines."""


class ToolRounds:
    def __init__(
        self,
        db: AsyncStore,
        governor: Governor,
        get_tools: ToolsGetter | None,
        route: Route | None,
        collect: Collect,
        task_router: TaskRouter | None = None,
        memory: ChatMemory | None = None,
    ) -> None:
        """``task_router`` picks the source that chooses tools when the model picks them; without
        it the chat's own model does.  ``memory``: Engram follows the notes tools' calls."""
        self.db = db
        self.task_router = task_router
        self.governor = governor
        self._get_tools = get_tools
        self._route = route
        self._collect = collect
        self._memory = memory

    async def run(
        self, scope: ReplyScope, typed: str, sent: str
    ) -> AsyncIterator[ToolCalled | GovernorNotice]:
        """Run this reply's tool calls; ``typed`` is what the user typed (commands are read from
        it), ``sent`` what the filters made of it (what the router and the model read)."""
        provider = self._get_tools() if self._get_tools is not None else None
        rounds = scope.policy.tool_rounds_per_reply
        rounds = DEFAULT_TOOL_ROUNDS if rounds is None else rounds
        if provider is None or rounds == 0:
            return
        tools = tools_for_card(scope.card.extensions, provider.tools())
        if not tools:
            return
        name = scope.card.name
        blocked = await self.db.call(
            self.governor.unavailable_tools, name, scope.policy, [t.name for t in tools]
        )
        offered = [t for t in tools if t.name not in blocked]
        used: set[str] = set()
        for round_number in range(rounds):
            call: ToolCall | None = None
            if round_number == 0:
                call = parse_command(typed, tools)
                if call is not None and call.name in blocked:
                    yield GovernorNotice("tool_unavailable", blocked[call.name])
                    return
                if call is None and self._route is not None and offered:
                    call = await self._routed_call(scope, sent, offered)
            candidates = [t for t in offered if t.name not in used]
            if call is None and scope.settings.tools_by_model and candidates:
                call = await self._model_call(scope, candidates)
            if call is None:
                return
            refusal = await self.db.call(
                self.governor.prerequisite_refusal, scope.chat_id, scope.policy, call.name
            )
            if refusal is not None:
                yield await self._save(scope, typed, call, ToolResult(False, "", refusal), provider_ran=False)
                yield GovernorNotice("prerequisite", refusal)
                return
            try:
                grant = await self.db.call(
                    self.governor.reserve_tool_call, name, scope.policy, call.name, scope.chat_id
                )
            except ToolLimitError as error:
                yield GovernorNotice("tool_unavailable", str(error))
                return
            outcome: ToolOutcome | None = None
            try:
                outcome = await provider.call_tool(call.name, call.arguments)
                if self._memory is not None and outcome.ok:
                    outcome = await self._memory.after_tool(
                        scope.context.character_id, call.name, call.arguments, outcome
                    )
            except Exception as error:  # a provider fault must not lose the user's reply
                outcome = ToolResult(
                    False, "", f"The tool {call.name} could not be run ({error}); try again."
                )
            finally:
                # Usage counts only after success: a failed tool neither counts nor starts a cooldown.
                if outcome is not None and outcome.ok:
                    await self.db.call(self.governor.settle_tool_call, grant)
                else:
                    await self.db.call(self.governor.release, grant)
            yield await self._save(scope, typed, call, outcome, provider_ran=True)
            used.add(call.name)

    async def _save(
        self, scope: ReplyScope, typed: str, call: ToolCall, outcome: ToolOutcome, *, provider_ran: bool
    ) -> ToolCalled:
        if provider_ran:
            self._collect(signals.ToolCalled(typed, call.name, dict(call.arguments), outcome.ok))
        record = ToolRecord.of(call, outcome)
        stats = record.as_dict()
        if not provider_ran:
            stats["refused"] = "prerequisite"
        label = label_for_tool(call.name) if call.via == "router" else None
        if label is not None:
            # Kept so the user can say whether the router was right (judge_route): training data.
            stats["route"] = {"text": typed, "label": label}
        saved = await self.db.call(
            self.db.store.add_message, scope.chat_id, "tool", record.message_text(), stats
        )
        scope.history.append(saved)
        return ToolCalled(call.name, call.arguments, outcome, saved)

    async def _model_call(self, scope: ReplyScope, tools: list[ToolInfo]) -> ToolCall | None:
        recent = [
            ChatMessage("user" if m.role == "user" else "assistant", model_text(m)) for m in scope.history
        ]
        router, decision = self.task_router, await self._tool_choice_source()
        elsewhere = router is not None and decision is not None and not router.is_chat_source(decision)
        opened: ModelSource | None = None
        ok, detail = False, ""
        try:
            source = scope.source
            if elsewhere:
                assert router is not None and decision is not None
                opened = await router.open(decision)
                source = scope.source.metering(opened)
            call = await decide_tool_call(source, recent, tools, context=scope.run)
            ok = True
            return call
        except ModelCrashedError as error:
            # A grammar llama.cpp cannot parse kills its process; the reply goes on without a tool.
            log.warning("Choosing a tool crashed the model process: %s", error)
            detail = str(error)
        except BudgetSpentError:
            decision = None  # the reply's own reservation says so to the user; no outcome to record
        except ModelError as error:
            detail = str(error)
            if not elsewhere:
                raise  # the chat's own model failed: the reply says so
            # The source routed to choose (a remote server down) failed: the reply goes on without a tool.
            log.warning("The source routed to choose tools failed: %s", error)
        finally:
            if opened is not None:
                await opened.aclose()
            if router is not None and decision is not None:
                await router.record_outcome(decision, ok, detail)
        return None

    async def _tool_choice_source(self) -> RouteDecision | None:
        """Which source picks the tool (``providers``): None keeps the chat's own model."""
        if self.task_router is None:
            return None
        try:
            return await self.task_router.choose("routing")
        except (LookupError, ValueError) as error:
            log.warning("No source could be routed to choose tools; the chat's model does: %s", error)
            return None

    async def _routed_call(self, scope: ReplyScope, text: str, tools: list[ToolInfo]) -> ToolCall | None:
        """The promoted intent router picks the tool; the chat model fills in its arguments."""
        assert self._route is not None
        label = await self._route(text)
        tool = next((t for t in tools if t.name == LABEL_TOOLS.get(label or "")), None)
        if tool is None:
            return None  # "chat", "build_module", or a tool this character may not use now
        try:
            arguments = await fill_arguments(scope.source, tool, text, context=scope.run)
        except BudgetSpentError:
            return None
        return ToolCall(tool.name, arguments, "router") if arguments is not None else None


def model_text(message: Message) -> str:
    """What the model reads for a message: a user's message as the filters sent it."""
    if message.role == "user":
        sent = (message.stats or {}).get("sent_as")
        if isinstance(sent, str):
            return sent
    return message.content
