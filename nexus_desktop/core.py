"""The Qt-free application core, shared by the window, the CLI and the tests.

It opens the database, seeds the default characters on first run, and wires the chat service
to the active model source.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from nexus_desktop import paths
from nexus_desktop.cards.defaults import default_cards
from nexus_desktop.cards.io import card_to_record
from nexus_desktop.chat.routing import IntentRouter
from nexus_desktop.chat.service import ChatService
from nexus_desktop.chat.sources import SourceManager
from nexus_desktop.db.store import AsyncStore, Store
from nexus_desktop.modules.service import ModuleService
from nexus_desktop.secrets import SecretStore
from nexus_desktop.settings import Settings
from nexus_desktop.training.collector import Collector
from nexus_desktop.training.in_use import active_router, persona_adapter
from nexus_desktop.training.service import TrainingService

if TYPE_CHECKING:
    from nexus_desktop.modules.watch import ModuleWatcher

log = logging.getLogger(__name__)


class AppCore:
    def __init__(self, database: Path | None = None) -> None:
        self.store = Store(database or paths.database_path())
        self.db = AsyncStore(self.store)
        self.secrets = SecretStore()
        self.settings: Settings = self.store.load_settings()
        self.sources = SourceManager(
            lambda: self.settings,
            self.secrets.get,
            lambda character, model: persona_adapter(self.store.engine, character, model),
        )
        # Every reply, rating, edit, swipe choice and tool call becomes training data (issue: the loop).
        self.collector = Collector(self.store.path)
        developer_dir = self.settings.modules_developer_dir
        self.modules = ModuleService(
            self.store.engine,
            self.secrets,
            developer_dir=Path(developer_dir).expanduser() if developer_dir else None,
            developer_mode=self.settings.modules_developer_mode,
        )
        self._modules_started = False
        self.training = TrainingService(
            self.store.engine, trainer_python=lambda: self.settings.trainer_python
        )
        self._watcher: ModuleWatcher | None = None
        self.router = IntentRouter(lambda: active_router(self.store.engine))
        self.chat = ChatService(
            self.db,
            self.sources.get,
            lambda: self.settings,
            get_tools=lambda: self.modules.supervisor if self._modules_started else None,
            collect=self.collector.collect,
            route=self.router.route,
        )
        self.seed_default_characters()

    def seed_default_characters(self) -> None:
        """On first run, add the bundled characters so there is someone to talk to."""
        if self.store.list_characters():
            return  # the usual start: skip reading the bundled cards
        records = [(*card_to_record(card), avatar) for card, avatar in default_cards()]
        # One transaction for all of them: a first run killed part-way must leave none, not some.
        if self.store.seed_characters(records):
            log.info("Added the default characters")

    async def start_modules(self, *, watch: bool = True) -> None:
        """Start every enabled module in its own process, and reload them on save if asked."""
        if self._modules_started:
            return
        await self.modules.start()
        self._modules_started = True
        if watch:
            from nexus_desktop.modules.watch import ModuleWatcher

            self._watcher = ModuleWatcher(self.modules)
            await self._watcher.start()

    async def update_settings(self, settings: Settings) -> None:
        self.settings = settings
        await self.db.call(self.store.save_settings, settings)

    async def aclose(self) -> None:
        if self._watcher is not None:
            await self._watcher.aclose()
        await self.modules.aclose()
        await self.training.aclose(stop_training=True)
        await self.router.aclose()
        await self.sources.aclose()
        await asyncio.to_thread(self.close)

    def close(self) -> None:
        """Store what the collector still holds and close the database (no model to stop)."""
        self.collector.close()
        self.db.close()
