"""Features of NEXUS itself, offered through the same hooks as modules (datasette's DEFAULT_PLUGINS).

These are part of the app, so they need no approval and ``NEXUS_LOAD_MODULES`` does not turn
them off; they show module authors the hooks in use.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from nexus_desktop.modules.hookspecs import hookimpl
from nexus_desktop.modules.specs import ToolSpec

PLUGIN_NAME = "nexus.builtin"


def current_time() -> str:
    """The local date and time, e.g. ``Tuesday 2025-01-07 14:03 (UTC+01:00)``."""
    now = datetime.now().astimezone()
    offset = now.strftime("%z")
    return f"{now:%A %Y-%m-%d %H:%M} (UTC{offset[:3]}:{offset[3:]})"


@hookimpl
def register_tools(register: Callable[[ToolSpec], None]) -> None:
    register(
        ToolSpec(
            name="nexus.clock",
            description="Tell the current local date and time.",
            parameters={"type": "object", "properties": {}, "additionalProperties": False},
            function=current_time,
        )
    )


@hookimpl
def register_characters(register: Callable[..., None]) -> None:
    # Imported here: reading the bundled cards decodes PNGs, which only this hook needs.
    from nexus_desktop.cards.defaults import default_cards

    for card, avatar in default_cards():
        register(card, avatar=avatar)
