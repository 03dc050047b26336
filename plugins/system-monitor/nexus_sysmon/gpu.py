"""NVIDIA GPUs and their memory: NVML through pynvml when installed, else nvidia-smi, else none."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from typing import Any

NO_GPU = "No NVIDIA GPU found"
_SMI_TIMEOUT_SECONDS = 10


@dataclass(frozen=True)
class Gpu:
    name: str
    total_mib: int
    used_mib: int
    utilization_percent: int | None

    def describe(self) -> str:
        load = f", {self.utilization_percent}% busy" if self.utilization_percent is not None else ""
        return f"{self.name}: {self.used_mib:,} of {self.total_mib:,} MiB VRAM used{load}"


def nvidia_gpus() -> list[Gpu]:
    """Every NVIDIA GPU; an empty list when there is none or no driver (never raises)."""
    found = _from_nvml()
    return found if found is not None else _from_nvidia_smi()


def _from_nvml() -> list[Gpu] | None:
    try:
        import pynvml  # type: ignore[import-not-found]
    except ImportError:
        return None
    nvml: Any = pynvml
    try:
        nvml.nvmlInit()
    except Exception:  # NVMLError: no driver or no GPU; nvidia-smi will say the same, or more
        return None
    try:
        gpus = []
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            name = nvml.nvmlDeviceGetName(handle)
            memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            try:
                busy: int | None = int(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
            except Exception:
                busy = None
            gpus.append(
                Gpu(
                    name.decode() if isinstance(name, bytes) else str(name),
                    int(memory.total) // 2**20,
                    int(memory.used) // 2**20,
                    busy,
                )
            )
        return gpus
    except Exception:
        return None
    finally:
        try:
            nvml.nvmlShutdown()
        except Exception:
            pass


def _from_nvidia_smi() -> list[Gpu]:
    program = shutil.which("nvidia-smi")
    if program is None:
        return []
    query = "--query-gpu=name,memory.total,memory.used,utilization.gpu"
    try:
        done = subprocess.run(
            [program, query, "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=_SMI_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return []
    if done.returncode != 0:
        return []
    gpus = []
    for line in done.stdout.splitlines():
        fields = [field.strip() for field in line.split(",")]
        if len(fields) < 3:
            continue
        try:
            total, used = int(float(fields[1])), int(float(fields[2]))
        except ValueError:
            continue
        busy = int(float(fields[3])) if len(fields) > 3 and _is_number(fields[3]) else None
        gpus.append(Gpu(fields[0], total, used, busy))
    return gpus


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
