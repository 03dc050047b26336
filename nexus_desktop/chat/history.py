"""Every chat a character or a group has: list, open, rename, delete, branch, search across all of
them, and SillyTavern chat files in and out.

A group chat's file is an ordinary SillyTavern chat file whose character lines carry their
speakers' names (as SillyTavern writes group chats); imported into a group, each line goes to the
member it names.

The functions take the engine and run on the database thread; ``ChatHistory`` awaits them through
``AsyncStore`` (so the window, the CLI and the tests drive the same code) and tells the views
(``Change("chats")``) after each write.  Search reads ``message_fts``, which triggers keep current
(migration v5), so messages written by any process are found.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, func, text
from sqlmodel import Session, col, select

from nexus_desktop.changes import Change, Changes
from nexus_desktop.chat.groups import Group, find_group, get_group
from nexus_desktop.chat.personas import find_persona, persona_for_chat
from nexus_desktop.chat.st_chat import CHARACTER, StChat, read_st_chat, write_st_chat
from nexus_desktop.chat.writing import note_from_st, note_to_st
from nexus_desktop.db.engine import session
from nexus_desktop.db.store import AsyncStore, NotFoundError
from nexus_desktop.db.tables import GREETING, Character, Chat, ChatGroup, Message, utcnow

MAX_TITLE_LENGTH = 200
SEARCH_LIMIT = 50
# Marks around the words a search matched, in ``SearchHit.snippet`` unless the caller picks others.
MATCH_MARKS = ("\x02", "\x03")


def with_label(character_name: str, group_name: str, group_id: int | None) -> str:
    """Who a chat is with, as lists and search results name it: "Vega", or "Crew (group)"."""
    return f"{group_name} (group)" if group_id is not None else character_name


@dataclass(frozen=True)
class ChatSummary:
    """One row of the chat list."""

    id: int
    character_id: int | None
    """None for a group's chat."""
    character_name: str
    group_id: int | None
    """The group whose chat this is; None for a character's own chat."""
    group_name: str
    title: str
    """The chat's title, or "Chat from <date>" for one never named."""
    created_at: datetime
    updated_at: datetime
    """The last time a message was written, swiped or edited."""
    message_count: int
    preview: str
    """The first line of the newest message."""

    @property
    def with_label(self) -> str:
        return with_label(self.character_name, self.group_name, self.group_id)


@dataclass(frozen=True)
class SearchHit:
    message_id: int
    chat_id: int
    chat_title: str
    character_id: int | None
    character_name: str
    group_id: int | None
    group_name: str
    snippet: str
    """The matched text around the match, the matched words between ``marks``."""

    @property
    def with_label(self) -> str:
        return with_label(self.character_name, self.group_name, self.group_id)


@dataclass(frozen=True)
class ImportedChat:
    chat: ChatSummary
    named_in_file: str
    """The character the file is for ("" when it names none)."""
    strangers: tuple[str, ...] = ()
    """In a group: the speakers the file names that are not its members (their lines keep the name)."""

    def describe(self) -> str:
        """Which character or group the chat went to, and why: the user chose, or the file said."""
        chat = self.chat
        if chat.group_id is not None:
            where = f"{chat.message_count} messages into the new chat “{chat.title}” of {chat.group_name}"
            if not self.strangers:
                return f"Imported {where}; each character's lines went to that member."
            who = f"{', '.join(self.strangers)}, who {'is' if len(self.strangers) == 1 else 'are'} not in it"
            return f"Imported {where}; the lines of {who}, keep that name."
        where = f"{chat.message_count} messages into the new chat “{chat.title}” with {chat.character_name}"
        if self.named_in_file.lower() == chat.character_name.lower():
            return f"Imported {where}, the character the file is for."
        if self.named_in_file:
            missing = f"the file is for {self.named_in_file}, who is not among your characters"
            return f"Imported {where}: {missing}."
        return f"Imported {where} (the file names no character)."


def display_title(chat: Chat) -> str:
    if chat.title.strip():
        return chat.title
    return f"Chat from {local_time(chat.created_at)}"


def local_time(moment: datetime) -> str:
    """``12 Mar 2025, 18:33`` in the user's time zone (stored times are UTC)."""
    utc = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
    return f"{utc.astimezone():%d %b %Y, %H:%M}".lstrip("0")


def first_line(text: str, limit: int = 120) -> str:
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def fts_query(typed: str) -> str | None:
    """What the user typed as an FTS5 query that cannot be a syntax error: every word quoted and
    matched as a prefix (``"drag"*`` finds "dragons"), all of them required.  None when nothing
    in it is a word (only punctuation or emoji)."""
    words = re.findall(r"\w+", typed)
    return " ".join(f'"{word}"*' for word in words) or None


# On the database thread ------------------------------------------------------------------------


