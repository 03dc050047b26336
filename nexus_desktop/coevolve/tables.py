"""The module template versions table.  Its DDL is the ``_v11_module_templates`` step in
``db/migrations.py``; a test keeps the two in step."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from nexus_desktop.db.tables import utcnow


class ModuleTemplate(SQLModel, table=True):
    """A template version co-evolution made from ``parent``, whether it was kept, and why."""

    __tablename__ = "module_template"

    version: str = Field(primary_key=True)
    parent: str
    category: str
    """The failure category its advice is aimed at (pagination, auth_refresh, ...)."""
    hint: str
    """The advice it adds to its parent's rules."""
    plan_system: str
    generate_system: str
    skeleton: str
    rules: str
    kept: bool = False
    parent_ok: int = 0
    """Curriculum requests the parent passed in the trial."""
    candidate_ok: int = 0
    """Curriculum requests this version passed in the same trial."""
    trials: int = 0
    """How many curriculum requests the trial built with each."""
    reason: str = ""
    created_at: datetime = Field(default_factory=utcnow)
