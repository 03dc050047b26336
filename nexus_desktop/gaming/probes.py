"""Is a game running?  One question, asked of several probes, each of which may not know.

- ``NvmlProbe``: on any platform with an NVIDIA driver, another program holding the GPU for
  graphics (``nvmlDeviceGetGraphicsRunningProcesses``).  Our own processes (the window, the model
  worker of a Vulkan build) and the desktop's own (the compositor, browsers, launchers) do not
  count.  Per-process GPU memory is not read: Windows WDDM does not report it.
- ``WindowsFullscreenProbe``: an exclusive full-screen Direct3D application
  (``SHQueryUserNotificationState`` answers ``QUNS_RUNNING_D3D_FULL_SCREEN``).
- ``ManualSwitch``: the tray switch and ``nexus game-mode on``.
- ``ScriptedProbe``: answers from a list or a file, for tests and for trying game mode out.

Every probe answers ``ProbeResult(playing, detail)``; ``playing`` is None when the probe cannot
tell here, with ``detail`` saying why ("no NVIDIA driver", "Windows only").  A probe never raises
for a missing library or a failing driver.  Checks block (a driver call): run them off the event
loop's thread.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import psutil

from nexus_desktop.settings import Settings

QUNS_RUNNING_D3D_FULL_SCREEN = 3

# Programs that hold the GPU for graphics all day without being a game (lower case, no ".exe").
DESKTOP_PROGRAMS = frozenset(
    {
        # Linux display servers, compositors and shells.
        "xorg", "xwayland", "gnome-shell", "kwin_x11", "kwin_wayland", "plasmashell", "mutter",
        "cinnamon", "xfwm4", "compiz", "picom", "sway", "hyprland", "weston", "gamescope",
        # Windows' own.
        "dwm", "explorer", "csrss", "searchhost", "searchapp", "shellexperiencehost",
        "startmenuexperiencehost", "textinputhost", "applicationframehost", "systemsettings",
        "lockapp", "widgets", "phoneexperiencehost", "nvidia overlay", "nvcontainer",
        "nvidia share", "nvidia app", "radeonsoftware",
        # Browsers, chat and launchers: they draw with the GPU but are not games.
        "chrome", "msedge", "msedgewebview2", "firefox", "opera", "brave", "vivaldi", "discord",
        "steam", "steamwebhelper", "epicgameslauncher", "galaxyclient", "battle.net", "eadesktop",
        "ubisoftconnect", "teams", "ms-teams", "slack", "code", "spotify", "obs64", "obs",
    }
)  # fmt: skip


@dataclass(frozen=True)
class ProbeResult:
    playing: bool | None
    """True: a game runs; False: none does; None: this probe cannot tell here (see ``detail``)."""
    detail: str


class GameProbe(Protocol):
    name: str

    def check(self) -> ProbeResult:
        """Whether a game runs now; blocks briefly; never raises."""
        ...


def program_name(pid: int) -> str:
    """The program's name without ``.exe``, lower case ("" when it is gone or hidden from us)."""
    try:
        name = psutil.Process(pid).name()
    except psutil.Error:
        return ""
    return name.removesuffix(".exe").removesuffix(".EXE").lower()


def own_pids() -> set[int]:
    """This process and every process it started (the model worker, modules, the trainer)."""
    me = psutil.Process()
    try:
        return {me.pid, *(child.pid for child in me.children(recursive=True))}
    except psutil.Error:
        return {me.pid}


class NvmlProbe:
    """Another program holding an NVIDIA GPU for graphics; ``nvml`` is the ``pynvml`` module (a
    scripted fake in tests: this machine has no GPU)."""

    name = "NVML"

    def __init__(
        self,
        nvml: Any = None,
        *,
        ours: Callable[[], set[int]] = own_pids,
        name_of: Callable[[int], str] = program_name,
    ) -> None:
        self._nvml = nvml
        self._ours = ours
        self._name_of = name_of
        self._initialised = False

    def check(self) -> ProbeResult:
        try:
            nvml = self._load()
        except ImportError:
            return ProbeResult(None, "NVML is not installed (pip install nvidia-ml-py)")
        except Exception as error:  # pynvml.NVMLError_LibraryNotFound, _DriverNotLoaded, ...
            return ProbeResult(None, f"no NVIDIA driver ({error or type(error).__name__})")
        try:
            games = self._graphics_programs(nvml)
        except Exception as error:
            self._initialised = False  # a driver reset: initialise again next time
            return ProbeResult(None, f"NVML failed ({error or type(error).__name__})")
        if games:
            return ProbeResult(True, f"{', '.join(games)} using the GPU")
        return ProbeResult(False, "no game on the GPU")

    def _load(self) -> Any:
        if self._nvml is None:
            import pynvml

            self._nvml = pynvml
        if not self._initialised:
            self._nvml.nvmlInit()
            self._initialised = True
        return self._nvml

    def _graphics_programs(self, nvml: Any) -> list[str]:
        ours = self._ours()
        games: list[str] = []
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            for process in nvml.nvmlDeviceGetGraphicsRunningProcesses(handle):
                pid = int(process.pid)
                if pid in ours:
                    continue
                name = self._name_of(pid)
                if name in DESKTOP_PROGRAMS:
                    continue
                games.append(f"{name or 'a program'} (pid {pid})")
        return games