def list_chats(
    engine: Engine,
    character_id: int | None = None,
    *,
    group_id: int | None = None,
    chat_id: int | None = None,
) -> list[ChatSummary]:
    """The character's chats, or the group's (every chat when neither is given), the most recently
    written first."""
    shown = func.json_extract(Message.swipes, func.printf("$[%d]", Message.swipe_index))
    count = select(func.count()).where(Message.chat_id == Chat.id).scalar_subquery()
    newest = (
        select(shown)
        .where(Message.chat_id == Chat.id)
        .order_by(col(Message.position).desc())
        .limit(1)
        .scalar_subquery()
    )
    # A chat has a character or a group: the name is whichever it has.
    name = func.coalesce(ChatGroup.name, Character.name)
    query = (
        select(Chat, name, count, newest)
        .outerjoin(Character, col(Character.id) == col(Chat.character_id))
        .outerjoin(ChatGroup, col(ChatGroup.id) == col(Chat.group_id))
    )
    if character_id is not None:
        query = query.where(Chat.character_id == character_id)
    if group_id is not None:
        query = query.where(Chat.group_id == group_id)
    if chat_id is not None:
        query = query.where(Chat.id == chat_id)
    query = query.order_by(col(Chat.updated_at).desc(), col(Chat.id).desc())
    with session(engine) as s:
        rows = s.exec(query).all()
    return [_summary(chat, with_name, number, last) for chat, with_name, number, last in rows]


def _summary(chat: Chat, with_name: str, count: int, newest: object) -> ChatSummary:
    """``with_name``: the chat's group's name for a group's chat, else its character's."""
    assert chat.id is not None
    group = chat.group_id is not None
    return ChatSummary(
        id=chat.id,
        character_id=chat.character_id,
        character_name="" if group else with_name,
        group_id=chat.group_id,
        group_name=with_name if group else "",
        title=display_title(chat),
        created_at=chat.created_at,
        updated_at=chat.updated_at,
        message_count=count,
        preview=first_line(newest if isinstance(newest, str) else ""),
    )


def chat_summary(engine: Engine, chat_id: int) -> ChatSummary:
    found = list_chats(engine, chat_id=chat_id)
    if not found:
        raise NotFoundError(f"Chat {chat_id} no longer exists; it may have been deleted.")
    return found[0]


def _chat(s: Session, chat_id: int) -> Chat:
    chat = s.get(Chat, chat_id)
    if chat is None:
        raise NotFoundError(f"Chat {chat_id} no longer exists; it may have been deleted.")
    return chat


def open_chat(engine: Engine, chat_id: int) -> tuple[Chat, list[Message]]:
    with session(engine) as s:
        chat = _chat(s, chat_id)
        query = select(Message).where(Message.chat_id == chat_id).order_by(col(Message.position))
        return chat, list(s.exec(query))


def rename_chat(engine: Engine, chat_id: int, title: str) -> Chat:
    title = " ".join(title.split())
    if not title:
        raise ValueError("Give the chat a title; it cannot be empty.")
    if len(title) > MAX_TITLE_LENGTH:
        raise ValueError(f"Keep the chat's title to {MAX_TITLE_LENGTH} characters or fewer.")
    with session(engine) as s:
        chat = _chat(s, chat_id)
        chat.title = title
        s.add(chat)
        s.commit()
        return chat


def delete_chat(engine: Engine, chat_id: int) -> Chat:
    """Delete the chat and its messages (the database cascades); returns what was deleted."""
    with session(engine) as s:
        chat = _chat(s, chat_id)
        s.delete(chat)
        s.commit()
        return chat


def branch_chat(engine: Engine, message_id: int) -> Chat:
    """A new chat holding copies of the messages up to and including ``message_id``."""
    with session(engine) as s:
        message = s.get(Message, message_id)
        if message is None:
            raise NotFoundError(
                "That message was deleted, so there is nothing to branch from; pick another message."
            )
        source = _chat(s, message.chat_id)
        query = (
            select(Message)
            .where(Message.chat_id == message.chat_id, Message.position <= message.position)
            .order_by(col(Message.position))
        )
        history = list(s.exec(query))
        branch = Chat(
            character_id=source.character_id,
            group_id=source.group_id,
            title=f"Branch of {display_title(source)} #{len(history)}"[:MAX_TITLE_LENGTH],
            persona_id=source.persona_id,
            st_metadata=dict(source.st_metadata),
            author_note=source.author_note,
            author_note_depth=source.author_note_depth,
            author_note_role=source.author_note_role,
        )
        s.add(branch)
        s.flush()
        assert branch.id is not None
        s.add_all(_copy(m, branch.id, position) for position, m in enumerate(history))
        s.commit()
        return branch


