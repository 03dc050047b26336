"""Writing tools, as in SillyTavern: Continue, Impersonate, the author's note, hide from context.

- **Continue** writes more of the character's last reply, in the alternative shown: the prompt
  ends inside that reply (``ChatInput.continue_last``), the new text streams into the same
  bubble and the reply is saved as one message, its old text unchanged at its start.
- **Impersonate** writes the user's next message in their persona's voice; it goes to the
  message box to be edited and sent, and is never saved.
- **The author's note** is a chat's own text, put into the prompt at a depth (``prompt.AuthorNote``).
- **Hidden messages** stay in the chat but are left out of everything the model reads.

``WritingReplies`` is the model-calling half, mixed into ``ReplyPipeline``; the functions below
it run on the database thread.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from nexus_desktop.chat.events import ChatEvent, GovernorNotice, HistoryTrimmed, Impersonated, ReplySaved
from nexus_desktop.chat.model_output import Generated, stats_record, strip_speaker
from nexus_desktop.chat.prompt import AuthorNote
from nexus_desktop.control.governor import budget_cut_text
from nexus_desktop.db.engine import session
from nexus_desktop.db.store import NotFoundError
from nexus_desktop.db.tables import Chat, Message
from nexus_desktop.llm.contract import ModelError, Role

if TYPE_CHECKING:
    from nexus_desktop.chat.prompt import PromptPlan
    from nexus_desktop.chat.tool_rounds import ReplyScope
    from nexus_desktop.control.governor import TokenGrant
    from nexus_desktop.db.store import AsyncStore
    from nexus_desktop.llm.contract import ChatOutput

NOTE_ROLES: tuple[Role, ...] = ("system", "user", "assistant")
MAX_NOTE_DEPTH = 999
IMPERSONATION_PROMPT = (
    "[Write {{user}}'s next message in the chat, from {{user}}'s point of view, in the style of "
    "{{user}}'s earlier messages. Write only that one message. Do not write as {{char}} and do "
    "not describe {{char}}'s actions.]"
)
"""SillyTavern's impersonation prompt, in its words where they fit."""


class NothingToContinueError(ValueError):
    """Continue needs the character's reply last in the chat; the message says what to do instead."""


class NothingAddedError(ModelError):
    def __init__(self) -> None:
        super().__init__(
            "The model had nothing to add to this reply; press Continue again, or Regenerate for a new one."
        )


def reply_to_continue(messages: list[Message]) -> Message:
    """The chat's last message when Continue can write more of it; else why not and what to do."""
    last = messages[-1] if messages else None
    if last is None:
        raise NothingToContinueError("This chat has no reply to continue yet; send a message first.")
    if last.role == "user":
        raise NothingToContinueError(
            "The last message is yours, so there is no reply to continue: send it (Enter) or press "
            "Regenerate for the character's reply."
        )
    if last.role != "assistant":
        raise NothingToContinueError(
            "The last message is a tool's result, not a reply; press Regenerate for the character's reply."
        )
    if last.hidden:
        raise NothingToContinueError(
            "The last reply is hidden from the prompt, so the model cannot see it to go on; show it "
            "again (its eye button) first."
        )
    return last


def joined(reply: str, more: str) -> str:
    """The reply with the model's continuation: exactly as written, the old text unchanged."""
    return reply + more.rstrip()


# The model calls, mixed into ReplyPipeline -------------------------------------------------------


class WritingReplies:
    """Continue and Impersonate: ``ReplyPipeline`` provides what is declared here."""

    db: AsyncStore

    if TYPE_CHECKING:

        async def _plan(
            self,
            scope: ReplyScope,
            *,
            pending: str | None = None,
            continuing: bool = False,
            instruction: str = "",
        ) -> PromptPlan: ...

        def _generate(
            self, scope: ReplyScope, plan: PromptPlan, *, stop: str, continue_last: bool = False
        ) -> AsyncGenerator[ChatEvent | Generated, None]: ...

        def _settle(self, grant: TokenGrant, output: ChatOutput, *, reply: bool) -> None: ...

    async def continue_reply(self, scope: ReplyScope) -> AsyncIterator[ChatEvent]:
        """More of ``scope.history[-1]`` (the reply shown last), streamed as ``ReplyToken``s of the
        new text only, then ``ReplySaved`` with the whole reply."""
        reply = scope.history[-1]
        assert reply.id is not None and reply.role == "assistant"
        plan = await self._plan(scope, continuing=True)
        if plan.dropped:
            yield HistoryTrimmed(plan.dropped)
        # The model must not write the user's next line (as for a reply).
        calling = self._generate(scope, plan, stop=scope.persona.name, continue_last=True)
        async with contextlib.aclosing(calling) as events:
            async for event in events:
                if not isinstance(event, Generated):
                    yield event
                    continue
                output = event.output
                if not output.text.strip():
                    await self.db.call(self._settle, event.grant, output, reply=False)
                    if output.stats.finish_reason == "cancelled":
                        return  # stopped before a word: the reply stays as it was
                    raise NothingAddedError()
                text = joined(reply.content, output.text)
                stats = {**(reply.stats or {}), **stats_record(output, scope.source.name), "continued": True}
                if event.budget_cut:
                    stats["budget_cut"] = True
                extend = self._settle_and_extend
                yield ReplySaved(
                    await self.db.call(extend, event.grant, output, reply.id, text, stats), output
                )
                if event.budget_cut:
                    yield GovernorNotice("budget_reached", budget_cut_text(scope.card.name))

    def _settle_and_extend(
        self, grant: TokenGrant, output: ChatOutput, message_id: int, text: str, stats: dict[str, Any]
    ) -> Message:
        """Count the call's tokens, then save the longer reply: one trip to the database thread."""
        self._settle(grant, output, reply=False)  # more of the same reply, not another one
        return self.db.store.edit_message(message_id, text, stats)

    async def impersonate(self, scope: ReplyScope) -> AsyncIterator[ChatEvent]:
        """The user's next message in their persona's voice: ``ReplyToken``s, then ``Impersonated``."""
        plan = await self._plan(scope, instruction=IMPERSONATION_PROMPT)
        if plan.dropped:
            yield HistoryTrimmed(plan.dropped)
        # The model must not go on to write the character's next line.
        async with contextlib.aclosing(self._generate(scope, plan, stop=scope.card.name)) as events:
            async for event in events:
                if not isinstance(event, Generated):
                    yield event
                    continue
                await self.db.call(self._settle, event.grant, event.output, reply=False)
                yield Impersonated(strip_speaker(event.output.text, scope.persona.name), event.output)


