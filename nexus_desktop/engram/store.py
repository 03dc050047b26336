"""The ``memory`` table's reads and writes, and ranking by cosine similarity.

Plain functions on an engine: ``service.Engram`` runs them on the database thread
(``AsyncStore.call``).  Vectors are kept as float32 bytes of unit length, so cosine similarity is
their dot product.
"""

from __future__ import annotations

import array
import operator
from collections.abc import Iterable, Sequence

from sqlalchemy import ColumnElement, Engine, or_
from sqlmodel import col, select

from nexus_desktop.db.engine import session
from nexus_desktop.db.tables import Character, Memory

SOURCES = ("chat", "notes", "user")
"""Who imprints memories: a chat, the notes module, or the user (editor, CLI)."""


class MemoryNotFoundError(LookupError):
    def __init__(self, memory_id: int) -> None:
        super().__init__(
            f"There is no memory #{memory_id}; list a character's memories to see their numbers."
        )


def to_bytes(vector: array.array) -> bytes:  # type: ignore[type-arg]
    return array.array("f", vector).tobytes()


def from_bytes(data: bytes) -> array.array:  # type: ignore[type-arg]
    vector = array.array("f")
    vector.frombytes(data)
    return vector


def similarity(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine similarity of two unit vectors."""
    return float(sum(map(operator.mul, a, b)))


def rank(query: Sequence[float], memories: Iterable[Memory], k: int) -> list[tuple[Memory, float]]:
    """The ``k`` memories closest in meaning to ``query``, closest first."""
    scored = [(memory, similarity(query, from_bytes(memory.embedding))) for memory in memories]
    scored.sort(key=lambda pair: pair[1], reverse=True)
    return scored[: max(0, k)]


def add(engine: Engine, memory: Memory) -> Memory:
    with session(engine) as db:
        if memory.character_id is not None and db.get(Character, memory.character_id) is None:
            raise LookupError(f"There is no character #{memory.character_id}; pick one from the list.")
        db.add(memory)
        db.commit()
        db.refresh(memory)
        return memory


def delete(engine: Engine, memory_id: int) -> Memory:
    with session(engine) as db:
        memory = db.get(Memory, memory_id)
        if memory is None:
            raise MemoryNotFoundError(memory_id)
        db.delete(memory)
        db.commit()
        return memory


def scope(engine: Engine, character_id: int | None, *, include_shared: bool = True) -> list[Memory]:
    """A character's memories (None: only the shared ones), and the shared ones when asked; oldest first."""
    condition: ColumnElement[bool]
    if character_id is None:
        condition = col(Memory.character_id).is_(None)
    elif include_shared:
        condition = or_(col(Memory.character_id) == character_id, col(Memory.character_id).is_(None))
    else:
        condition = col(Memory.character_id) == character_id
    with session(engine) as db:
        return list(db.exec(select(Memory).where(condition).order_by(col(Memory.id))).all())


def replace_embeddings(engine: Engine, vectors: dict[int, bytes], model_name: str) -> None:
    """Store new vectors for memories made with another model (see ``Engram.recall``)."""
    with session(engine) as db:
        for memory_id, data in vectors.items():
            memory = db.get(Memory, memory_id)
            if memory is not None:
                memory.embedding, memory.embedding_model = data, model_name
                db.add(memory)
        db.commit()
