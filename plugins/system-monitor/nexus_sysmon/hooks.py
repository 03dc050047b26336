"""The system monitor's hooks: an overview tool, a busiest-programs tool and a dashboard panel."""

from __future__ import annotations

import time
from collections.abc import Callable

import psutil

from nexus_desktop.modules.hookspecs import hookimpl
from nexus_desktop.modules.specs import DashboardPanelSpec, ToolSpec
from nexus_sysmon.gpu import NO_GPU, nvidia_gpus

# CPU percentages are a rate: psutil needs two readings this far apart.
SAMPLE_SECONDS = 0.3
MAX_PROCESSES = 25


def _gib(value: float) -> str:
    return f"{value / 2**30:.1f} GiB"


def overview() -> str:
    """CPU, RAM and GPU in a few lines a character can read out."""
    cpu = psutil.cpu_percent(interval=SAMPLE_SECONDS)
    memory = psutil.virtual_memory()
    lines = [
        f"CPU: {cpu:.0f}% busy on {psutil.cpu_count() or 1} logical cores",
        f"RAM: {_gib(memory.used)} of {_gib(memory.total)} used ({memory.percent:.0f}%)",
    ]
    gpus = nvidia_gpus()
    lines += [f"GPU {index}: {gpu.describe()}" for index, gpu in enumerate(gpus)] or [f"GPU: {NO_GPU}"]
    return "\n".join(lines)


def top_processes(count: int = 5, sort_by: str = "cpu") -> str:
    """The ``count`` programs using the most CPU (or memory), one per line."""
    processes = list(psutil.process_iter(["pid", "name"]))
    for process in processes:
        try:
            process.cpu_percent(None)  # first reading; the second, after the pause, is the rate
        except psutil.Error:
            pass
    time.sleep(SAMPLE_SECONDS)
    rows = []
    for process in processes:
        try:
            rows.append(
                (
                    process.info["name"] or "?",
                    process.pid,
                    process.cpu_percent(None),
                    process.memory_info().rss,
                )
            )
        except psutil.Error:
            continue  # it ended, or belongs to someone we may not look at
    key = 2 if sort_by == "cpu" else 3
    rows.sort(key=lambda row: row[key], reverse=True)
    lines = [f"{name} (pid {pid}): {cpu:.0f}% CPU, {_gib(rss)} RAM" for name, pid, cpu, rss in rows[:count]]
    return "\n".join(lines) or "No programs could be read."


def panel() -> dict[str, str]:
    memory = psutil.virtual_memory()
    gpus = nvidia_gpus()
    values = {
        "CPU": f"{psutil.cpu_percent(interval=None):.0f}%",
        "RAM": f"{_gib(memory.used)} / {_gib(memory.total)}",
    }
    for index, gpu in enumerate(gpus):
        values[f"VRAM {index}"] = f"{gpu.used_mib:,} / {gpu.total_mib:,} MiB"
    if not gpus:
        values["GPU"] = NO_GPU
    return values


class SystemMonitorPlugin:
    @hookimpl
    def register_tools(self, register: Callable[[ToolSpec], None]) -> None:
        register(
            ToolSpec(
                name="system-monitor.status",
                description="How busy this computer is: CPU, RAM, and NVIDIA GPU memory (VRAM).",
                parameters={"type": "object", "properties": {}, "additionalProperties": False},
                function=overview,
            )
        )
        register(
            ToolSpec(
                name="system-monitor.top",
                description="The programs using the most CPU or memory right now.",
                parameters={
                    "type": "object",
                    "properties": {
                        "count": {"type": "integer", "minimum": 1, "maximum": MAX_PROCESSES},
                        "sort_by": {"enum": ["cpu", "memory"]},
                    },
                    "additionalProperties": False,
                },
                function=top_processes,
            )
        )

    @hookimpl
    def register_dashboard_panels(self, register: Callable[[DashboardPanelSpec], None]) -> None:
        register(DashboardPanelSpec("system-monitor.usage", "This computer", panel, refresh_seconds=5))


plugin = SystemMonitorPlugin()
