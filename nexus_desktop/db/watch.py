"""Notice writes another process made (``nexus chat`` beside the open window) and announce them.

About once a second the watcher asks SQLite for ``PRAGMA data_version`` on a connection of its
own, on the database thread: a number that moves whenever any other connection commits, and
costs next to nothing when nothing did.  When it moved, a few small queries say what changed,
and it emits ``Change("characters")``, ``Change("chats")``, ``Change("personas")``, ``Change("groups")`` or
``Change("messages", chat_id)`` for the views to refresh.  The app's own writes move the number
too; the views leave what they show alone when nothing differs, but the open chat reads all its
messages to tell, which in a very long chat is the costly part (see the note on issue 12).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from typing import Any

from nexus_desktop.changes import Change, ChangeKind, Changes
from nexus_desktop.db.store import AsyncStore

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0
_TABLES: dict[ChangeKind, str] = {
    "characters": "character",
    "chats": "chat",
    "personas": "persona",
    "groups": "chat_group",
}


class DatabaseWatcher:
    def __init__(self, db: AsyncStore, changes: Changes, *, interval: float = POLL_SECONDS) -> None:
        self.db = db
        self.changes = changes
        self.interval = interval
        self._connection: sqlite3.Connection | None = None
        self._data_version: int | None = None
        self._tables: dict[ChangeKind, tuple[Any, ...]] = {}
        self._chats_updated: str | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start watching (on the running event loop); a second call does nothing."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._watch(), name="nexus-db-watch")

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self._connection is not None:
            await self.db.call(self._close)

    async def _watch(self) -> None:
        failures = 0
        while True:
            try:
                changes = await self.db.call(self.look)
            except Exception:  # a locked or vanished file: try again next time, log the first few
                failures += 1
                if failures <= 3:
                    log.exception("Watching the database for other processes' writes failed")
            else:
                for change in changes:
                    self.changes.emit(change)
            await asyncio.sleep(self.interval)

    def look(self) -> list[Change]:
        """What changed since the last look (nothing on the first, which only takes note).

        Runs on the database thread: its connection lives there."""
        connection = self._connect()
        (version,) = connection.execute("PRAGMA data_version").fetchone()
        if version == self._data_version:
            return []
        first = self._data_version is None
        self._data_version = version
        changes: list[Change] = []
        for kind, table in _TABLES.items():
            # Rows added, deleted or edited (every edit stamps updated_at) change this triple.
            seen = connection.execute(f"SELECT count(*), max(id), max(updated_at) FROM {table}").fetchone()
            if not first and seen != self._tables.get(kind):
                changes.append(Change(kind))
            self._tables[kind] = seen
        # Each message written stamps its chat's updated_at: those chats' messages changed.
        since, self._chats_updated = self._chats_updated, self._tables["chats"][2]
        if since is not None:
            touched = connection.execute("SELECT id FROM chat WHERE updated_at > ?", (since,))
            changes += [Change("messages", chat_id=chat_id) for (chat_id,) in touched]
        return changes

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            uri = f"{self.db.store.path.resolve().as_uri()}?mode=ro"
            self._connection = sqlite3.connect(uri, uri=True)
            self._connection.execute("PRAGMA busy_timeout=5000")
        return self._connection

    def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()
