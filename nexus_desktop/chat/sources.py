"""The active model source, rebuilt when the settings that shape it change, and its state.

Switching models is closing one source and starting another: no restart of the app.  The
manager owns what the window shows about the model (``ModelState``: loading, ready, failed, and
what is loaded); views subscribe to it.  Only a failed load or a crashed model process makes
the state failed: an error in one reply (a prompt too long, a server's refusal) says nothing
about the model's health.

``unload`` gives the memory back (keep-alive, game mode; the next ``get`` loads again), and game
mode (``enter_game_mode``) either refuses local replies with ``GameModeError`` or loads the
model with every layer on the CPU.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from nexus_desktop.changes import Listeners
from nexus_desktop.llm.catalog import default_model_path
from nexus_desktop.llm.contract import ModelCrashedError, ModelError, ModelFileError, ModelSource
from nexus_desktop.secrets import KeyringUnavailableError
from nexus_desktop.settings import Settings

log = logging.getLogger(__name__)

REMOTE_KEY_NAME = "remote-api-key"

KeyLookup = Callable[[str], str | None]
AdapterLookup = Callable[[str, Path], Path | None]
"""(character name, local model path) -> the promoted persona LoRA adapter to apply, if any."""


ModelPhase = Literal["idle", "loading", "ready", "failed"]
GameAction = Literal["unload", "cpu"]


class GameModeError(ModelError):
    """A local reply asked for while game mode keeps the model unloaded (nothing is saved)."""

    def __init__(self) -> None:
        super().__init__(
            "Game mode: the model is unloaded while you play. Turn game mode off (the tray, or "
            "nexus game-mode off), or allow CPU chat in Settings → Game mode."
        )


@dataclass(frozen=True)
class ModelState:
    """What the model is doing, for the status line: ``idle`` (nothing loaded yet, or closed),
    ``loading``, ``ready`` or ``failed`` (the load failed or the model process crashed)."""

    phase: ModelPhase
    name: str = ""
    """The model loading or loaded ("SmolLM2-360M-Instruct-Q8_0.gguf", "remote: gpt-4o")."""
    context_size: int | None = None
    gpu_layers: int = 0
    """Layers llama.cpp put on the GPU (0: the CPU runs it all, or a remote server does)."""
    llama_cpp: str | None = None
    """The llama.cpp build serving a local model, when known."""
    error: BaseException | None = None
    """Why it failed (a ``ModelError`` says what to do in its text)."""
    note: str = ""
    """Why an ``idle`` model was unloaded ("Unloaded for game mode"), or why a ``ready`` one runs
    other than asked (a GPU that could not take it), for the status line."""


def model_label(settings: Settings) -> str:
    """The model the settings name, in a few words (before anything is loaded)."""
    if settings.source == "remote":
        return f"remote: {settings.remote_model or 'server'}"
    if settings.source == "worker":
        return f"worker: {settings.worker_url}"
    return Path(settings.model_path).name if settings.model_path else "the bundled SmolLM2 model"


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


def source_key(
    settings: Settings, adapter: Path | None = None, *, cpu_only: bool = False
) -> tuple[object, ...]:
    """The settings that need a new source when they change (sampling does not); ``cpu_only``
    (game mode's CPU chat) puts every layer on the CPU whatever the GPU-layers setting says."""
    if settings.source == "remote":
        return ("remote", settings.remote_base_url, settings.remote_model, settings.context_size)
    if settings.source == "worker":
        return ("worker", settings.worker_url, settings.worker_credentials, settings.worker_tls_ca)
    return (
        "local",
        str(local_model_path(settings)),
        settings.context_size,
        settings.threads,
        0 if cpu_only else settings.gpu_layers,
        settings.kv_cache_type,
        settings.vram_reserve_mb if settings.gpu_layers == "auto" else None,
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
        self.state = ModelState("idle")
        self.listeners: Listeners[ModelState] = Listeners()
        """Hear every new ``state`` (on the event loop's thread)."""
        self.game_action: GameAction | None = None
        """Game mode's hold on a local model: unloaded, or on the CPU; None outside game mode."""
        self.last_used = time.monotonic()
        """When a reply last asked for the model (``time.monotonic``), for keep-alive."""
        self._character: str | None = None

    @property
    def current(self) -> ModelSource | None:
        return self._source

    async def get(self, character: str | None = None) -> ModelSource:
        """The source for the current settings (and the character's promoted persona adapter),
        starting or switching to it if needed, and restarting one whose process crashed.

        In game mode with the model unloaded, a local model raises ``GameModeError`` instead."""
        self.touch()
        self._character = character
        async with self._lock:
            settings = self._get_settings()
            if self.game_action == "unload" and settings.source == "local":
                raise GameModeError()
            try:
                adapter = await self._adapter(settings, character)
                key = source_key(settings, adapter, cpu_only=self.game_action == "cpu")
                if self._source is not None and key == self._key and self.state.phase == "ready":
                    return self._source
                self._set_state(ModelState("loading", model_label(settings)))
                if self._source is None or key != self._key:
                    await self._close_locked()
                    self._source = await self._start(settings, adapter)
                    self._key = key
                else:
                    await self._restart(self._source)
            except asyncio.CancelledError:
                self._set_state(ModelState("idle"))  # the load was abandoned (the app is closing)
                raise
            except Exception as error:
                self._set_state(ModelState("failed", model_label(settings), error=error))
                raise
            self._set_state(_ready_state(self._source))
            return self._source

    def report_crash(self, error: ModelCrashedError) -> None:
        """A reply saw the model process die: the model has failed until the next ``get``
        restarts it (errors other than a crash leave the model's state alone)."""
        if self._source is not None and self.state.phase == "ready":
            self._set_state(ModelState("failed", self._source.name, error=error))

    def _set_state(self, state: ModelState) -> None:
        self.state = state
        self.listeners.emit(state)

    def touch(self) -> None:
        """The model is in use now (a reply is running): keep-alive measures idleness from here."""
        self.last_used = time.monotonic()

    async def unload(self, note: str, *, unused_for: float | None = None) -> bool:
        """Stop the model and free its memory (the worker process exits); the state is ``idle``
        with ``note`` for the status line, and the next ``get`` loads it again.  With
        ``unused_for``, only when nothing asked for the model in that many seconds (checked once
        a load in progress has finished).  Returns whether a model was unloaded."""
        async with self._lock:
            if unused_for is not None and time.monotonic() - self.last_used < unused_for:
                return False
            source = self._source
            if source is None:
                return False
            await self._close_locked()
            self._set_state(ModelState("idle", source.name, note=note))
            log.info("Unloaded %s: %s", source.name, note)
            return True

    async def enter_game_mode(self, action: GameAction) -> None:
        """Give the GPU to the game: unload a local model, or (``cpu``) load it again with every
        layer on the CPU when one was loaded.  Replies asked for from now on follow ``action``."""
        self.game_action = action  # before any wait: a reply asked for meanwhile sees it
        if self._get_settings().source != "local":
            return  # a remote server uses no GPU here
        if action == "unload":
            await self.unload("Unloaded for game mode")
        elif self.state.phase in ("ready", "loading"):
            await self.get(self._character)  # its key now says CPU only: a reload

    async def leave_game_mode(self, *, reload: bool) -> None:
        """The game ended: replies use the GPU settings again; ``reload`` loads the model now
        (it was loaded when game mode began) rather than at the next message."""
        self.game_action = None
        if reload and self._get_settings().source == "local":
            await self.get(self._character)

    async def aclose(self) -> None:
        async with self._lock:
            await self._close_locked()

    async def _close_locked(self) -> None:
        source, self._source, self._key = self._source, None, None
        if source is not None:
            await source.aclose()
            self._set_state(ModelState("idle"))

    @staticmethod
    async def _restart(source: ModelSource) -> None:
        """Start a crashed local model's process again (a remote source needs nothing)."""
        from nexus_desktop.llm.local import LocalLlamaSource

        if isinstance(source, LocalLlamaSource):
            await source.start()

    async def _adapter(self, settings: Settings, character: str | None) -> Path | None:
        if character is None or self._lookup_adapter is None or settings.source != "local":
            return None
        # A registry read: off the event loop's thread.
        return await asyncio.to_thread(self._lookup_adapter, character, local_model_path(settings))

    async def _start(self, settings: Settings, adapter: Path | None = None) -> ModelSource:
        if settings.source == "worker":
            from nexus_desktop.bus.remote_source import connect_worker_source
            from nexus_desktop.bus.synapse import Connection

            # Only the files' paths: the synapse reads them at connect time, off this thread.
            return await connect_worker_source(
                Connection(
                    settings.worker_url,
                    credentials=Path(settings.worker_credentials).expanduser()
                    if settings.worker_credentials
                    else None,
                    tls_ca=Path(settings.worker_tls_ca).expanduser() if settings.worker_tls_ca else None,
                )
            )
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
            gpu_layers=0 if self.game_action == "cpu" else settings.gpu_layers,
            kv_cache_type=settings.kv_cache_type,
            vram_reserve_mb=settings.vram_reserve_mb,
            lora_path=adapter,
        )
        await source.start()
        return source


def _ready_state(source: ModelSource) -> ModelState:
    from nexus_desktop.llm.local import LocalLlamaSource

    if isinstance(source, LocalLlamaSource):
        return ModelState(
            "ready",
            source.name,
            source.context_size,
            gpu_layers=source.gpu_layers_used,
            llama_cpp=source.llama_cpp_version,
            note=source.load_notice,
        )
    from nexus_desktop.bus.remote_source import WorkerSource

    if isinstance(source, WorkerSource) and source.model_name:  # "worker: gpc2 · SmolLM2….gguf"
        return ModelState("ready", f"{source.name} · {source.model_name}", source.context_size)
    return ModelState("ready", source.name, source.context_size)
