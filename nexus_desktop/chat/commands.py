"""Commands the user types to call a tool directly, e.g. ``/roll 2d6``: no model involved."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from nexus_desktop.chat.tools import ToolCall, ToolInfo


def find_command_tool(word: str, tools: Sequence[ToolInfo]) -> ToolInfo | None:
    """The tool ``/word`` means: its full name, the part after the last dot (``/roll`` for
    ``dice.roll``), or a module's name when that module has one tool (``/weather``).
    An ambiguous word matches nothing, so the full name is needed."""
    word = word.lower()
    for rule in (
        lambda tool: tool.name == word,
        lambda tool: tool.name.rsplit(".", 1)[-1] == word,
        lambda tool: tool.name.split(".", 1)[0] == word,
    ):
        matches = [tool for tool in tools if rule(tool)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            return None
    return None


def parse_command(text: str, tools: Sequence[ToolInfo]) -> ToolCall | None:
    """``/roll 2d6`` as a call of ``dice.roll``; None when the text is not a command for a tool.

    What follows the command fills the tool's first required argument (or first argument): a
    JSON object is taken as the arguments themselves, a list argument is split at commas.
    """
    stripped = text.strip()
    if not stripped.startswith("/") or len(stripped) < 2:
        return None
    word, _, rest = stripped[1:].partition(" ")
    tool = find_command_tool(word, tools)
    if tool is None:
        return None
    rest = rest.strip()
    if rest.startswith("{"):
        try:
            given = json.loads(rest)
        except json.JSONDecodeError:
            given = None
        if isinstance(given, dict):
            return ToolCall(tool.name, given, "command")
    properties: Mapping[str, Any] = tool.parameters.get("properties", {})
    required = [name for name in tool.parameters.get("required", []) if name in properties]
    target = required[0] if required else next(iter(properties), None)
    if not rest or target is None:
        return ToolCall(tool.name, {}, "command")
    return ToolCall(tool.name, {target: _coerce(rest, properties[target])}, "command")


def _coerce(text: str, schema: Mapping[str, Any]) -> Any:
    """``text`` as the type ``schema`` asks for; left as text when it is not, so the check says why."""
    kind = schema.get("type")
    try:
        if kind == "integer":
            return int(text)
        if kind == "number":
            return float(text)
    except ValueError:
        return text
    if kind == "boolean" and text.lower() in ("yes", "no", "true", "false", "on", "off"):
        return text.lower() in ("yes", "true", "on")
    if kind == "array":
        parts = text.split(",") if "," in text else text.split()
        return [part.strip() for part in parts if part.strip()]
    return text
