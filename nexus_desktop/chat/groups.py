"""Group chats: several characters in one chat, as in SillyTavern.

A group has members in an order, a turn order and per-member mutes.  After the user writes:

- ``natural``: the members the message mentions by name answer, in the order mentioned; when it
  mentions none, each member answers with the chance its card's talkativeness gives (SillyTavern's
  ``extensions.talkativeness``, 0.5 when unset), and when none does, the next member in turn.  The
  member who spoke last does not answer again unless mentioned, or alone.
- ``list``: every member answers, in the group's order.
- ``manual``: nobody answers until the user picks who speaks (``ChatService.speak``).

A muted member is skipped by every order, but can still be asked to speak.  A member whose
character was deleted stays in the group by name (so the group can say who is gone) and is
skipped; a group with nobody left says what to do.

The database functions take the engine and run on the database thread; ``GroupService`` awaits
them through ``AsyncStore`` and announces each write as ``Change("groups")``.  Each reply's
speaker, and what the others' lines read like to it, is ``group_prompt.py``'s part.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from nexus_desktop.cards.model import CharacterCard
from nexus_desktop.changes import Change, Changes
from nexus_desktop.chat.prompt import substitute
from nexus_desktop.db.engine import session
from nexus_desktop.db.store import AsyncStore, NotFoundError
from nexus_desktop.db.tables import GREETING, Character, Chat, ChatGroup, GroupMember, Message, utcnow

TURN_ORDERS = ("natural", "list", "manual")
TURN_ORDER_NAMES = {"natural": "Natural", "list": "List", "manual": "Manual"}
DEFAULT_TALKATIVENESS = 0.5
MIN_MEMBERS = 2
MAX_NAME_LENGTH = 100


class GroupError(ValueError):
    """A group change, or a reply in a group, that cannot go ahead; the message says what to do."""


@dataclass(frozen=True)
class Member:
    id: int
    character_id: int | None
    """None once the character was deleted."""
    name: str
    muted: bool
    avatar: bytes | None = None
    talkativeness: float = DEFAULT_TALKATIVENESS

    @property
    def present(self) -> bool:
        return self.character_id is not None


@dataclass(frozen=True)
class Group:
    id: int
    name: str
    turn_order: str
    members: tuple[Member, ...]

    @property
    def present(self) -> tuple[Member, ...]:
        return tuple(m for m in self.members if m.present)

    def member(self, character_id: int | None) -> Member | None:
        return next((m for m in self.present if m.character_id == character_id), None)

    def notice(self) -> str | None:
        """What the open group says about its missing members; None when everyone is here."""
        gone = [m.name for m in self.members if not m.present]
        if not self.present:
            return (
                f"Nobody is left in {self.name}: its characters were deleted. Add characters with "
                "Edit group, or delete the group."
            )
        if not gone:
            return None
        names = _names(gone)
        verb = "was" if len(gone) == 1 else "were"
        return (
            f"{names} {verb} deleted, so {'they' if len(gone) > 1 else 'that character'} no longer "
            f"answer{'' if len(gone) > 1 else 's'} here; the others go on. Edit group to tidy the list."
        )


def _names(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


# Turn order --------------------------------------------------------------------------------------


def _words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


def mentioned(members: Sequence[Member], text: str) -> list[Member]:
    """The members ``text`` names (any word of a name, whole words, any case), in the order the
    message first names them."""
    words = re.findall(r"\w+", text.lower())
    found: list[Member] = []
    for word in words:
        for member in members:
            if member not in found and word in _words(member.name):
                found.append(member)
    return found


def speakers(
    group: Group, text: str | None, last_speaker_id: int | None, rng: random.Random | None = None
) -> list[Member]:
    """Who answers the user's ``text`` (None: no new message, e.g. asked to answer again), in order."""
    able = [m for m in group.present if not m.muted]
    if group.turn_order == "manual" or not able:
        return []
    if group.turn_order == "list":
        return able
    named = mentioned(able, text or "")
    if named:
        return named
    # Not the one who just spoke, unless nobody else can.
    others = [m for m in able if m.character_id != last_speaker_id] or able
    roll = rng or random.Random()
    chatty = [m for m in others if roll.random() < m.talkativeness]
    return chatty or [next_in_turn(able, others, last_speaker_id)]


def next_in_turn(able: Sequence[Member], candidates: Sequence[Member], last_speaker_id: int | None) -> Member:
    """The first of ``candidates`` after the last speaker in the group's order (wrapping round)."""
    ids = [m.character_id for m in able]
    start = ids.index(last_speaker_id) + 1 if last_speaker_id in ids else 0
    ordered = [*able[start:], *able[:start]]
    return next(m for m in ordered if m in candidates)


def last_speaker(history: Sequence[Message]) -> int | None:
    """The character who wrote the newest reply."""
    return next((m.speaker_id for m in reversed(history) if m.role == "assistant"), None)


