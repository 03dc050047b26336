"""Game detection: each probe says playing, not playing, or why it cannot tell, and never raises.

NVML is the real ``nvidia-ml-py`` on this GPU-less machine (it raises NVMLError_LibraryNotFound),
and a scripted fake NVML for what only a GPU shows (another program's graphics context).  The
Windows probe runs with a scripted notification state here."""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from nexus_desktop.chat.sources import SourceManager
from nexus_desktop.gaming.controller import GameMode
from nexus_desktop.gaming.probes import (
    QUNS_RUNNING_D3D_FULL_SCREEN,
    ManualSwitch,
    NvmlProbe,
    ProbeResult,
    ScriptedProbe,
    WindowsFullscreenProbe,
    default_probes,
)
from nexus_desktop.settings import Settings


@dataclass
class GraphicsProcess:
    pid: int
    usedGpuMemory: int | None = None  # NVML's name; None: WDDM does not say


class FakeNvml:
    """What NVML reports on a machine with a GPU: a scripted list of graphics processes."""

    def __init__(self, pids: list[int], *, fail_init: Exception | None = None) -> None:
        self.pids = pids
        self.fail_init = fail_init
        self.fail_call: Exception | None = None
        self.inits = 0

    def nvmlInit(self) -> None:
        self.inits += 1
        if self.fail_init is not None:
            raise self.fail_init

    def nvmlDeviceGetCount(self) -> int:
        return 1

    def nvmlDeviceGetHandleByIndex(self, index: int) -> str:
        return f"gpu{index}"

    def nvmlDeviceGetGraphicsRunningProcesses(self, _handle: str) -> list[GraphicsProcess]:
        if self.fail_call is not None:
            raise self.fail_call
        return [GraphicsProcess(pid) for pid in self.pids]


NAMES = {4242: "eldenring", 100: "dwm", 101: "xorg", 102: "steamwebhelper"}


def nvml_probe(nvml: FakeNvml, ours: set[int] | None = None) -> NvmlProbe:
    return NvmlProbe(nvml, ours=lambda: ours or set(), name_of=lambda pid: NAMES.get(pid, ""))


def test_without_an_nvidia_driver_the_real_nvml_probe_is_unavailable_with_the_reason() -> None:
    result = NvmlProbe().check()
    assert result == ProbeResult(None, "no NVIDIA driver (NVML Shared Library Not Found)")


def test_without_nvidia_ml_py_the_probe_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # the import fails as if not installed
    result = NvmlProbe().check()
    assert result == ProbeResult(None, "NVML is not installed (pip install nvidia-ml-py)")


def test_another_program_holding_the_gpu_for_graphics_is_a_game() -> None:
    result = nvml_probe(FakeNvml([100, 101, 4242])).check()
    assert result == ProbeResult(True, "eldenring (pid 4242) using the GPU")


def test_the_desktop_and_our_own_processes_on_the_gpu_are_not_a_game() -> None:
    ours = {os.getpid(), 777}  # the window and a Vulkan model worker
    result = nvml_probe(FakeNvml([100, 101, 102, os.getpid(), 777]), ours).check()
    assert result == ProbeResult(False, "no game on the GPU")


def test_an_nvml_call_failing_makes_the_probe_unavailable_then_it_recovers() -> None:
    nvml = FakeNvml([4242])
    probe = nvml_probe(nvml)
    nvml.fail_call = RuntimeError("GPU is lost")
    assert probe.check() == ProbeResult(None, "NVML failed (GPU is lost)")
    nvml.fail_call = None
    assert probe.check().playing is True
    assert nvml.inits == 2  # initialised again after the failure


def test_nvml_failing_to_initialise_is_unavailable_not_a_crash() -> None:
    probe = nvml_probe(FakeNvml([4242], fail_init=RuntimeError("Driver Not Loaded")))
    assert probe.check() == ProbeResult(None, "no NVIDIA driver (Driver Not Loaded)")


def test_the_fullscreen_probe_reads_the_windows_notification_state() -> None:
    assert WindowsFullscreenProbe(lambda: QUNS_RUNNING_D3D_FULL_SCREEN).check().playing is True
    assert WindowsFullscreenProbe(lambda: 5).check() == ProbeResult(False, "no full-screen Direct3D program")

    def failing() -> int:
        raise OSError("HRESULT 0x80004005")

    assert WindowsFullscreenProbe(failing).check() == ProbeResult(
        None, "SHQueryUserNotificationState failed (HRESULT 0x80004005)"
    )


@pytest.mark.skipif(sys.platform == "win32", reason="on Windows the probe is available")
def test_off_windows_the_fullscreen_probe_says_it_is_windows_only() -> None:
    assert WindowsFullscreenProbe().check() == ProbeResult(None, "Windows only")


def test_the_switch_probe_follows_the_setting() -> None:
    settings = Settings()
    switch = ManualSwitch(lambda: settings)
    assert switch.check() == ProbeResult(False, "off")
    settings = settings.model_copy(update={"game_mode_manual": True})
    assert switch.check() == ProbeResult(True, "on")


def test_a_scripted_probe_reads_its_answer_from_a_file(tmp_path: Path) -> None:
    answer = tmp_path / "game.txt"
    probe = ScriptedProbe(answer)
    assert probe.check().playing is None  # no file yet: cannot tell
    answer.write_text("playing")
    assert probe.check() == ProbeResult(True, "the file says playing")
    answer.write_text("idle")
    assert probe.check().playing is False


def test_with_nvml_missing_game_mode_keeps_polling_and_reports_why(private_data_dir: Path) -> None:
    """The real probes on this machine: none can tell, so game mode stays off, and says why."""
    settings = Settings()
    sources = SourceManager(lambda: settings, lambda _name: None)
    game = GameMode(default_probes(lambda: settings), lambda: settings, sources, busy=lambda: False)

    async def scenario() -> list[tuple[Any, ProbeResult]]:
        for _ in range(3):
            assert (await game.poll_now()).phase == "off"
        return game.answers

    answers = asyncio.run(scenario())
    by_name = {probe.name: result for probe, result in answers}
    assert by_name["NVML"] == ProbeResult(None, "no NVIDIA driver (NVML Shared Library Not Found)")
    assert by_name["Switch"] == ProbeResult(False, "off")


def test_a_probe_that_raises_anyway_does_not_stop_the_others(private_data_dir: Path) -> None:
    class Broken:
        name = "Broken"

        def check(self) -> ProbeResult:
            raise ValueError("bad probe")

    settings = Settings()
    sources = SourceManager(lambda: settings, lambda _name: None)
    game = GameMode([Broken(), ScriptedProbe([True])], lambda: settings, sources, busy=lambda: False)
    state = asyncio.run(game.poll_now())
    assert state.phase == "on"
    assert game.answers[0][1] == ProbeResult(None, "failed (ValueError: bad probe)")
