"""Every chat a character has: list, open, rename, delete, branch, search across all of them, and
SillyTavern chat files in and out.

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
from nexus_desktop.chat.personas import find_persona, persona_for_chat
from nexus_desktop.chat.st_chat import StChat, read_st_chat, write_st_chat
from nexus_desktop.chat.writing import note_from_st, note_to_st
from nexus_desktop.db.store import AsyncStore, NotFoundError
from nexus_desktop.db.tables import Character, Chat, Message, utcnow

MAX_TITLE_LENGTH = 200
SEARCH_LIMIT = 50
# Marks around the words a search matched, in ``SearchHit.snippet`` unless the caller picks others.
MATCH_MARKS = ("\x02", "\x03")


@dataclass(frozen=True)
class ChatSummary:
    """One row of the chat list."""

    id: int
    character_id: int
    character_name: str
    title: str
    """The chat's title, or "Chat from <date>" for one never named."""
    created_at: datetime
    updated_at: datetime
    """The last time a message was written, swiped or edited."""
    message_count: int
    preview: str
    """The first line of the newest message."""


@dataclass(frozen=True)
class SearchHit:
    message_id: int
    chat_id: int
    chat_title: str
    character_id: int
    character_name: str
    snippet: str
    """The matched text around the match, the matched words between ``marks``."""


@dataclass(frozen=True)
class ImportedChat:
    chat: ChatSummary
    named_in_file: str
    """The character the file is for ("" when it names none)."""

    def describe(self) -> str:
        """Which character the chat went to, and why: the user chose, or the file said."""
        chat = self.chat
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


def _session(engine: Engine) -> Session:
    return Session(engine, expire_on_commit=False)


# On the database thread ------------------------------------------------------------------------


def list_chats(
    engine: Engine, character_id: int | None = None, *, chat_id: int | None = None
) -> list[ChatSummary]:
    """The character's chats (every chat when None), the most recently written first."""
    shown = func.json_extract(Message.swipes, func.printf("$[%d]", Message.swipe_index))
    count = select(func.count()).where(Message.chat_id == Chat.id).scalar_subquery()
    newest = (
        select(shown)
        .where(Message.chat_id == Chat.id)
        .order_by(col(Message.position).desc())
        .limit(1)
        .scalar_subquery()
    )
    query = select(Chat, Character.name, count, newest).join(
        Character, col(Character.id) == col(Chat.character_id)
    )
    if character_id is not None:
        query = query.where(Chat.character_id == character_id)
    if chat_id is not None:
        query = query.where(Chat.id == chat_id)
    query = query.order_by(col(Chat.updated_at).desc(), col(Chat.id).desc())
    with _session(engine) as s:
        rows = s.exec(query).all()
    return [_summary(chat, name, number, last) for chat, name, number, last in rows]


def _summary(chat: Chat, character_name: str, count: int, newest: object) -> ChatSummary:
    assert chat.id is not None and chat.character_id is not None  # joined with its character
    return ChatSummary(
        id=chat.id,
        character_id=chat.character_id,
        character_name=character_name,
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
    with _session(engine) as s:
        chat = _chat(s, chat_id)
        query = select(Message).where(Message.chat_id == chat_id).order_by(col(Message.position))
        return chat, list(s.exec(query))


def rename_chat(engine: Engine, chat_id: int, title: str) -> Chat:
    title = " ".join(title.split())
    if not title:
        raise ValueError("Give the chat a title; it cannot be empty.")
    if len(title) > MAX_TITLE_LENGTH:
        raise ValueError(f"Keep the chat's title to {MAX_TITLE_LENGTH} characters or fewer.")
    with _session(engine) as s:
        chat = _chat(s, chat_id)
        chat.title = title
        s.add(chat)
        s.commit()
        return chat


def delete_chat(engine: Engine, chat_id: int) -> Chat:
    """Delete the chat and its messages (the database cascades); returns what was deleted."""
    with _session(engine) as s:
        chat = _chat(s, chat_id)
        s.delete(chat)
        s.commit()
        return chat


def branch_chat(engine: Engine, message_id: int) -> Chat:
    """A new chat holding copies of the messages up to and including ``message_id``."""
    with _session(engine) as s:
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
    with _session(engine) as s:
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
    with _session(engine) as s:
        found = s.connection().execute(
            matches, {"open": marks[0], "close": marks[1], "query": query, "limit": limit}
        )
        snippets: dict[int, str] = {int(rowid): str(snippet) for rowid, snippet in found}
        rows = s.exec(
            select(Message.id, Chat, Character.name)
            .join(Chat, col(Chat.id) == col(Message.chat_id))
            .join(Character, col(Character.id) == col(Chat.character_id))
            .where(col(Message.id).in_(list(snippets)))
        ).all()
    by_id = {message_id: (chat, name) for message_id, chat, name in rows}
    hits = []
    for message_id, snippet in snippets.items():  # in rank order
        if message_id not in by_id:
            continue
        chat, name = by_id[message_id]
        assert chat.id is not None and chat.character_id is not None  # joined with its character
        hits.append(SearchHit(message_id, chat.id, display_title(chat), chat.character_id, name, snippet))
    return hits


def st_chat_for_export(engine: Engine, chat_id: int) -> StChat:
    chat, messages = open_chat(engine, chat_id)
    with _session(engine) as s:
        character = s.get(Character, chat.character_id)
    return StChat(
        user_name=persona_for_chat(engine, chat_id).name,
        character_name=character.name if character is not None else "",
        created_at=chat.created_at,
        metadata={**chat.st_metadata, **note_to_st(chat)},
        messages=messages,
    )


def save_imported_chat(engine: Engine, chat: StChat, title: str, fallback_character_id: int | None) -> Chat:
    """Store ``chat`` as a new chat of the character the file names, else of the fallback; all its
    messages in one transaction."""
    character = _character_named(engine, chat.character_name)
    if character is None and fallback_character_id is None:
        named = f"No character named {chat.character_name}" if chat.character_name else "The file names none"
        raise LookupError(f"{named}; choose the character to import the chat into.")
    persona = find_persona(engine, chat.user_name) if chat.user_name.strip() else None
    with _session(engine) as s:
        if character is None:
            assert fallback_character_id is not None
            character = s.get(Character, fallback_character_id)
            if character is None:
                raise NotFoundError("That character no longer exists; choose another one.")
        assert character.id is not None
        row = Chat(
            character_id=character.id,
            title=title[:MAX_TITLE_LENGTH],
            persona_id=persona.id if persona is not None else None,
            st_metadata=chat.metadata,
            created_at=chat.created_at or utcnow(),
            **note_from_st(chat.metadata),
        )
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
    with _session(engine) as s:
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

    async def chats(self, character_id: int | None = None) -> list[ChatSummary]:
        return await self.db.call(list_chats, self._engine, character_id)

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

    async def import_st(self, path: Path, fallback_character_id: int | None = None) -> ImportedChat:
        """Import a SillyTavern chat file as a new chat (nothing is saved if any line is bad)."""
        parsed = await asyncio.to_thread(read_st_chat, path)
        row = await self.db.call(save_imported_chat, self._engine, parsed, path.stem, fallback_character_id)
        assert row.id is not None
        summary = await self.summary(row.id)
        self._changed(summary)
        return ImportedChat(summary, parsed.character_name)
