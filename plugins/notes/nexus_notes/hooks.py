"""The notes module's hooks: where its file lives (``startup``) and its three tools."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nexus_desktop.modules.hookspecs import hookimpl
from nexus_desktop.modules.specs import ToolSpec
from nexus_notes.store import MAX_NOTE_CHARS, MAX_TAGS, NoteStore

DATA_DIR_ENV = "NEXUS_MODULE_DATA_DIR"
FILE_NAME = "notes.sqlite3"


def default_data_dir() -> Path:
    """The runtime's per-module data folder, else ``<NEXUS data dir>/module-data/notes``.

    Never the module's own folder: writing there would change the files the user approved.
    """
    override = os.environ.get(DATA_DIR_ENV)
    if override:
        return Path(override)
    from nexus_desktop import paths

    return paths.data_dir() / "module-data" / "notes"


class NotesPlugin:
    def __init__(self) -> None:
        self._store: NoteStore | None = None

    @property
    def store(self) -> NoteStore:
        if self._store is None:
            self._store = NoteStore(default_data_dir() / FILE_NAME)
        return self._store

    @hookimpl
    def startup(self, app_info: dict[str, Any]) -> None:
        # The module's own writable folder (the runtime's ``module_dir``; older hosts: ``data_dir``).
        folder = app_info.get("module_dir") or app_info.get("data_dir")
        if folder:
            self._store = NoteStore(Path(folder) / FILE_NAME)

    def remember_note(self, text: str, tags: list[str] | None = None) -> str:
        note = self.store.remember(text, tags)
        return f"Remembered note {note.describe()}"

    def recall_notes(self, query: str = "") -> str:
        notes = self.store.recall(query)
        if not notes:
            return "No notes match that." if query.strip() else "There are no notes yet."
        return "\n".join(note.describe() for note in notes)

    def forget_note(self, id: int) -> str:
        note = self.store.forget(id)
        return f"Forgot note #{note.id}: {note.text}"

    @hookimpl
    def register_tools(self, register: Callable[[ToolSpec], None]) -> None:
        register(
            ToolSpec(
                name="notes.remember",
                description="Remember a fact the user told you, to recall in later chats.",
                parameters={
                    "type": "object",
                    "properties": {
                        "text": {"type": "string", "minLength": 1, "maxLength": MAX_NOTE_CHARS},
                        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": MAX_TAGS},
                    },
                    "required": ["text"],
                    "additionalProperties": False,
                },
                function=self.remember_note,
            )
        )
        register(
            ToolSpec(
                name="notes.recall",
                description="Look up remembered facts by words or tags; empty for the newest notes.",
                parameters={
                    "type": "object",
                    "properties": {"query": {"type": "string", "maxLength": 500}},
                    "additionalProperties": False,
                },
                function=self.recall_notes,
            )
        )
        register(
            ToolSpec(
                name="notes.forget",
                description="Forget a remembered fact by its note number.",
                parameters={
                    "type": "object",
                    "properties": {"id": {"type": "integer", "minimum": 1}},
                    "required": ["id"],
                    "additionalProperties": False,
                },
                function=self.forget_note,
            )
        )


plugin = NotesPlugin()
