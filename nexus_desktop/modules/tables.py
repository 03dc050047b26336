"""The module tables.  Their DDL is the ``_v2_modules`` step in ``db/migrations.py``; a test keeps
the two in step."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from nexus_desktop.db.tables import utcnow


class ModuleRecord(SQLModel, table=True):
    """One installed (or bundled, or developer) version of a module and where it stands."""

    __tablename__ = "module"
    __table_args__ = (UniqueConstraint("name", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True)
    version: str
    origin: str
    """built-in, installed or generated: who made it."""
    source: str
    """bundled, user or developer: where it was found (developer mode applies to the last only)."""
    path: str
    state: str
    active: bool = False
    """The version in use; exactly one per name, older ones are kept for rollback."""
    content_hash: str
    approved_hash: str | None = None
    approved_at: datetime | None = None
    approved_access: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    """What the approval dialog listed when the user approved it."""
    last_report: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    failure_count: int = 0
    reason: str = ""
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class ModuleEvent(SQLModel, table=True):
    """Append-only audit log: every state change of every module version, with why."""

    __tablename__ = "module_event"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True)
    version: str
    from_state: str | None
    to_state: str
    reason: str = ""
    at: datetime = Field(default_factory=utcnow)
