"""Engram: what characters remember across chats.

``imprint`` stores a fact with its embedding; ``recall`` finds the facts closest in meaning to a
query, in one character's scope and (by default) the shared one; ``forget`` deletes one; ``list``
shows a scope.  Every write is announced as ``Change("memories", character_id=...)`` so views
refresh.  Database work runs on the database thread and embeddings in their own process
(``embedder``): nothing here blocks the event loop.
"""

from __future__ import annotations

import builtins
import logging

from nexus_desktop.changes import Change, Changes
from nexus_desktop.db.store import AsyncStore
from nexus_desktop.db.tables import Memory
from nexus_desktop.engram import store
from nexus_desktop.engram.embedder import Embedder, EmbedderError

log = logging.getLogger(__name__)

MAX_MEMORY_CHARS = 2000
"""A memory is a fact, not a document; longer text would be cut by the embedder anyway."""
DEFAULT_RECALL = 4


class MemoryTextError(ValueError):
    """The text cannot be a memory; ``str()`` says what to do."""


def clean_text(text: str) -> str:
    text = " ".join(text.split())
    if not text:
        raise MemoryTextError("The memory is empty; write the fact to remember.")
    if len(text) > MAX_MEMORY_CHARS:
        raise MemoryTextError(
            f"The memory is over {MAX_MEMORY_CHARS} characters; keep it to the fact itself."
        )
    return text


class Engram:
    def __init__(self, db: AsyncStore, changes: Changes, embedder: Embedder) -> None:
        self.db = db
        self.changes = changes
        self.embedder = embedder

    async def imprint(
        self, character_id: int | None, text: str, *, shared: bool = False, source: str = "user"
    ) -> Memory:
        """Remember ``text`` for ``character_id`` (``shared``: for every character).

        Raises ``MemoryTextError`` for empty or over-long text, ``LookupError`` for an unknown
        character and ``EmbedderError`` when no embedding could be made (nothing is stored)."""
        if source not in store.SOURCES:
            raise ValueError(f"Unknown memory source {source!r}; use one of {', '.join(store.SOURCES)}.")
        if character_id is None and not shared:
            raise ValueError(
                "A memory belongs to a character or is shared; name the character or pass shared=True."
            )
        text = clean_text(text)
        (vector,) = await self.embedder.embed([text])
        memory = Memory(
            character_id=None if shared else character_id,
            text=text,
            embedding=store.to_bytes(vector),
            embedding_model=self.embedder.model_name,
            source=source,
        )
        saved = await self.db.call(store.add, self.db.store.engine, memory)
        self.changes.emit(Change("memories", character_id=saved.character_id))
        return saved

    async def recall(
        self, character_id: int | None, query: str, k: int = DEFAULT_RECALL, *, include_shared: bool = True
    ) -> builtins.list[tuple[Memory, float]]:
        """The ``k`` memories closest in meaning to ``query`` with their cosine similarity, closest
        first: ``character_id``'s own and, with ``include_shared``, the shared ones.  Never another
        character's.  Raises ``EmbedderError`` when the query could not be embedded."""
        if k <= 0 or not query.strip():
            return []
        memories = await self.db.call(
            store.scope, self.db.store.engine, character_id, include_shared=include_shared
        )
        if not memories:
            return []
        stale = [m for m in memories if m.embedding_model != self.embedder.model_name]
        vectors = await self.embedder.embed([query.strip()[:MAX_MEMORY_CHARS], *(m.text for m in stale)])
        if stale:
            # Made by another model: vectors of two models mean nothing side by side, so re-embed.
            fresh = {
                m.id: store.to_bytes(v) for m, v in zip(stale, vectors[1:], strict=True) if m.id is not None
            }
            await self.db.call(
                store.replace_embeddings, self.db.store.engine, fresh, self.embedder.model_name
            )
            for memory in stale:
                if memory.id in fresh:
                    memory.embedding, memory.embedding_model = fresh[memory.id], self.embedder.model_name
        return store.rank(vectors[0], memories, k)

    async def forget(self, memory_id: int) -> Memory:
        """Delete a memory; raises ``MemoryNotFoundError`` when there is none with that id."""
        gone = await self.db.call(store.delete, self.db.store.engine, memory_id)
        self.changes.emit(Change("memories", character_id=gone.character_id))
        return gone

    async def list(self, character_id: int | None, *, include_shared: bool = True) -> builtins.list[Memory]:
        """A character's memories and (``include_shared``) the shared ones, oldest first;
        ``character_id`` None: the shared ones only."""
        return await self.db.call(
            store.scope, self.db.store.engine, character_id, include_shared=include_shared
        )

    async def aclose(self) -> None:
        await self.embedder.aclose()


__all__ = ["Embedder", "EmbedderError", "Engram", "MemoryTextError"]
