"""The control plane's tables.  Their DDL lives in ``db/migrations.py`` (``_v4_control``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from nexus_desktop.db.tables import utcnow


class ScheduledTaskState(SQLModel, table=True):
    """One row per task the scheduler knows: its counters survive restarts."""

    __tablename__ = "scheduled_task"

    name: str = Field(primary_key=True)
    owner: str = "nexus"
    """``nexus`` for built-in tasks, else the module that registered it."""
    cadence: str = ""
    """The cadence as written: ``every 15m``, ``daily 03:00``, ``cron */5 * * * *``."""
    state: str = "idle"
    """idle, running, not_implemented or disabled."""
    next_due: datetime | None = None
    last_started: datetime | None = None
    last_finished: datetime | None = None
    last_duration: float | None = None
    last_outcome: str | None = None
    """ok, error, timeout or skipped."""
    last_error: str = ""
    run_count: int = 0
    error_count: int = 0
    timeout_count: int = 0
    skipped_count: int = 0
    updated_at: datetime = Field(default_factory=utcnow)


class TaskRun(SQLModel, table=True):
    """One run (or skip) of a scheduled task: the scheduler timeline."""

    __tablename__ = "task_run"

    id: int | None = Field(default=None, primary_key=True)
    task: str = Field(index=True)
    due_at: datetime | None = None
    started_at: datetime = Field(default_factory=utcnow, index=True)
    finished_at: datetime | None = None
    outcome: str = "running"
    """running, ok, error, timeout or skipped."""
    seconds: float | None = None
    detail: str = ""


class LoopCycle(SQLModel, table=True):
    """The ledger: one row per cycle of the autonomous loop (and per built-in step it ran)."""

    __tablename__ = "loop_cycle"

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(index=True)
    """daily, training_check, eval_sweep or impact_assessment."""
    started_at: datetime = Field(default_factory=utcnow, index=True)
    finished_at: datetime | None = None
    outcome: str = "running"
    """running, ok, partial (some steps failed), failed, or abandoned (the app stopped mid-cycle)."""
    changes: list[Any] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    """What changed, in words: ``["router: promoted job 7", ...]``."""
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    report_path: str | None = None


class ModelCall(SQLModel, table=True):
    """One call to a model, for the Inference dashboard and Prometheus."""

    __tablename__ = "model_call"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    service: str = "chat"
    """chat, training (gate benchmarks) or router."""
    task_type: str = "chat"
    """chat, tool_choice, tool_arguments, routing or gate_benchmark."""
    source: str = "local"
    """local or remote."""
    model: str = ""
    adapter: str = ""
    character: str = ""
    tokens_in: int = 0
    tokens_out: int = 0
    first_token_seconds: float | None = None
    seconds: float = 0.0
    """Latency: request to last token."""
    ok: bool = True


class CharacterPolicy(SQLModel, table=True):
    """A character's governor policy (``control.policy.Policy`` as JSON); no row imposes nothing."""

    __tablename__ = "character_policy"

    character_id: int = Field(primary_key=True, foreign_key="character.id")
    policy: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow)


class BudgetUsage(SQLModel, table=True):
    """Settled usage per character per local day."""

    __tablename__ = "budget_usage"
    __table_args__ = (UniqueConstraint("character", "day"),)

    id: int | None = Field(default=None, primary_key=True)
    character: str = Field(index=True)
    day: str
    """YYYY-MM-DD, local time."""
    tokens: int = 0
    tool_calls: int = 0
    replies: int = 0


class ToolUse(SQLModel, table=True):
    """A tool call that ran, for cooldowns (per character) and prerequisites (per chat)."""

    __tablename__ = "tool_use"

    id: int | None = Field(default=None, primary_key=True)
    character: str = Field(index=True)
    chat_id: int | None = Field(default=None, index=True)
    tool: str
    at: datetime = Field(default_factory=utcnow)
