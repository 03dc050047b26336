"""What a module's process says it offers once loaded, read defensively.

The load reply comes from untrusted code: anything malformed is dropped rather than trusted, and a
module can only claim the hooks its (approved) manifest declares.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from nexus_desktop.modules.runtime.protocol import (
    RemoteCharacter,
    RemotePanel,
    RemoteScheduledTask,
    RemoteTool,
)


@dataclass(frozen=True)
class Registrations:
    hooks: frozenset[str]
    tools: list[RemoteTool]
    characters: list[RemoteCharacter]
    tasks: list[RemoteScheduledTask]
    panels: list[RemotePanel]


def read_registrations(module: str, declared_hooks: Iterable[str], result: Any) -> Registrations:
    data = result if isinstance(result, dict) else {}
    hooks = frozenset(str(h) for h in data.get("hooks", ()) if isinstance(h, str)) & frozenset(declared_hooks)
    tools = [
        RemoteTool(str(t["name"]), str(t.get("description", "")), dict(t["parameters"]), module)
        for t in _dicts(data.get("tools"))
        if isinstance(t.get("name"), str) and isinstance(t.get("parameters"), dict)
    ]
    characters = [
        RemoteCharacter(dict(c["card"]), _b64(c.get("avatar")), module)
        for c in _dicts(data.get("characters"))
        if isinstance(c.get("card"), dict)
    ]
    tasks = [
        RemoteScheduledTask(str(t["name"]), str(t.get("description", "")), int(t["interval_seconds"]), module)
        for t in _dicts(data.get("tasks"))
        if isinstance(t.get("interval_seconds"), int)
    ]
    panels = [
        RemotePanel(str(p["name"]), str(p.get("title", "")), int(p.get("refresh_seconds", 60)), module)
        for p in _dicts(data.get("panels"))
    ]
    return Registrations(hooks, tools, characters, tasks, panels)


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _b64(value: Any) -> bytes | None:
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        return None
