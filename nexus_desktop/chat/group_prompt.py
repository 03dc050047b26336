"""A group chat's turns: who writes each reply, what the others' lines read like to it.

Each reply is the ordinary one-character reply (``ReplyPipeline``) with the speaker's own card,
lorebook, limits and adapter; only its history differs: the other members' lines come to it as
"Name: text" on the user's side, as what it answers, so it neither takes them for its own nor
writes them (their "\\nName:" lines stop the reply, as the user's does).

``GroupReplies`` is what ``ChatService`` hands a group chat's send, regenerate, respond and
speak to; the members' turn order is ``groups.speakers``.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from nexus_desktop.chat.events import ChatEvent, GovernorNotice, SpeakerChosen, UserMessageSaved
from nexus_desktop.chat.groups import Group, GroupError, Member, last_speaker, speakers
from nexus_desktop.chat.prompt import Turn
from nexus_desktop.db.tables import Message
from nexus_desktop.llm.contract import RunContext

if TYPE_CHECKING:
    from nexus_desktop.chat.pipeline import ReplyPipeline
    from nexus_desktop.chat.tool_rounds import ReplyScope
    from nexus_desktop.db.store import AsyncStore

Claim = Callable[[int], AbstractContextManager[RunContext]]
GROUP_NUDGE = "[Write the next reply only as {{char}}.]"
"""SillyTavern's group nudge: last in a group reply's prompt, so it answers as its speaker alone."""
MANUAL_HINT = (
    "In manual turn order nobody answers on their own: press Speak beside a member in the bar "
    "above the message box, or pick another turn order there."
)


def heard_by(message: Message, text: str, listener_id: int | None) -> Turn:
    """``message`` as the character ``listener_id`` reads it while writing the next reply."""
    if message.role == "user":
        return Turn("user", text)
    if not message.speaker_name or message.speaker_id == listener_id:
        return Turn("assistant", text)  # its own line, or a one-character chat's
    return Turn("user", f"{message.speaker_name}: {text}")


class GroupReplies:
    def __init__(
        self,
        db: AsyncStore,
        pipeline: ReplyPipeline,
        claim: Claim,
        changed: Callable[[int], object],
        rng: random.Random | None = None,
    ) -> None:
        """``claim``: the chat's one running reply (``ChatService._claim``); ``changed``: told
        once a chat's messages were written; ``rng``: the natural order's talkativeness rolls."""
        self.db = db
        self.pipeline = pipeline
        self._claim = claim
        self._changed = changed
        self.rng = rng or random.Random()

    async def send(self, group: Group, chat_id: int, text: str) -> AsyncIterator[ChatEvent]:
        """Save the user's message, then each member the turn order picks answers in turn.

        As in a one-character chat, the message is saved only once the send is accepted (here:
        checked against the first speaker's card); in manual order it is saved with no reply."""
        with self._claim(chat_id) as run:
            history = await self.db.call(self.db.store.list_messages, chat_id)
            who = speakers(_with_members(group), text, last_speaker(history), self.rng)
            first = None
            if who:
                assert who[0].character_id is not None
                first = await self.pipeline.prepare(
                    chat_id, None, run, pending=text, speaker_id=who[0].character_id
                )
                if run.cancel.cancelled:
                    return
            user_message = await self.db.call(self.db.store.add_message, chat_id, "user", text)
            try:
                yield UserMessageSaved(user_message)
                if first is not None:
                    first[0].history.append(user_message)
                async for event in self._turns(group, chat_id, who, run, first, text):
                    yield event
            finally:
                self._changed(chat_id)

    async def respond(self, group: Group, chat_id: int, last: Message) -> AsyncIterator[ChatEvent]:
        """Answer the user's last message (its replies failed, or manual order left it unanswered)."""
        if group.turn_order == "manual":
            raise GroupError(MANUAL_HINT)
        new_text = last.content if last.role == "user" else None
        with self._claim(chat_id) as run:
            history = await self.db.call(self.db.store.list_messages, chat_id)
            who = speakers(_with_members(group), new_text, last_speaker(history), self.rng)
            if not who:
                raise GroupError(
                    "Every member of this group is muted: unmute one, or press Speak beside one."
                )
            try:
                async for event in self._turns(group, chat_id, who, run, None, new_text):
                    yield event
            finally:
                self._changed(chat_id)

    async def speak(self, group: Group, chat_id: int, character_id: int) -> AsyncIterator[ChatEvent]:
        """This member writes a reply now, whatever the turn order (muted or not)."""
        member = _with_members(group).member(character_id)
        if member is None:
            raise GroupError("That character is no longer in this group; pick another member.")
        with self._claim(chat_id) as run:
            try:
                async for event in self._turns(group, chat_id, [member], run, None, None):
                    yield event
            finally:
                self._changed(chat_id)

    async def regenerate(self, group: Group, chat_id: int, last: Message) -> AsyncIterator[ChatEvent]:
        """Another alternative of the last reply, written by the member who wrote it."""
        member = group.member(last.speaker_id)
        if member is None:
            who = last.speaker_name or "The character who wrote this reply"
            raise GroupError(
                f"{who} is no longer in this group, so this reply cannot be written again; delete it, "
                "or send a new message."
            )
        assert last.id is not None and member.character_id is not None
        with self._claim(chat_id) as run:
            try:
                yield SpeakerChosen(member.character_id, member.name)
                scope, notice = await self.pipeline.prepare(
                    chat_id, last.id, run, speaker_id=member.character_id
                )
                scope.others = _others(group, member)
                async for event in self.pipeline.run(scope, notice, last.id, None):
                    yield event
            finally:
                self._changed(chat_id)

    async def _turns(
        self,
        group: Group,
        chat_id: int,
        who: list[Member],
        run: RunContext,
        first: tuple[ReplyScope, GovernorNotice | None] | None,
        new_text: str | None,
    ) -> AsyncIterator[ChatEvent]:
        """Each of ``who`` replies in turn, reading the replies before its own; Stop ends them all."""
        for index, member in enumerate(who):
            if run.cancel.cancelled:
                return
            assert member.character_id is not None
            yield SpeakerChosen(member.character_id, member.name)
            scope, notice = first or await self.pipeline.prepare(
                chat_id, None, run, speaker_id=member.character_id
            )
            first = None
            scope.others = _others(group, member)
            # The user's message goes through the modules and tools once, with the first reply.
            async for event in self.pipeline.run(scope, notice, None, new_text if index == 0 else None):
                yield event


def _with_members(group: Group) -> Group:
    """The group, refusing a reply when nobody is left in it."""
    if not group.present:
        raise GroupError(group.notice() or "This group has no members; add characters with Edit group.")
    return group


def _others(group: Group, member: Member) -> tuple[str, ...]:
    return tuple(m.name for m in group.present if m.character_id != member.character_id)