def talkativeness(card: dict[str, Any]) -> float:
    """SillyTavern keeps it as text ("0.5") in the card's extensions; anything unreadable is the default."""
    extensions = card.get("extensions") if isinstance(card.get("extensions"), dict) else {}
    try:
        value = float((extensions or {}).get("talkativeness", DEFAULT_TALKATIVENESS))
    except (TypeError, ValueError):
        return DEFAULT_TALKATIVENESS
    return min(1.0, max(0.0, value)) if value == value else DEFAULT_TALKATIVENESS  # NaN: default


# On the database thread --------------------------------------------------------------------------


def _group_row(s: Session, group_id: int) -> ChatGroup:
    row = s.get(ChatGroup, group_id)
    if row is None:
        raise NotFoundError(f"Group {group_id} no longer exists; it may have been deleted.")
    return row


def _load(s: Session, row: ChatGroup) -> Group:
    query = (
        select(GroupMember, Character)
        .outerjoin(Character, col(Character.id) == col(GroupMember.character_id))
        .where(GroupMember.group_id == row.id)
        .order_by(col(GroupMember.position))
    )
    members = []
    for member, character in s.exec(query).all():
        assert member.id is not None
        if character is None:
            members.append(Member(member.id, None, member.name, member.muted))
        else:
            members.append(
                Member(
                    member.id,
                    character.id,
                    character.name,
                    member.muted,
                    character.avatar,
                    talkativeness(character.card or {}),
                )
            )
    assert row.id is not None
    return Group(row.id, row.name, row.turn_order, tuple(members))


def list_groups(engine: Engine) -> list[Group]:
    with session(engine) as s:
        rows = s.exec(select(ChatGroup).order_by(col(ChatGroup.id))).all()
        return [_load(s, row) for row in rows]


def get_group(engine: Engine, group_id: int) -> Group:
    with session(engine) as s:
        return _load(s, _group_row(s, group_id))


def find_group(engine: Engine, name: str) -> Group | None:
    """The group with this name, matching case only when there is no exact match."""
    if not name.strip():
        return None
    groups = list_groups(engine)
    exact = next((g for g in groups if g.name == name), None)
    return exact or next((g for g in groups if g.name.lower() == name.lower()), None)


def group_of_chat(engine: Engine, chat_id: int) -> Group | None:
    """The group this chat belongs to; None for a character's own chat."""
    with session(engine) as s:
        chat = s.get(Chat, chat_id)
        if chat is None:
            raise NotFoundError(f"Chat {chat_id} no longer exists; it may have been deleted.")
        return _load(s, _group_row(s, chat.group_id)) if chat.group_id is not None else None


def _clean(name: str, characters: Sequence[Character], turn_order: str) -> str:
    name = " ".join(name.split()) or ", ".join(c.name for c in characters)
    if len(characters) < MIN_MEMBERS:
        raise GroupError(f"Pick at least {MIN_MEMBERS} characters for a group chat.")
    if turn_order not in TURN_ORDERS:
        raise GroupError(f"The turn order is one of {', '.join(TURN_ORDERS)}, not {turn_order!r}.")
    return name[:MAX_NAME_LENGTH]


def _characters(s: Session, character_ids: Sequence[int]) -> list[Character]:
    ids = list(dict.fromkeys(character_ids))
    found = {c.id: c for c in s.exec(select(Character).where(col(Character.id).in_(ids))).all()}
    missing = [i for i in ids if i not in found]
    if missing:
        raise NotFoundError("A character you picked was deleted meanwhile; pick the members again.")
    return [found[i] for i in ids]


def create_group(
    engine: Engine, name: str, character_ids: Sequence[int], turn_order: str = "natural"
) -> Group:
    """A new group of these characters, in this order; its first chat opens with their greetings."""
    with session(engine) as s:
        characters = _characters(s, character_ids)
        row = ChatGroup(name=_clean(name, characters, turn_order), turn_order=turn_order)
        s.add(row)
        s.flush()
        assert row.id is not None
        for position, character in enumerate(characters):
            s.add(
                GroupMember(
                    group_id=row.id, character_id=character.id, name=character.name, position=position
                )
            )
        s.flush()
        _add_chat(s, _load(s, row))
        s.commit()
        return _load(s, row)


def update_group(
    engine: Engine, group_id: int, name: str, character_ids: Sequence[int], turn_order: str
) -> Group:
    """New name, members (in this order; a kept member keeps its mute) and turn order.  Members
    whose character was deleted and are not picked again leave the group."""
    with session(engine) as s:
        row = _group_row(s, group_id)
        characters = _characters(s, character_ids)
        row.name, row.turn_order = _clean(name, characters, turn_order), turn_order
        row.updated_at = utcnow()
        kept: dict[int | None, GroupMember] = {}
        for member in s.exec(select(GroupMember).where(GroupMember.group_id == group_id)).all():
            if member.character_id in character_ids:
                kept[member.character_id] = member
            else:
                s.delete(member)
        for position, character in enumerate(characters):
            member = kept.get(character.id) or GroupMember(group_id=group_id, name=character.name, position=0)
            member.character_id, member.name, member.position = character.id, character.name, position
            s.add(member)
        s.add(row)
        s.commit()
        return _load(s, row)


