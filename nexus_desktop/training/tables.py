"""The training tables.  Their DDL is the ``_v3_training`` step in ``db/migrations.py``; a test keeps
the two in step."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from nexus_desktop.db.tables import utcnow


class TrainingExample(SQLModel, table=True):
    """One collected example: SFT messages, a preference pair or a labelled text."""

    __tablename__ = "training_example"

    id: int | None = Field(default=None, primary_key=True)
    dataset: str = Field(index=True)
    kind: str
    """sft, preference or classification."""
    signal: str
    """What produced it: thumbs_up, edit, swipe, route_corrected, ..."""
    content_hash: str = Field(unique=True)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class TrainingJob(SQLModel, table=True):
    __tablename__ = "training_job"

    id: int | None = Field(default=None, primary_key=True)
    model_id: str = Field(index=True)
    state: str = Field(index=True)
    job_dir: str
    log_path: str
    progress: float = 0.0
    step: int = 0
    total: int = 0
    loss: float | None = None
    best_loss: float | None = None
    eval_loss: float | None = None
    device: str = ""
    pid: int | None = None
    pid_started: float | None = None
    """The trainer's process start time, so a recycled pid is never mistaken for it."""
    checkpoint: str | None = None
    adapter_dir: str | None = None
    gguf_adapter: str | None = None
    verified: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    error: str = ""
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None


class TrainingStep(SQLModel, table=True):
    """One point of a job's loss curve."""

    __tablename__ = "training_step"
    __table_args__ = (UniqueConstraint("job_id", "step"),)

    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="training_job.id", index=True)
    step: int
    loss: float | None = None
    eval_loss: float | None = None
    lr: float | None = None
    tokens_per_second: float | None = None


class GateDecisionRecord(SQLModel, table=True):
    """Append-only: every gate decision with all the numbers it was based on."""

    __tablename__ = "gate_decision"

    id: int | None = Field(default=None, primary_key=True)
    model_id: str = Field(index=True)
    job_id: int | None = None
    candidate: str
    policy: str
    promote: bool
    reason: str
    numbers: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    at: datetime = Field(default_factory=utcnow)


class AdapterEvent(SQLModel, table=True):
    """Append-only: every promotion and rollback; the active adapter is the result of replaying them."""

    __tablename__ = "adapter_event"

    id: int | None = Field(default=None, primary_key=True)
    model_id: str = Field(index=True)
    action: str
    """promote or rollback."""
    adapter_path: str | None = None
    """The adapter active after this event; None means the base model alone."""
    job_id: int | None = None
    decision_id: int | None = None
    override: bool = False
    """A person chose this, not the gate."""
    reason: str = ""
    at: datetime = Field(default_factory=utcnow)