# On the database thread --------------------------------------------------------------------------


def author_note(chat: Chat) -> AuthorNote | None:
    """The chat's author's note, None when it has none."""
    if not chat.author_note.strip():
        return None
    roles: dict[str, Role] = {role: role for role in NOTE_ROLES}
    return AuthorNote(chat.author_note, chat.author_note_depth, roles.get(chat.author_note_role, "system"))


def save_author_note(engine: Engine, chat_id: int, text: str, depth: int, role: str) -> Chat:
    """Store the chat's author's note (empty text: none); a bad depth or role is refused, unsaved."""
    if not 0 <= depth <= MAX_NOTE_DEPTH:
        raise ValueError(
            f"The author's note depth is how many messages from the end it goes in: 0 to {MAX_NOTE_DEPTH}, "
            f"not {depth}."
        )
    if role not in NOTE_ROLES:
        raise ValueError(f"The author's note is sent as one of {', '.join(NOTE_ROLES)}, not {role!r}.")
    with session(engine) as s:
        chat = s.get(Chat, chat_id)
        if chat is None:
            raise NotFoundError(f"Chat {chat_id} no longer exists; it may have been deleted.")
        chat.author_note, chat.author_note_depth, chat.author_note_role = text.strip(), depth, role
        s.add(chat)
        s.commit()
        return chat


def set_hidden(engine: Engine, message_id: int, hidden: bool) -> Message:
    """Hide the message from the prompt (it stays in the chat), or bring it back."""
    with session(engine) as s:
        message = s.get(Message, message_id)
        if message is None:
            raise NotFoundError(f"Message {message_id} no longer exists.")
        message.hidden = hidden
        s.add(message)
        s.commit()
        return message


# SillyTavern keeps a chat's author's note in its ``chat_metadata``, its role as a number.
_ST_NOTE_ROLES: dict[int, Role] = {0: "system", 1: "user", 2: "assistant"}
_ST_IN_CHAT = 1
"""``note_position``: in the chat at the note's depth, the only place NEXUS puts it."""


def note_from_st(metadata: dict[str, Any]) -> dict[str, Any]:
    """The ``Chat`` fields for the author's note in a SillyTavern chat file's metadata ({} for none)."""
    text = metadata.get("note_prompt")
    if not isinstance(text, str) or not text.strip():
        return {}
    depth, role = metadata.get("note_depth"), metadata.get("note_role")
    fits = isinstance(depth, int) and not isinstance(depth, bool) and 0 <= depth <= MAX_NOTE_DEPTH
    return {
        "author_note": text.strip(),
        "author_note_depth": depth if fits else 4,
        "author_note_role": _ST_NOTE_ROLES.get(role, "system") if isinstance(role, int) else "system",
    }


def note_to_st(chat: Chat) -> dict[str, Any]:
    """The chat's author's note as SillyTavern's ``chat_metadata`` holds it ({} when the chat never
    had one, so an exported chat carries nothing it did not have)."""
    if not chat.author_note and "note_prompt" not in chat.st_metadata:
        return {}
    numbers: dict[str, int] = {role: number for number, role in _ST_NOTE_ROLES.items()}
    note: dict[str, Any] = {"note_prompt": chat.author_note, "note_depth": chat.author_note_depth}
    role = numbers.get(chat.author_note_role, 0)
    if role or "note_role" in chat.st_metadata:  # older files have none: system, the default
        note["note_role"] = role
    if "note_position" not in chat.st_metadata:
        note["note_position"] = _ST_IN_CHAT
    return note
