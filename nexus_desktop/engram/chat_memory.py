"""What the chat asks of Engram: memories for a reply's prompt, and the notes module's tools.

The notes module runs sandboxed in its own process and declares no permissions, so it is given
no way to reach Engram.  The host does the remembering instead, with what the chat already
holds: when a character calls ``notes.remember``, the text the character asked to keep (the
call's own argument, not anything the module sends back) is imprinted in that character's
Engram; when it calls ``notes.recall``, the notes closest in meaning are added to the module's
word matches.  A failure here is logged and the chat goes on without memories.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from nexus_desktop.chat.tools import ToolOutcome
from nexus_desktop.engram.embedder import EmbedderError
from nexus_desktop.engram.service import Engram, MemoryTextError
from nexus_desktop.modules.runtime.protocol import ToolResult

log = logging.getLogger(__name__)

REMEMBER_TOOL = "notes.remember"
RECALL_TOOL = "notes.recall"
NOTES_BY_MEANING = 3
NOTES_HEADING = "Notes close in meaning:"


class ChatMemory:
    def __init__(self, engram: Engram) -> None:
        self.engram = engram

    async def for_prompt(self, character_id: int | None, query: str, count: int) -> list[str]:
        """The ``count`` memories most relevant to ``query`` (the character's and shared ones);
        none when Engram cannot answer: the reply goes on without them."""
        if character_id is None or count <= 0 or not query.strip():
            return []
        try:
            recalled = await self.engram.recall(character_id, query, count)
        except EmbedderError as error:
            log.warning("Memories left out of this reply: %s", error)
            return []
        return [memory.text for memory, _score in recalled]

    async def after_tool(
        self, character_id: int | None, name: str, arguments: Mapping[str, Any], outcome: ToolOutcome
    ) -> ToolOutcome:
        """``outcome`` as the chat should see it after a tool ran successfully."""
        if character_id is None or not outcome.ok or name not in (REMEMBER_TOOL, RECALL_TOOL):
            return outcome
        try:
            if name == REMEMBER_TOOL:
                await self.engram.imprint(character_id, str(arguments.get("text", "")), source="notes")
                return outcome
            return await self._recall_notes(character_id, str(arguments.get("query", "")), outcome)
        except (EmbedderError, MemoryTextError, LookupError) as error:
            log.warning("The notes tool ran, but Engram could not follow it: %s", error)
            return outcome

    async def _recall_notes(self, character_id: int, query: str, outcome: ToolOutcome) -> ToolOutcome:
        if not query.strip():
            return outcome  # the newest notes: the module's own answer says it all
        recalled = await self.engram.recall(character_id, query, NOTES_BY_MEANING, include_shared=False)
        found = [memory.text for memory, _score in recalled if memory.source == "notes"]
        new = [text for text in found if text not in outcome.content]
        if not new:
            return outcome
        lines = "\n".join(f"- {text}" for text in new)
        return ToolResult(
            True, f"{outcome.content}\n{NOTES_HEADING}\n{lines}", seconds=getattr(outcome, "seconds", 0.0)
        )
