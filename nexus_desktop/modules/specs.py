"""What modules hand to the registration hooks: plain, Qt-free data plus a callable.

Each spec checks itself on construction, so a module that registers nonsense fails at its
own ``register(...)`` call with a sentence naming the field, not later inside the chat.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*(?:[.-][a-z0-9_]+)*$")
MAX_NAME_CHARS = 64
# A scheduled task more often than this is a busy loop that would drain a laptop's battery.
MIN_INTERVAL_SECONDS = 60


class SpecError(ValueError):
    """A registration a module made is malformed; ``str()`` names the field and the fix."""


def _check_name(kind: str, name: str) -> None:
    if not (isinstance(name, str) and len(name) <= MAX_NAME_CHARS and NAME_PATTERN.fullmatch(name)):
        raise SpecError(
            f"The {kind} name {name!r} is not allowed; use up to {MAX_NAME_CHARS} lowercase letters, "
            "digits, '_', '.' or '-', starting with a letter."
        )


@dataclass(frozen=True)
class ToolSpec:
    """A tool a character can call: its JSON-schema parameters and the function that runs it."""

    name: str
    description: str
    parameters: Mapping[str, Any]
    """A JSON schema of ``type: object``; the model's arguments are checked against it."""
    function: Callable[..., Any]

    def __post_init__(self) -> None:
        _check_name("tool", self.name)
        if not self.description.strip():
            raise SpecError(f"The tool {self.name!r} has no description; say in one line what it does.")
        if not isinstance(self.parameters, Mapping) or self.parameters.get("type") != "object":
            raise SpecError(
                f"The tool {self.name!r} has parameters that are not a JSON schema of type 'object'; "
                'use {"type": "object", "properties": {...}}.'
            )
        if not callable(self.function):
            raise SpecError(f"The tool {self.name!r} has no callable function; pass the function itself.")


@dataclass(frozen=True)
class ScheduledTaskSpec:
    """Work a module wants run every ``interval_seconds``, off the UI thread."""

    name: str
    description: str
    interval_seconds: int
    function: Callable[[], Any]

    def __post_init__(self) -> None:
        _check_name("scheduled task", self.name)
        if not isinstance(self.interval_seconds, int) or self.interval_seconds < MIN_INTERVAL_SECONDS:
            raise SpecError(
                f"The scheduled task {self.name!r} runs every {self.interval_seconds!r} seconds; "
                f"use a whole number of at least {MIN_INTERVAL_SECONDS}."
            )
        if not callable(self.function):
            raise SpecError(f"The scheduled task {self.name!r} has no callable function; pass the function.")


@dataclass(frozen=True)
class DashboardPanelSpec:
    """A dashboard panel.  ``render`` returns data (markdown text or label -> value), never widgets,
    so a panel can be drawn by the UI while its module runs in another process."""

    name: str
    title: str
    render: Callable[[], str | Mapping[str, str | int | float]]
    refresh_seconds: int = 60

    def __post_init__(self) -> None:
        _check_name("dashboard panel", self.name)
        if not self.title.strip():
            raise SpecError(f"The dashboard panel {self.name!r} has no title; give it a short one.")
        if not isinstance(self.refresh_seconds, int) or self.refresh_seconds < 1:
            raise SpecError(
                f"The dashboard panel {self.name!r} refreshes every {self.refresh_seconds!r} seconds; "
                "use a whole number of at least 1."
            )
        if not callable(self.render):
            raise SpecError(f"The dashboard panel {self.name!r} has no callable render; pass the function.")


@dataclass(frozen=True)
class MessageContext:
    """Where a message belongs; plain data so it can cross a process boundary."""

    chat_id: int | None = None
    character_id: int | None = None
    character_name: str = ""
    user_name: str = "User"
    """The chat's persona name (what {{user}} reads); SillyTavern's "User" when not given."""
    extra: Mapping[str, Any] = field(default_factory=dict)
