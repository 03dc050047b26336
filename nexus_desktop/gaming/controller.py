"""Game mode: while a game runs, the GPU is the game's.

``GameMode`` asks its probes every few seconds, off the event loop's thread.  The switch acts at
once; a detected game must be seen on ``confirm_polls`` polls in a row (and its end too), so a
launcher flashing a window does not unload the model.

Entering game mode:
1. heavy work pauses (the scheduler's heavy tasks skip with "paused: game mode", a running
   trainer is suspended and the queue held: ``Pausable``);
2. a reply being written finishes on what is loaded, and is saved;
3. the model is unloaded (its worker process exits and its memory is freed), or with the
   "cpu" action loaded again with every layer on the CPU, so chat keeps working.
Leaving: the model loads again if it was loaded before, and the paused work resumes.

Listeners hear every new ``GameState`` (on the event loop's thread): the status line and the
tray follow it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

from nexus_desktop.changes import Listeners
from nexus_desktop.chat.sources import GameAction, SourceManager
from nexus_desktop.gaming.probes import GameProbe, ManualSwitch, ProbeResult, ask
from nexus_desktop.settings import Settings

log = logging.getLogger(__name__)

POLL_SECONDS = 3.0
PAUSE_REASON = "game mode"
GamePhase = Literal["off", "entering", "on"]
T = TypeVar("T")


class Pausable(Protocol):
    """Heavy work that yields to a game: the scheduler, the trainer."""

    async def pause(self, reason: str) -> None: ...

    async def resume(self) -> None: ...


@dataclass(frozen=True)
class GameState:
    phase: GamePhase = "off"
    """``entering``: heavy work is paused and a running reply is being waited for."""
    action: GameAction = "unload"
    reason: str = ""
    """What started it: "Switch: switched on", "NVML: eldenring (pid 4242) using the GPU"."""

    @property
    def active(self) -> bool:
        return self.phase != "off"


class GameMode:
    def __init__(
        self,
        probes: Sequence[GameProbe],
        get_settings: Callable[[], Settings],
        sources: SourceManager,
        *,
        busy: Callable[[], bool],
        pausers: Sequence[Pausable] = (),
        read_saved_switch: Callable[[], bool] | None = None,
        adopt_switch: Callable[[bool], Awaitable[object]] | None = None,
        poll_seconds: float = POLL_SECONDS,
        confirm_polls: int = 2,
    ) -> None:
        """``busy``: whether a reply is being written (``ChatService.generating``);
        ``read_saved_switch``: the switch as saved now (blocking; another process, the CLI, may
        have changed it) and ``adopt_switch``: take that value into the app's settings."""
        self.probes = list(probes)
        self._get_settings = get_settings
        self._sources = sources
        self._busy = busy
        self._pausers = list(pausers)
        self._read_saved_switch = read_saved_switch
        self._adopt_switch = adopt_switch
        self._saved_switch = get_settings().game_mode_manual  # as the app read it at start
        self.poll_seconds = poll_seconds
        self.confirm_polls = confirm_polls
        self.state = GameState()
        self.answers: list[tuple[GameProbe, ProbeResult]] = []
        """Each probe's last answer, for ``nexus game-mode status`` and Settings."""
        self.listeners: Listeners[GameState] = Listeners()
        self._streak = 0
        self._last_switch: bool | None = None
        self._paused = False
        self._reload_after = False
        self._poll_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._threads: set[asyncio.Future[Any]] = set()

    # Life cycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Poll from now on (on the running event loop); a second call does nothing."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="nexus-game-mode")

    def poke(self) -> None:
        """Poll now rather than at the next tick (the settings changed)."""
        self._wake.set()

    async def aclose(self) -> None:
        """Stop polling and resume what game mode paused (the app is closing)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await asyncio.gather(*self._threads, return_exceptions=True)
        await self._resume()

    async def _run(self) -> None:
        while True:
            self._wake.clear()  # a poke during this poll polls again straight after it
            try:
                await self.poll_now()
            except Exception:
                log.exception("Game mode: a poll failed")
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_seconds)
            except TimeoutError:
                pass

    # Polling ------------------------------------------------------------------------------

    async def poll_now(self) -> GameState:
        """Ask the probes once and enter or leave game mode as they say."""
        async with self._poll_lock:
            saved = await self._off_loop(self._switch_saved_elsewhere)
            if saved is not None and self._adopt_switch is not None:
                await self._adopt_switch(saved)
            self.answers = await self._off_loop(ask, self.probes)
            settings = self._get_settings()
            wanted, reason = self._wanted(settings)
            switched = settings.game_mode_manual != self._last_switch
            self._last_switch = settings.game_mode_manual
            if wanted == self.state.active:
                self._streak = 0
                if wanted and settings.game_mode_action != self.state.action:
                    await self._enter(settings.game_mode_action, reason)  # CPU chat allowed or taken back
                return self.state
            self._streak += 1
            if not switched and self._streak < self.confirm_polls:
                return self.state
            self._streak = 0
            if wanted:
                await self._enter(settings.game_mode_action, reason)
            else:
                await self._leave()
            return self.state

    async def _off_loop(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on a worker thread; ``aclose`` waits for it rather than leaving it to
        call back into a loop that has closed."""
        job = asyncio.get_running_loop().run_in_executor(None, fn, *args)
        self._threads.add(job)
        job.add_done_callback(self._threads.discard)
        return await asyncio.shield(job)

    def _switch_saved_elsewhere(self) -> bool | None:
        """The saved switch when it changed since the last look (another process, the CLI, or
        this app saved it); blocking."""
        if self._read_saved_switch is None:
            return None
        try:
            saved = self._read_saved_switch()
        except Exception:
            log.warning("Game mode: the saved switch could not be read", exc_info=True)
            return None
        last_seen, self._saved_switch = self._saved_switch, saved
        return saved if saved != last_seen else None

    def _wanted(self, settings: Settings) -> tuple[bool, str]:
        """Whether game mode should be on, and why (the switch counts even with detection off)."""
        for probe, result in self.answers:
            counts = isinstance(probe, ManualSwitch) or settings.game_mode_detect
            if counts and result.playing:
                return True, f"{probe.name}: {result.detail}"
        return False, ""

    # Entering and leaving -----------------------------------------------------------------

    async def _enter(self, action: GameAction, reason: str) -> None:
        log.info("Game mode on (%s): %s", reason, action)
        self._set(GameState("entering", action, reason))
        if not self._paused:
            self._paused = True
            for pauser in self._pausers:
                await _quietly(pauser.pause(PAUSE_REASON), "pausing heavy work")
        while self._busy():  # a reply started before the game finishes on what is loaded
            await asyncio.sleep(0.05)
        if self._sources.game_action is None:
            self._reload_after = self._sources.state.phase in ("ready", "loading")
        await _quietly(self._sources.enter_game_mode(action), "giving the GPU back")
        self._set(GameState("on", action, reason))

    async def _leave(self) -> None:
        log.info("Game mode off")
        self._set(GameState("off", self.state.action))
        reload, self._reload_after = self._reload_after, False
        await _quietly(self._sources.leave_game_mode(reload=reload), "loading the model again")
        await self._resume()

    async def _resume(self) -> None:
        if self._paused:
            self._paused = False
            for pauser in self._pausers:
                await _quietly(pauser.resume(), "resuming heavy work")

    def _set(self, state: GameState) -> None:
        self.state = state
        self.listeners.emit(state)


async def _quietly(step: Awaitable[object], doing: str) -> None:
    """Game mode goes on whatever one step does; a failed model load shows in the model's state."""
    try:
        await step
    except Exception as error:
        log.warning("Game mode: %s failed: %s", doing, error)
