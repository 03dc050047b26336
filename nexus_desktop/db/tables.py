"""The database tables.  Their DDL lives in ``migrations.py``; a test keeps the two in step."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, LargeBinary
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


class Chat(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    character_id: int = Field(foreign_key="character.id", index=True)
    title: str = ""
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


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

    @property
    def content(self) -> str:
        return self.swipes[self.swipe_index] if self.swipes else ""

    @property
    def stats(self) -> dict[str, Any] | None:
        if 0 <= self.swipe_index < len(self.swipe_stats):
            return self.swipe_stats[self.swipe_index]
        return None


class Setting(SQLModel, table=True):
    key: str = Field(primary_key=True)
    value: Any = Field(default=None, sa_column=Column(JSON, nullable=True))
