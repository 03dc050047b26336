"""The module builder's tables.  Their DDL is the ``_v9_module_builds`` step in
``db/migrations.py``; a test keeps the two in step."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from nexus_desktop.db.tables import utcnow


class ModuleBuild(SQLModel, table=True):
    """One "build me X" request and where its build stands."""

    __tablename__ = "module_build"

    id: int | None = Field(default=None, primary_key=True)
    description: str
    status: str = Field(index=True)
    """refused, planning, generating, validating, repairing, awaiting_approval or failed."""
    reason: str = ""
    """Why it was refused or failed (one line); empty otherwise."""
    module_name: str = ""
    template_version: str
    source_name: str = ""
    """Where the code was generated ("remote: gpt-4o"), from the task router's decision."""
    decision_id: int | None = None
    chat_id: int | None = Field(default=None, foreign_key="chat.id", index=True)
    plan: str = ""
    staging_path: str = ""
    """The folder the last round's files were written to (kept for inspection)."""
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None


class ModuleBuildRound(SQLModel, table=True):
    """One generate (or repair) round: what was asked, what came back, and what the tests said."""

    __tablename__ = "module_build_round"
    __table_args__ = (UniqueConstraint("build_id", "round_no"),)

    id: int | None = Field(default=None, primary_key=True)
    build_id: int = Field(foreign_key="module_build.id", index=True)
    round_no: int
    """1 is the first generation; 2..4 are the repair rounds."""
    kind: str
    """generate, repair (the conversation goes on) or fresh (only the spec and the last error)."""
    prompt: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    output: str = ""
    files: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    parse_error: str = ""
    diff: str = ""
    """Unified diff against the previous round's files (the whole files in round 1)."""
    test_report: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    passed: bool = False
    started_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None
