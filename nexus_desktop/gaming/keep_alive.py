"""Keep-alive: a model nobody used for a while gives its memory back, as Ollama's ``keep_alive``.

``settings.keep_alive_minutes`` says how long an unused local model stays loaded:

- ``5`` (the default, as Ollama): unloaded 5 minutes after the last reply ended;
- ``0``: unloaded as soon as each reply ends (the least memory, a load before every reply);
- ``-1`` (any negative): kept loaded until the app closes.

Unloading stops the model's worker process, so its RAM and VRAM are freed; the next message
loads it again (``SourceManager.get`` loads lazily).  A reply being written counts as use.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from nexus_desktop.chat.sources import SourceManager
from nexus_desktop.settings import Settings

log = logging.getLogger(__name__)

LONGEST_CHECK_SECONDS = 30.0
SHORTEST_CHECK_SECONDS = 0.25


class KeepAlive:
    def __init__(
        self,
        sources: SourceManager,
        get_settings: Callable[[], Settings],
        *,
        busy: Callable[[], bool],
        idle_seconds: float | None = None,
    ) -> None:
        """``busy``: whether a reply is being written; ``idle_seconds`` overrides the setting
        (tests use a few seconds)."""
        self._sources = sources
        self._get_settings = get_settings
        self._busy = busy
        self._idle_seconds = idle_seconds
        self._task: asyncio.Task[None] | None = None

    def idle_limit(self) -> float | None:
        """Seconds an unused model stays loaded; None: for ever."""
        if self._idle_seconds is not None:
            return self._idle_seconds
        minutes = self._get_settings().keep_alive_minutes
        return None if minutes < 0 else minutes * 60.0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="nexus-keep-alive")

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def check_now(self) -> bool:
        """Unload the model when it has been unused long enough; returns whether it did."""
        limit = self.idle_limit()
        if limit is None or self._get_settings().source != "local":
            return False
        if self._busy():
            self._sources.touch()  # idleness counts from the end of the reply
            return False
        if self._sources.state.phase != "ready":
            return False
        return await self._sources.unload(_note(limit), unused_for=limit)

    async def _run(self) -> None:
        while True:
            try:
                await self.check_now()
            except Exception:
                log.exception("Keep-alive: the check failed")
            limit = self.idle_limit()
            wait = LONGEST_CHECK_SECONDS if limit is None else limit / 4
            await asyncio.sleep(min(LONGEST_CHECK_SECONDS, max(SHORTEST_CHECK_SECONDS, wait)))


def _note(limit: float) -> str:
    if limit <= 0:
        return "Unloaded after the reply (keep-alive 0); the next message loads it again"
    span = f"{limit / 60:g} min" if limit >= 60 else f"{limit:g} s"
    return f"Unloaded after {span} unused; the next message loads it again"
