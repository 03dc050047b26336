"""Writes by another process become change events: the database watcher, Qt-free.

A real SQLite file, the app's own database thread, and ``nexus`` run as a real second process.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from nexus_desktop.changes import Change
from nexus_desktop.core import AppCore

CARDS = Path(__file__).parent / "fixtures" / "cards"


async def nexus(data_dir: Path, *args: str) -> None:
    env = {**os.environ, "NEXUS_DATA_DIR": str(data_dir)}
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "nexus_desktop.cli", *args, env=env)
    assert await process.wait() == 0


async def heard_within(heard: list[Change], seconds: float) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not heard and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)


def test_another_process_adding_a_character_or_a_message_is_announced(private_data_dir: Path) -> None:
    async def scenario() -> tuple[list[Change], list[Change], list[Change], int]:
        core = AppCore()
        core.db_watcher.interval = 0.1
        heard: list[Change] = []
        core.changes.subscribe(heard.append)
        try:
            character = core.store.list_characters()[0]
            assert character.id is not None
            chat, _ = await core.chat.open_chat(character.id)
            assert chat.id is not None
            heard.clear()  # opening the chat made one: the app's own write, announced by the app
            core.db_watcher.start()
            await asyncio.sleep(0.5)  # quiet: nothing was written since it started
            quiet = list(heard)

            await nexus(private_data_dir, "characters", "import", str(CARDS / "v2_card.png"))
            await heard_within(heard, 30)
            imported, heard[:] = list(heard), []

            # Another process writes to the open chat, as `nexus chat` does.
            other = AppCore()
            try:
                await asyncio.to_thread(other.store.add_message, chat.id, "user", "Hello from elsewhere")
            finally:
                other.close()
            await heard_within(heard, 30)
            return quiet, imported, list(heard), chat.id
        finally:
            await core.aclose()

    quiet, imported, messages, chat_id = asyncio.run(scenario())
    assert quiet == []
    assert Change("characters") in imported and not any(c.kind == "messages" for c in imported)
    assert Change("messages", chat_id=chat_id) in messages
