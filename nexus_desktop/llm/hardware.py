"""What the machine offers llama.cpp: the installed build and NVIDIA GPUs.

Both probes run other programs (a short-lived Python that imports ``llama_cpp``, and
``nvidia-smi``), so the GUI never imports llama.cpp on its own thread.  They block for up to a
few seconds: call them from an executor.  Results are cached for the life of the process.
"""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from typing import NamedTuple

PINNED_LLAMA_CPP_VERSION = "0.3.36"

_PROBE = (
    "import json, llama_cpp\n"
    "print(json.dumps({'version': llama_cpp.__version__,"
    " 'gpu': bool(llama_cpp.llama_supports_gpu_offload()),"
    " 'dry': hasattr(llama_cpp, 'llama_sampler_init_dry')}))\n"
)


@dataclass(frozen=True)
class GpuInfo:
    name: str
    vram_total_mb: int
    vram_free_mb: int


class LlamaBuildInfo(NamedTuple):
    version: str | None
    """None when llama-cpp-python is not installed or does not import."""
    supports_gpu_offload: bool
    hint: str
    """What to do next, for the settings page (empty when nothing needs doing)."""
    supports_dry: bool = False
    """Whether the build has llama.cpp's DRY sampler (the model worker applies it)."""


def gpu_build_command(version: str = PINNED_LLAMA_CPP_VERSION, backend: str = "CUDA") -> str:
    flag = "-DGGML_CUDA=on" if backend == "CUDA" else "-DGGML_VULKAN=on"
    return f'CMAKE_ARGS="{flag}" pip install --force-reinstall --no-cache-dir llama-cpp-python=={version}'


@functools.lru_cache(maxsize=4)
def llama_build_info(python: str = sys.executable, timeout: float = 60.0) -> LlamaBuildInfo:
    """Which llama-cpp-python build ``python`` has, and how to get GPU offload if it lacks it."""
    try:
        result = subprocess.run(
            [python, "-c", _PROBE], capture_output=True, text=True, timeout=timeout, check=False
        )
        probe = json.loads(result.stdout.strip().splitlines()[-1]) if result.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError):
        probe = None
    if probe is None:
        return LlamaBuildInfo(
            version=None,
            supports_gpu_offload=False,
            hint="llama-cpp-python is not installed; run: "
            f"pip install llama-cpp-python=={PINNED_LLAMA_CPP_VERSION}",
        )
    version, gpu, dry = str(probe["version"]), bool(probe["gpu"]), bool(probe.get("dry"))
    if gpu:
        return LlamaBuildInfo(version, True, "", dry)
    if nvidia_gpus():
        hint = (
            "This llama.cpp build runs on the CPU only; for your NVIDIA GPU run: "
            f"{gpu_build_command(version)}"
        )
    else:
        hint = (
            "This llama.cpp build runs on the CPU only; with an NVIDIA GPU run "
            f"{gpu_build_command(version)} (for AMD or Intel GPUs use -DGGML_VULKAN=on)."
        )
    return LlamaBuildInfo(version, False, hint, dry)


@functools.lru_cache(maxsize=1)
def nvidia_gpus(timeout: float = 5.0) -> tuple[GpuInfo, ...]:
    """NVIDIA GPUs as ``nvidia-smi`` reports them; empty when it is missing or fails."""
    executable = shutil.which("nvidia-smi")
    if executable is None:
        return ()
    query = [executable, "--query-gpu=name,memory.total,memory.free", "--format=csv,noheader,nounits"]
    try:
        result = subprocess.run(query, capture_output=True, text=True, timeout=timeout, check=True)
    except (OSError, subprocess.SubprocessError):
        return ()
    gpus = []
    for line in result.stdout.splitlines():
        parts = [part.strip() for part in line.rsplit(",", 2)]
        if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
            gpus.append(GpuInfo(parts[0], int(parts[1]), int(parts[2])))
    return tuple(gpus)
