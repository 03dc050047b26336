"""The active model source, rebuilt when the settings that shape it change.

Switching models is closing one source and starting another: no restart of the app.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from nexus_desktop.llm.catalog import default_model_path
from nexus_desktop.llm.contract import ModelFileError, ModelSource
from nexus_desktop.secrets import KeyringUnavailableError
from nexus_desktop.settings import Settings

log = logging.getLogger(__name__)

REMOTE_KEY_NAME = "remote-api-key"

KeyLookup = Callable[[str], str | None]
AdapterLookup = Callable[[str, Path], Path | None]
"""(character name, local model path) -> the promoted persona LoRA adapter to apply, if any."""


def local_model_path(settings: Settings) -> Path:
    if settings.model_path:
        return Path(settings.model_path).expanduser()
    default = default_model_path()
    if default is None:
        raise ModelFileError(
            "No model is configured and the bundled SmolLM2 model is not installed. Run the setup "
            "command from the README, or pick a GGUF file in Settings → Model."
        )
    return default


def source_key(settings: Settings, adapter: Path | None = None) -> tuple[object, ...]:
    """The settings that need a new source when they change (sampling does not)."""
    if settings.source == "remote":
        return ("remote", settings.remote_base_url, settings.remote_model, settings.context_size)
    return (
        "local",
        str(local_model_path(settings)),
        settings.context_size,
        settings.threads,
        settings.gpu_layers,
        str(adapter) if adapter else None,
    )


class SourceManager:
    def __init__(
        self,
        get_settings: Callable[[], Settings],
        lookup_key: KeyLookup,
        lookup_adapter: AdapterLookup | None = None,
    ) -> None:
        self._get_settings = get_settings
        self._lookup_key = lookup_key
        self._lookup_adapter = lookup_adapter
        self._source: ModelSource | None = None
        self._key: tuple[object, ...] | None = None
        self._lock = asyncio.Lock()

    @property
    def current(self) -> ModelSource | None:
        return self._source

    async def get(self, character: str | None = None) -> ModelSource:
        """The source for the current settings (and the character's promoted persona adapter),
        starting or switching to it if needed."""
        async with self._lock:
            settings = self._get_settings()
            adapter = await self._adapter(settings, character)
            key = source_key(settings, adapter)
            if self._source is not None and key == self._key:
                return self._source
            await self._close_locked()
            self._source = await self._start(settings, adapter)
            self._key = key
            return self._source

    async def reload(self) -> ModelSource:
        async with self._lock:
            await self._close_locked()
        return await self.get()

    async def aclose(self) -> None:
        async with self._lock:
            await self._close_locked()

    async def _close_locked(self) -> None:
        source, self._source, self._key = self._source, None, None
        if source is not None:
            await source.aclose()

    async def _adapter(self, settings: Settings, character: str | None) -> Path | None:
        if character is None or self._lookup_adapter is None or settings.source != "local":
            return None
        # A registry read: off the event loop's thread.
        return await asyncio.to_thread(self._lookup_adapter, character, local_model_path(settings))

    async def _start(self, settings: Settings, adapter: Path | None = None) -> ModelSource:
        if settings.source == "remote":
            from nexus_desktop.llm.openai_compat import OpenAICompatSource

            # The keyring can block on D-Bus: never on the event loop's thread.
            try:
                api_key = await asyncio.to_thread(self._lookup_key, REMOTE_KEY_NAME)
            except KeyringUnavailableError as error:
                # Many local servers need no key; one that does answers 401, which says what to do.
                log.warning("Connecting without an API key: %s (%s)", error, error.detail)
                api_key = None
            return OpenAICompatSource(
                settings.remote_base_url,
                settings.remote_model,
                api_key=api_key,
                context_size=settings.context_size,
            )
        from nexus_desktop.llm.local import LocalLlamaSource

        source = LocalLlamaSource(
            local_model_path(settings),
            context_size=settings.context_size,
            threads=settings.threads,
            gpu_layers=settings.gpu_layers,
            lora_path=adapter,
        )
        await source.start()
        return source
