"""Engram on the bus: ``engram.imprint`` and ``engram.recall`` as Axons, so a worker (another
process or PC) can serve memory, or the app can be asked for it, by the same contract as models.

Inputs are checked by the Axon (pydantic) before Engram sees them; a refused text is
``bad_input`` and an embedding failure is ``failed``, each with Engram's own sentence.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from nexus_desktop.bus.axon import Axon, JsonDict, TaskContext, TaskError
from nexus_desktop.engram.embedder import EmbedderError
from nexus_desktop.engram.service import MAX_MEMORY_CHARS, Engram, MemoryTextError

IMPRINT_NEURON = "engram.imprint"
RECALL_NEURON = "engram.recall"


class ImprintInput(BaseModel):
    character_id: int | None = None
    text: str = Field(min_length=1, max_length=MAX_MEMORY_CHARS)
    shared: bool = False
    source: Literal["chat", "notes", "user"] = "chat"


class RecallInput(BaseModel):
    character_id: int | None = None
    """None: the shared memories only."""
    query: str = Field(min_length=1, max_length=MAX_MEMORY_CHARS)
    k: int = Field(default=4, ge=1, le=32)
    include_shared: bool = True


def engram_axons(engram: Engram) -> list[Axon]:
    """The Axons a Dendrite registers to serve ``engram``'s memory."""

    async def imprint(data: JsonDict, _context: TaskContext) -> JsonDict:
        try:
            memory = await engram.imprint(
                data["character_id"], data["text"], shared=data["shared"], source=data["source"]
            )
        except (MemoryTextError, LookupError, ValueError) as error:
            raise TaskError("bad_input", str(error)) from None
        except EmbedderError as error:
            raise TaskError("failed", str(error)) from None
        return {"id": memory.id, "character_id": memory.character_id, "text": memory.text}

    async def recall(data: JsonDict, _context: TaskContext) -> JsonDict:
        try:
            found = await engram.recall(
                data["character_id"], data["query"], data["k"], include_shared=data["include_shared"]
            )
        except EmbedderError as error:
            raise TaskError("failed", str(error)) from None
        return {
            "memories": [
                {
                    "id": memory.id,
                    "character_id": memory.character_id,
                    "text": memory.text,
                    "source": memory.source,
                    "score": round(score, 4),
                }
                for memory, score in found
            ]
        }

    return [
        Axon(IMPRINT_NEURON, imprint, capabilities=("memory",), validate=ImprintInput),
        Axon(RECALL_NEURON, recall, capabilities=("memory",), validate=RecallInput),
    ]