def set_turn_order(engine: Engine, group_id: int, turn_order: str) -> Group:
    if turn_order not in TURN_ORDERS:
        raise GroupError(f"The turn order is one of {', '.join(TURN_ORDERS)}, not {turn_order!r}.")
    with session(engine) as s:
        row = _group_row(s, group_id)
        row.turn_order, row.updated_at = turn_order, utcnow()
        s.add(row)
        s.commit()
        return _load(s, row)


def set_muted(engine: Engine, group_id: int, character_id: int, muted: bool) -> Group:
    """Mute a member (every turn order skips it; it still speaks when asked to) or unmute it."""
    with session(engine) as s:
        row = _group_row(s, group_id)
        query = select(GroupMember).where(
            GroupMember.group_id == group_id, GroupMember.character_id == character_id
        )
        member = s.exec(query).first()
        if member is None:
            raise NotFoundError("That character is no longer in this group.")
        member.muted = muted
        row.updated_at = utcnow()
        s.add_all([member, row])
        s.commit()
        return _load(s, row)


def delete_group(engine: Engine, group_id: int) -> None:
    """Delete the group with its chats and their messages (the database cascades)."""
    with session(engine) as s:
        s.delete(_group_row(s, group_id))
        s.commit()


def latest_group_chat(engine: Engine, group_id: int) -> Chat:
    """The group's most recently written chat, or a new one when it has none."""
    with session(engine) as s:
        query = select(Chat).where(Chat.group_id == group_id)
        chat = s.exec(query.order_by(col(Chat.updated_at).desc(), col(Chat.id).desc())).first()
        if chat is not None:
            return chat
        chat = _add_chat(s, _load(s, _group_row(s, group_id)))
        s.commit()
        return chat


def new_group_chat(engine: Engine, group_id: int) -> Chat:
    with session(engine) as s:
        chat = _add_chat(s, _load(s, _group_row(s, group_id)))
        s.commit()
        return chat


def _add_chat(s: Session, group: Group) -> Chat:
    """A chat of the group, opened by each member's greeting (its alternatives as swipes)."""
    chat = Chat(group_id=group.id)
    s.add(chat)
    s.flush()
    assert chat.id is not None
    position = 0
    for member in group.present:
        character = s.get(Character, member.character_id)
        assert character is not None
        card = CharacterCard.model_validate(character.card)
        greetings = [card.first_mes, *card.alternate_greetings, *card.group_only_greetings]
        # {{char}} is this member wherever the greeting is read; {{user}} stays for whoever the user is.
        shown = [substitute(g, card.name, "{{user}}") for g in greetings if g.strip()]
        if shown:
            s.add(
                Message(
                    chat_id=chat.id,
                    position=position,
                    role="assistant",
                    swipes=shown,
                    swipe_stats=[{GREETING: True} for _ in shown],  # after the first, too
                    speaker_id=member.character_id,
                    speaker_name=member.name,
                )
            )
            position += 1
    return chat


# On the event loop -------------------------------------------------------------------------------


class GroupService:
    """Groups for the window, the CLI and the core: each call runs on the database thread, and
    every write is announced as ``Change("groups")`` (a new chat as ``Change("chats")`` too)."""

    def __init__(self, db: AsyncStore, changes: Changes | None = None) -> None:
        self.db = db
        self.changes = changes or Changes()

    @property
    def _engine(self) -> Engine:
        return self.db.store.engine

    def _changed(self) -> None:
        self.changes.emit(Change("groups", origin=self))

    async def all(self) -> list[Group]:
        return await self.db.call(list_groups, self._engine)

    async def get(self, group_id: int) -> Group:
        return await self.db.call(get_group, self._engine, group_id)

    async def for_chat(self, chat_id: int) -> Group | None:
        return await self.db.call(group_of_chat, self._engine, chat_id)

    async def create(self, name: str, character_ids: Sequence[int], turn_order: str = "natural") -> Group:
        group = await self.db.call(create_group, self._engine, name, character_ids, turn_order)
        self._changed()
        return group

    async def update(self, group_id: int, name: str, character_ids: Sequence[int], turn_order: str) -> Group:
        group = await self.db.call(update_group, self._engine, group_id, name, character_ids, turn_order)
        self._changed()
        return group

    async def set_turn_order(self, group_id: int, turn_order: str) -> Group:
        group = await self.db.call(set_turn_order, self._engine, group_id, turn_order)
        self._changed()
        return group

    async def set_muted(self, group_id: int, character_id: int, muted: bool) -> Group:
        group = await self.db.call(set_muted, self._engine, group_id, character_id, muted)
        self._changed()
        return group

    async def delete(self, group_id: int) -> None:
        await self.db.call(delete_group, self._engine, group_id)
        self._changed()
        self.changes.emit(Change("chats", origin=self))

    async def open_chat(self, group_id: int, *, new: bool = False) -> tuple[Chat, list[Message]]:
        """The group's latest chat (a new one when ``new`` or when it has none) and its messages."""
        opener = new_group_chat if new else latest_group_chat
        chat = await self.db.call(opener, self._engine, group_id)
        assert chat.id is not None
        if new:
            self.changes.emit(Change("chats", chat_id=chat.id, origin=self))
        return chat, await self.db.call(self.db.store.list_messages, chat.id)