def branch_whole_chat(engine: Engine, chat_id: int) -> Chat:
    """A new chat holding copies of every message of this one (a branch from its last message)."""
    with session(engine) as s:
        _chat(s, chat_id)
        query = select(Message.id).where(Message.chat_id == chat_id).order_by(col(Message.position).desc())
        last = s.exec(query.limit(1)).first()
    if last is None:
        raise ValueError("This chat has no messages yet, so there is nothing to branch from.")
    return branch_chat(engine, last)


def _copy(message: Message, chat_id: int, position: int) -> Message:
    return Message(
        chat_id=chat_id,
        position=position,
        role=message.role,
        swipes=list(message.swipes),
        swipe_index=message.swipe_index,
        swipe_stats=list(message.swipe_stats),
        created_at=message.created_at,
        st_extra=dict(message.st_extra),
        hidden=message.hidden,
        speaker_id=message.speaker_id,
        speaker_name=message.speaker_name,
    )


def search_messages(
    engine: Engine, typed: str, limit: int = SEARCH_LIMIT, marks: tuple[str, str] = MATCH_MARKS
) -> list[SearchHit]:
    """Messages in every chat whose shown text has all the words typed, the best matches first."""
    query = fts_query(typed)
    if query is None:
        return []
    matches = text(
        "SELECT rowid, snippet(message_fts, 0, :open, :close, '…', 16) FROM message_fts "
        "WHERE message_fts MATCH :query ORDER BY rank LIMIT :limit"
    )
    with session(engine) as s:
        found = s.connection().execute(
            matches, {"open": marks[0], "close": marks[1], "query": query, "limit": limit}
        )
        snippets: dict[int, str] = {int(rowid): str(snippet) for rowid, snippet in found}
        rows = s.exec(
            select(Message.id, Chat, Character.name, ChatGroup.name)
            .join(Chat, col(Chat.id) == col(Message.chat_id))
            .outerjoin(Character, col(Character.id) == col(Chat.character_id))
            .outerjoin(ChatGroup, col(ChatGroup.id) == col(Chat.group_id))
            .where(col(Message.id).in_(list(snippets)))
        ).all()
    by_id = {message_id: (chat, name, group) for message_id, chat, name, group in rows}
    hits = []
    for message_id, snippet in snippets.items():  # in rank order
        if message_id not in by_id:
            continue
        chat, name, group = by_id[message_id]
        assert chat.id is not None
        title = display_title(chat)
        hits.append(
            SearchHit(
                message_id, chat.id, title, chat.character_id, name or "", chat.group_id, group or "", snippet
            )
        )
    return hits


def st_chat_for_export(engine: Engine, chat_id: int) -> StChat:
    chat, messages = open_chat(engine, chat_id)
    with session(engine) as s:
        character = s.get(Character, chat.character_id) if chat.character_id is not None else None
        group = s.get(ChatGroup, chat.group_id) if chat.group_id is not None else None
    if group is not None:
        # Each character line names its speaker, as in SillyTavern's group chat files (these rows
        # are copies read for the file; nothing is written back).
        for message in messages:
            if message.role == CHARACTER and message.speaker_name:
                message.st_extra = {**message.st_extra, "name": message.speaker_name}
    return StChat(
        user_name=persona_for_chat(engine, chat_id).name,
        character_name=group.name if group is not None else character.name if character is not None else "",
        created_at=chat.created_at,
        metadata={**chat.st_metadata, **note_to_st(chat)},
        messages=messages,
    )


def save_imported_chat(
    engine: Engine,
    chat: StChat,
    title: str,
    fallback_character_id: int | None,
    group_id: int | None = None,
) -> tuple[Chat, tuple[str, ...]]:
    """Store ``chat`` as a new chat of the group ``group_id`` when given, else of the character
    the file names, else of the group it names (a group chat NEXUS exported), else of the
    fallback character; all its messages in one transaction.  Returns the chat and, in a group,
    the speakers the file names that are not its members."""
    character = _character_named(engine, chat.character_name) if group_id is None else None
    if group_id is not None:
        group: Group | None = get_group(engine, group_id)
    else:
        group = find_group(engine, chat.character_name) if character is None else None
    if group is not None:
        strangers = _speakers_from_names(chat, group)
        return _save_chat(engine, chat, Chat(group_id=group.id, title=title[:MAX_TITLE_LENGTH])), strangers
    if character is None:
        if fallback_character_id is None:
            named = (
                f"No character named {chat.character_name}" if chat.character_name else "The file names none"
            )
            raise LookupError(f"{named}; choose the character to import the chat into.")
        with session(engine) as s:
            character = s.get(Character, fallback_character_id)
        if character is None:
            raise NotFoundError("That character no longer exists; choose another one.")
    row = Chat(character_id=character.id, title=title[:MAX_TITLE_LENGTH])
    return _save_chat(engine, chat, row), ()


