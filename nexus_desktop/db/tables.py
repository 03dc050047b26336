"""The database tables.  Their DDL lives in ``migrations.py``; a test keeps the two in step."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, LargeBinary
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class Character(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True)
    # The whole card (CharacterCard.model_dump), so unknown extensions survive untouched.
    card: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    avatar: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    builtin: bool = False
    origin: str = ""
    """Empty for the user's own characters; the module's name for one a module registered."""
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class ChatGroup(SQLModel, table=True):
    """Several characters in one chat (``chat/groups.py``)."""

    __tablename__ = "chat_group"
    id: int | None = Field(default=None, primary_key=True)
    name: str
    turn_order: str = "natural"
    """Who answers the user: "natural", "list" or "manual" (``chat/groups.TURN_ORDERS``)."""
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class GroupMember(SQLModel, table=True):
    __tablename__ = "group_member"
    id: int | None = Field(default=None, primary_key=True)
    group_id: int = Field(foreign_key="chat_group.id", index=True)
    character_id: int | None = Field(default=None, foreign_key="character.id", index=True)
    """None once the character was deleted: the member stays, so the group can say who is gone."""
    name: str
    """The character's name when it was last seen (what "Vega was deleted" says)."""
    position: int
    muted: bool = False


class Chat(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    character_id: int | None = Field(default=None, foreign_key="character.id", index=True)
    """The character this chat is with; None for a group's chat."""
    group_id: int | None = Field(default=None, foreign_key="chat_group.id", index=True)
    """The group this chat belongs to; None for a character's own chat."""
    title: str = ""
    persona_id: int | None = Field(default=None, foreign_key="persona.id", index=True)
    """Who the user speaks as here; None: the default persona."""
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    st_metadata: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    """An imported SillyTavern chat's ``chat_metadata``, given back when it is exported."""
    author_note: str = ""
    """Text put into this chat's prompt ``author_note_depth`` messages from its end (``chat/writing.py``)."""
    author_note_depth: int = 4
    author_note_role: str = "system"


GREETING = "greeting"
"""The key, in a message's swipe stats, that marks a card's greeting (``Message.is_greeting``)."""


class Message(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    chat_id: int = Field(foreign_key="chat.id", index=True)
    position: int
    role: str
    # Alternatives ("swipes") of this message; ``swipe_index`` picks the one shown and sent.
    swipes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    swipe_index: int = 0
    # Generation figures per swipe (tokens/s, context use), None for typed or edited text.
    swipe_stats: list[dict[str, Any] | None] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    created_at: datetime = Field(default_factory=utcnow)
    st_extra: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    """What an imported SillyTavern message carries that NEXUS does not use (``is_system``,
    ``extra``, ``swipe_info``…), given back when the chat is exported."""
    hidden: bool = False
    """Shown in the chat but left out of the prompt (SillyTavern's "hide from context")."""
    speaker_id: int | None = Field(default=None, foreign_key="character.id")
    """The character who wrote this reply (None for the user's, a greeting, or once deleted)."""
    speaker_name: str = ""
    """That character's name when it wrote the reply, shown once the character is gone."""

    __table_args__ = (Index("ix_message_chat_position", "chat_id", "position"),)

    @property
    def content(self) -> str:
        return self.swipes[self.swipe_index] if self.swipes else ""

    @property
    def stats(self) -> dict[str, Any] | None:
        if 0 <= self.swipe_index < len(self.swipe_stats):
            return self.swipe_stats[self.swipe_index]
        return None

    @property
    def is_greeting(self) -> bool:
        """A card's greeting, not a model's reply (nothing to rate or write again): the chat's first
        message, or one whose stats carry ``GREETING`` (the later greetings that open a group chat)."""
        marked = any(isinstance(stats, dict) and stats.get(GREETING) for stats in self.swipe_stats)
        return self.role == "assistant" and (self.position == 0 or marked)


class Persona(SQLModel, table=True):
    """Who the user is in a chat: the name fills {{user}}, the description joins the prompt."""

    id: int | None = Field(default=None, primary_key=True)
    name: str
    description: str = ""
    avatar: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    is_default: bool = False
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class Memory(SQLModel, table=True):
    """A fact a character remembers across chats (``engram``); no character: the shared scope."""

    id: int | None = Field(default=None, primary_key=True)
    character_id: int | None = Field(default=None, foreign_key="character.id", index=True)
    text: str
    embedding: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    """float32 values of unit length, in this machine's byte order."""
    embedding_model: str
    source: str
    """Who imprinted it: "chat", "notes" or "user"."""
    created_at: datetime = Field(default_factory=utcnow)


class Setting(SQLModel, table=True):
    key: str = Field(primary_key=True)
    value: Any = Field(default=None, sa_column=Column(JSON, nullable=True))
