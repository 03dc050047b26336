"""Notes in a SQLite file: remember, recall by words or tags, forget by number."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

MAX_NOTE_CHARS = 2000
MAX_TAGS = 10
RECALL_LIMIT = 10
# Words that would match nearly every note and say nothing about what is asked for.
_STOPWORDS = frozenset(
    {
        *("a", "an", "the", "is", "are", "was", "were", "be", "my", "me", "i", "you", "your"),
        *("what", "who", "where", "when", "how", "do", "does", "did", "to", "of", "in", "on", "at"),
        *("for", "and", "or", "about", "remember", "recall", "note", "notes", "that", "this", "it"),
    }
)


class NoteError(ValueError):
    """A note request that cannot be done; ``str()`` says why and what to do."""


@dataclass(frozen=True)
class Note:
    id: int
    text: str
    tags: tuple[str, ...]
    created_at: str

    def describe(self) -> str:
        tags = f" [{', '.join(self.tags)}]" if self.tags else ""
        return f"#{self.id}: {self.text}{tags}"


class NoteStore:
    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # One short connection per call: tools run on worker threads and SQLite connections
        # must not cross threads.
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, timeout=10)
        try:
            connection.execute(
                "CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY AUTOINCREMENT, "
                "text TEXT NOT NULL, tags TEXT NOT NULL DEFAULT '', created_at TEXT NOT NULL)"
            )
            with connection:
                yield connection
        finally:
            connection.close()

    def remember(self, text: str, tags: list[str] | None = None) -> Note:
        text = " ".join(text.split())
        if not text:
            raise NoteError("The note is empty; say what to remember.")
        if len(text) > MAX_NOTE_CHARS:
            raise NoteError(f"The note is over {MAX_NOTE_CHARS} characters; keep it to the fact itself.")
        clean_tags = tuple(dict.fromkeys(tag.strip().lower() for tag in tags or [] if tag.strip()))
        if len(clean_tags) > MAX_TAGS:
            raise NoteError(f"A note takes at most {MAX_TAGS} tags.")
        created = datetime.now(UTC).isoformat(timespec="seconds")
        with self._connect() as db:
            cursor = db.execute(
                "INSERT INTO notes (text, tags, created_at) VALUES (?, ?, ?)",
                (text, ",".join(clean_tags), created),
            )
            assert cursor.lastrowid is not None
            return Note(cursor.lastrowid, text, clean_tags, created)

    def recall(self, query: str = "", limit: int = RECALL_LIMIT) -> list[Note]:
        """Notes sharing the most words (or tags) with ``query``; the newest first when it is empty."""
        with self._connect() as db:
            rows = db.execute("SELECT id, text, tags, created_at FROM notes ORDER BY id DESC").fetchall()
        notes = [Note(row[0], row[1], tuple(t for t in row[2].split(",") if t), row[3]) for row in rows]
        words = {word for word in re.findall(r"\w+", query.lower()) if word not in _STOPWORDS}
        if not words:
            return notes[:limit]
        scored = []
        for note in notes:
            haystack = set(re.findall(r"\w+", note.text.lower())) | set(note.tags)
            # A word also matches its plural or a longer form ("cat" finds "cats").
            score = sum(1 for word in words if any(token.startswith(word) for token in haystack))
            if score:
                scored.append((score, note.id, note))
        scored.sort(key=lambda item: (item[0], item[1]), reverse=True)
        return [note for _, _, note in scored[:limit]]

    def forget(self, note_id: int) -> Note:
        with self._connect() as db:
            row = db.execute(
                "SELECT id, text, tags, created_at FROM notes WHERE id = ?", (note_id,)
            ).fetchone()
            if row is None:
                raise NoteError(f"There is no note #{note_id}; recall notes to see their numbers.")
            db.execute("DELETE FROM notes WHERE id = ?", (note_id,))
        return Note(row[0], row[1], tuple(t for t in row[2].split(",") if t), row[3])