class WindowsFullscreenProbe:
    """An exclusive full-screen Direct3D application, on Windows; ``query`` returns the
    notification state (``SHQueryUserNotificationState``; a scripted one in tests)."""

    name = "Full-screen Direct3D"

    def __init__(self, query: Callable[[], int] | None = None) -> None:
        self._query = query

    def check(self) -> ProbeResult:
        query = self._query
        if query is None:
            if sys.platform != "win32":
                return ProbeResult(None, "Windows only")
            query = _notification_state
        try:
            state = query()
        except OSError as error:
            return ProbeResult(None, f"SHQueryUserNotificationState failed ({error})")
        if state == QUNS_RUNNING_D3D_FULL_SCREEN:
            return ProbeResult(True, "a full-screen Direct3D game is running")
        return ProbeResult(False, "no full-screen Direct3D program")


def _notification_state() -> int:
    import ctypes

    state = ctypes.c_int(0)
    result = ctypes.windll.shell32.SHQueryUserNotificationState(ctypes.byref(state))  # type: ignore[attr-defined]
    if result != 0:
        raise OSError(f"HRESULT {result & 0xFFFFFFFF:#010x}")
    return int(state.value)


class ManualSwitch:
    """The user's switch (the tray, Settings, ``nexus game-mode on``): on means game mode."""

    name = "Switch"

    def __init__(self, get_settings: Callable[[], Settings]) -> None:
        self._get_settings = get_settings

    def check(self) -> ProbeResult:
        if self._get_settings().game_mode_manual:
            return ProbeResult(True, "on")
        return ProbeResult(False, "off")


class ScriptedProbe:
    """Answers from ``answers`` in turn (the last one repeats), or from a file's text: "playing",
    "idle", or anything else for "cannot tell" with that text as the reason."""

    def __init__(self, answers: Sequence[bool | None] | Path, name: str = "Scripted") -> None:
        self.name = name
        self.path = answers if isinstance(answers, Path) else None
        self.answers: list[bool | None] = [] if isinstance(answers, Path) else list(answers)

    def check(self) -> ProbeResult:
        if self.path is not None:
            try:
                text = self.path.read_text(encoding="utf-8").strip()
            except OSError as error:
                return ProbeResult(None, f"cannot read {self.path} ({error.strerror})")
            playing = {"playing": True, "idle": False}.get(text)
            return ProbeResult(playing, text if playing is None else f"the file says {text}")
        answer = self.answers.pop(0) if len(self.answers) > 1 else (self.answers or [None])[0]
        detail = {True: "scripted game", False: "scripted: no game", None: "scripted: unavailable"}
        return ProbeResult(answer, detail[answer])


def default_probes(get_settings: Callable[[], Settings]) -> list[GameProbe]:
    """The switch first, then the detectors this machine may have."""
    return [ManualSwitch(get_settings), NvmlProbe(), WindowsFullscreenProbe()]


def ask(probes: Iterable[GameProbe]) -> list[tuple[GameProbe, ProbeResult]]:
    """Every probe's answer; one that raises anyway says so instead of stopping the others."""
    answers = []
    for probe in probes:
        try:
            result = probe.check()
        except Exception as error:
            result = ProbeResult(None, f"failed ({type(error).__name__}: {error})")
        answers.append((probe, result))
    return answers


def describe(answers: Iterable[tuple[GameProbe, ProbeResult]]) -> list[str]:
    """One line per probe: "Switch: off", "NVML: unavailable: no NVIDIA driver (...)"."""
    return [
        f"{probe.name}: {'unavailable: ' if result.playing is None else ''}{result.detail}"
        for probe, result in answers
    ]


__all__ = [
    "DESKTOP_PROGRAMS",
    "GameProbe",
    "ManualSwitch",
    "NvmlProbe",
    "ProbeResult",
    "ScriptedProbe",
    "WindowsFullscreenProbe",
    "ask",
    "default_probes",
    "describe",
]
