"""What crosses the boundary between the app and a module's process, and what callers get back.

The wire format is one JSON object per line.  The host sends requests
``{"id": n, "op": ..., ...}``; the child answers ``{"id": n, "ok": true, "result": ...}`` or
``{"id": n, "ok": false, "error": "..."}`` and may send ``{"event": "refused", "message": ...}``
whenever its audit hook refuses something.  Everything the child sends is untrusted input.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

LOAD_ID = 0


@dataclass(frozen=True)
class RemoteTool:
    """A tool offered by a module running in its own process."""

    name: str
    description: str
    parameters: dict[str, Any]
    """JSON schema of type object."""
    module: str


@dataclass(frozen=True)
class ToolResult:
    ok: bool
    content: str
    error: str | None = None
    """One sentence saying what went wrong, when ``ok`` is False."""
    seconds: float = 0.0


@dataclass(frozen=True)
class RemoteCharacter:
    card: dict[str, Any]
    avatar: bytes | None
    module: str


@dataclass(frozen=True)
class RemoteScheduledTask:
    name: str
    description: str
    interval_seconds: int
    module: str


@dataclass(frozen=True)
class RemotePanel:
    name: str
    title: str
    refresh_seconds: int
    module: str


@dataclass
class ModuleRuntimeStatus:
    """How a module's process is doing, for the module card and ``nexus doctor``."""

    name: str
    state: str = "stopped"
    """running, stopped, failed or quarantined."""
    failures: int = 0
    """Failures in a row since the last success."""
    last_error: str | None = None
    calls: int = 0
    total_seconds: float = 0.0
    pid: int | None = None
    refusals: list[str] = field(default_factory=list)
    """What its audit hook refused most recently (newest last)."""
    interceptor_faults: int = 0
    """Chat interceptor calls it failed, hung in or answered with garbage; each was skipped."""

    @property
    def average_latency_seconds(self) -> float:
        return self.total_seconds / self.calls if self.calls else 0.0
