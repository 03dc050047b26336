"""Provider routing: which model source each kind of work runs on, decided in one place.

``TaskRouter`` (``core.task_router``) picks a source per task type (chat, routing, codegen,
judging) among the remote OpenAI-compatible server, the user's local GGUF models and the bundled
default; each decision and its outcome is persisted, and the measured success rates feed the
next decision.  Qt-free.
"""

from nexus_desktop.providers.decision import (
    TASK_TYPES,
    RouteDecision,
    SourceKind,
    SourceRate,
    TaskType,
    UnknownSourceError,
)
from nexus_desktop.providers.router import TaskRouter

__all__ = [
    "TASK_TYPES",
    "RouteDecision",
    "SourceKind",
    "SourceRate",
    "TaskRouter",
    "TaskType",
    "UnknownSourceError",
]
