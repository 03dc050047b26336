"""The routing decisions table.  Its DDL is the ``_v10_route_decisions`` step in
``db/migrations.py``; a test keeps the two in step."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from nexus_desktop.db.tables import utcnow


class RouteRecord(SQLModel, table=True):
    """One routing decision (which source a task ran on, and why) and, once known, its outcome."""

    __tablename__ = "route_decision"

    id: int | None = Field(default=None, primary_key=True)
    task: str = Field(index=True)
    """chat, routing, codegen or judging."""
    source_name: str
    kind: str
    """remote, local or default."""
    reason: str
    warning: str | None = None
    outcome: str | None = None
    """ok or failed; None until the caller records it."""
    detail: str = ""
    """What happened (a failed build's last error), for the record."""
    created_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None