def _speakers_from_names(chat: StChat, group: Group) -> tuple[str, ...]:
    """Give each character line of ``chat`` the member of ``group`` it names (any case); returns
    the names no member has, whose lines keep them (as a deleted member's do).  The character
    lines before the user's first are the members' greetings."""
    members = {member.name.lower(): member for member in group.present}
    strangers: list[str] = []
    greeting = True
    for message in chat.messages:
        greeting = greeting and message.role != "user"
        if message.role != CHARACTER:
            continue
        extra = dict(message.st_extra)
        name = str(extra.pop("name", "") or chat.character_name)
        member = members.get(name.lower())
        if member is None and name not in strangers:
            strangers.append(name)
        message.st_extra = extra  # the name lives on as the speaker's; export writes it back
        message.speaker_id = member.character_id if member is not None else None
        message.speaker_name = member.name if member is not None else name
        if greeting:
            message.swipe_stats = [{**(stats or {}), GREETING: True} for stats in message.swipe_stats]
    return tuple(strangers)


def _save_chat(engine: Engine, chat: StChat, row: Chat) -> Chat:
    """``row`` with the file's persona, metadata and author's note, and the file's messages."""
    persona = find_persona(engine, chat.user_name) if chat.user_name.strip() else None
    row.persona_id = persona.id if persona is not None else None
    row.st_metadata = chat.metadata
    row.created_at = chat.created_at or utcnow()
    for name, value in note_from_st(chat.metadata).items():
        setattr(row, name, value)
    with session(engine) as s:
        s.add(row)
        s.flush()
        assert row.id is not None
        s.add_all(_copy(message, row.id, position) for position, message in enumerate(chat.messages))
        s.commit()
        return row


def _character_named(engine: Engine, name: str) -> Character | None:
    """The character with this name, matching case only when there is no exact match."""
    if not name.strip():
        return None
    with session(engine) as s:
        exact = s.exec(select(Character).where(Character.name == name)).first()
        return exact or s.exec(select(Character).where(func.lower(Character.name) == name.lower())).first()


# The service -----------------------------------------------------------------------------------


class ChatHistory:
    def __init__(self, db: AsyncStore, changes: Changes | None = None) -> None:
        self.db = db
        self.changes = changes or Changes()

    @property
    def _engine(self) -> Engine:
        return self.db.store.engine

    def _changed(self, chat: Chat | ChatSummary) -> None:
        self.changes.emit(Change("chats", chat_id=chat.id, character_id=chat.character_id, origin=self))

    async def chats(self, character_id: int | None = None, group_id: int | None = None) -> list[ChatSummary]:
        return await self.db.call(list_chats, self._engine, character_id, group_id=group_id)

    async def summary(self, chat_id: int) -> ChatSummary:
        return await self.db.call(chat_summary, self._engine, chat_id)

    async def open(self, chat_id: int) -> tuple[Chat, list[Message]]:
        return await self.db.call(open_chat, self._engine, chat_id)

    async def rename(self, chat_id: int, title: str) -> Chat:
        chat = await self.db.call(rename_chat, self._engine, chat_id, title)
        self._changed(chat)
        return chat

    async def delete(self, chat_id: int) -> Chat:
        chat = await self.db.call(delete_chat, self._engine, chat_id)
        self._changed(chat)
        return chat

    async def branch(self, message_id: int) -> Chat:
        chat = await self.db.call(branch_chat, self._engine, message_id)
        self._changed(chat)
        return chat

    async def branch_whole(self, chat_id: int) -> Chat:
        chat = await self.db.call(branch_whole_chat, self._engine, chat_id)
        self._changed(chat)
        return chat

    async def search(self, typed: str, limit: int = SEARCH_LIMIT) -> list[SearchHit]:
        return await self.db.call(search_messages, self._engine, typed, limit)

    async def export_st(self, chat_id: int, path: Path) -> int:
        """Write the chat as a SillyTavern chat file; returns how many messages it holds."""
        chat = await self.db.call(st_chat_for_export, self._engine, chat_id)
        return await asyncio.to_thread(write_st_chat, chat, path)

    async def import_st(
        self, path: Path, fallback_character_id: int | None = None, group_id: int | None = None
    ) -> ImportedChat:
        """Import a SillyTavern chat file as a new chat, of the group ``group_id`` when given
        (nothing is saved if any line is bad)."""
        parsed = await asyncio.to_thread(read_st_chat, path)
        row, strangers = await self.db.call(
            save_imported_chat, self._engine, parsed, path.stem, fallback_character_id, group_id
        )
        assert row.id is not None
        summary = await self.summary(row.id)
        self._changed(summary)
        return ImportedChat(summary, parsed.character_name, strangers)
