"""The system monitor's tools on this machine, through pluggy's hooks; the GPU is outside it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pluggy
import pytest
from nexus_sysmon.hooks import plugin

from nexus_desktop.modules import hookspecs
from nexus_desktop.modules.specs import DashboardPanelSpec, ToolSpec


def manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    pm.register(plugin, name="system-monitor")
    return pm


@pytest.fixture(scope="module")
def tools() -> dict[str, ToolSpec]:
    found: list[ToolSpec] = []
    manager().hook.register_tools.call_historic(kwargs={"register": found.append})
    return {tool.name: tool for tool in found}


@pytest.fixture
def no_gpu_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No nvidia-smi and no pynvml: the machine has no NVIDIA GPU as far as the module can tell."""
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes ``import pynvml`` fail
    yield


def may_start_programs() -> bool:
    """False while NEXUS validates this module: nothing declared is granted before approval."""
    try:
        subprocess.run(["true"], check=False)
    except PermissionError:
        return False
    return True


@pytest.fixture
def fake_nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    if not may_start_programs():
        pytest.skip("starting programs (nvidia-smi) is not granted until the module is approved")
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho 'NVIDIA GeForce RTX 4090, 24564, 20012, 87'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setitem(sys.modules, "pynvml", None)
    yield


def test_status_reports_cpu_and_ram_of_this_machine(tools: dict[str, ToolSpec], no_gpu_tools: None) -> None:
    text = tools["system-monitor.status"].function()
    cpu = re.search(r"CPU: (\d+)% busy on (\d+) logical cores", text)
    ram = re.search(r"RAM: ([\d.]+) GiB of ([\d.]+) GiB used", text)
    assert cpu and 0 <= int(cpu.group(1)) <= 100 and int(cpu.group(2)) == os.cpu_count()
    assert ram and 0 < float(ram.group(1)) <= float(ram.group(2))


def test_without_an_nvidia_gpu_status_says_none_was_found(
    tools: dict[str, ToolSpec], no_gpu_tools: None
) -> None:
    assert "GPU: No NVIDIA GPU found" in tools["system-monitor.status"].function()


def test_vram_is_read_from_nvidia_smi(tools: dict[str, ToolSpec], fake_nvidia_smi: None) -> None:
    text = tools["system-monitor.status"].function()
    assert "GPU 0: NVIDIA GeForce RTX 4090: 20,012 of 24,564 MiB VRAM used, 87% busy" in text


def test_top_lists_the_busiest_programs_first(tools: dict[str, ToolSpec]) -> None:
    lines = tools["system-monitor.top"].function(count=5, sort_by="cpu").splitlines()
    shares = [float(re.search(r": ([\d.]+)% CPU", line).group(1)) for line in lines]  # type: ignore[union-attr]
    assert len(lines) == 5 and shares == sorted(shares, reverse=True)


def test_top_by_memory_lists_the_requested_number(tools: dict[str, ToolSpec]) -> None:
    lines = tools["system-monitor.top"].function(count=2, sort_by="memory").splitlines()
    assert len(lines) == 2 and all(
        re.search(r"\(pid \d+\): \d+% CPU, [\d.]+ GiB RAM", line) for line in lines
    )


def test_the_dashboard_panel_shows_cpu_ram_and_gpu(no_gpu_tools: None) -> None:
    panels: list[DashboardPanelSpec] = []
    manager().hook.register_dashboard_panels.call_historic(kwargs={"register": panels.append})
    values = panels[0].render()
    assert isinstance(values, dict)
    assert set(values) == {"CPU", "RAM", "GPU"} and values["GPU"] == "No NVIDIA GPU found"
