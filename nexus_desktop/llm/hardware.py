"""What the machine offers llama.cpp: the installed build and its backend, and NVIDIA GPUs.

The build is probed in a short-lived Python that imports ``llama_cpp`` (so the GUI never imports
llama.cpp on its own thread, and a build that crashes on import is a finding, not a crash); GPUs
are read through NVML (``nvidia-ml-py``), or ``nvidia-smi`` where NVML is unavailable.  Both
block for up to a few seconds: call them from an executor.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from typing import Any, NamedTuple

PINNED_LLAMA_CPP_VERSION = "0.3.36"
MIB = 1024 * 1024
NOT_GPU_BACKENDS = frozenset({"CPU", "BLAS", "RPC"})
"""ggml backends that run beside the CPU rather than on a graphics card."""

# ggml's backend registry is reached through libllama's handle (dlsym searches its dependencies);
# where the loader does not allow that, the build's system info string names the backends.
_PROBE = r"""
import ctypes, json, llama_cpp
from llama_cpp import llama_cpp as low
P, S = ctypes.c_void_p, ctypes.c_size_t
def call(name, restype, argtypes, *args):
    function = getattr(low._lib, name)
    function.restype, function.argtypes = restype, argtypes
    return function(*args)
def reg_name(reg):
    return call("ggml_backend_reg_name", ctypes.c_char_p, [P], reg).decode()
backends = devices = None
try:
    count = call("ggml_backend_reg_count", S, [])
    backends = [reg_name(call("ggml_backend_reg_get", P, [S], i)) for i in range(count)]
    devices = []
    for i in range(call("ggml_backend_dev_count", S, [])):
        dev = call("ggml_backend_dev_get", P, [S], i)
        free, total = S(0), S(0)
        call("ggml_backend_dev_memory", None, [P, ctypes.POINTER(S), ctypes.POINTER(S)],
             dev, ctypes.byref(free), ctypes.byref(total))
        description = call("ggml_backend_dev_description", ctypes.c_char_p, [P], dev)
        devices.append([reg_name(call("ggml_backend_dev_backend_reg", P, [P], dev)),
                        description.decode(errors="replace"), total.value, free.value])
except AttributeError:
    pass
cuda_runtime = ctypes.c_int(0)
try:
    call("cudaRuntimeGetVersion", ctypes.c_int, [ctypes.POINTER(ctypes.c_int)],
         ctypes.byref(cuda_runtime))
except AttributeError:
    pass
print(json.dumps({"version": llama_cpp.__version__,
                  "gpu": bool(llama_cpp.llama_supports_gpu_offload()),
                  "dry": hasattr(llama_cpp, "llama_sampler_init_dry"),
                  "system_info": low.llama_print_system_info().decode(errors="replace"),
                  "backends": backends, "devices": devices, "cuda_runtime": cuda_runtime.value}))
"""


@dataclass(frozen=True)
class GpuInfo:
    name: str
    vram_total_mb: int
    vram_free_mb: int
    driver_version: str = ""
    cuda_version: str = ""
    """The newest CUDA the driver supports ("12.4"); empty when unknown."""


@dataclass(frozen=True)
class GpuReport:
    gpus: tuple[GpuInfo, ...]
    source: str
    """How they were read: "NVML", "nvidia-smi", or "" when neither worked."""
    problem: str = ""
    """Why no GPU was read (NVML missing or failing, no nvidia-smi); empty when one was."""


@dataclass(frozen=True)
class BackendDevice:
    """A device llama.cpp itself can use, as its backend describes it."""

    backend: str
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
    backend: str = "CPU"
    """The build's GPU backend ("CUDA", "Vulkan", "Metal", ...), or "CPU" when it has none."""
    devices: tuple[BackendDevice, ...] = ()
    """The GPUs that backend found (empty on a CPU build, or when the registry was out of reach)."""
    cuda_runtime: str = ""
    """The CUDA version a CUDA build was made with ("12.4"); empty when unknown or not CUDA."""


def gpu_build_command(version: str = PINNED_LLAMA_CPP_VERSION, backend: str = "CUDA") -> str:
    flag = "-DGGML_CUDA=on" if backend == "CUDA" else "-DGGML_VULKAN=on"
    return f'CMAKE_ARGS="{flag}" pip install --force-reinstall --no-cache-dir llama-cpp-python=={version}'


def cuda_version_text(encoded: int) -> str:
    """CUDA's integer version (12040) as people write it ("12.4"); empty for 0 (unknown)."""
    return f"{encoded // 1000}.{encoded % 1000 // 10}" if encoded > 0 else ""


def cuda_driver_problem(driver_cuda: str, build_cuda: str, *, cuda_started: bool = True) -> str:
    """The message when the NVIDIA driver is too old for a CUDA build; empty when it is not.

    An older major version never works.  An older minor version usually does (CUDA's minor
    version compatibility), so it is blamed only when the CUDA backend found no GPU.
    """
    if not driver_cuda or not build_cuda:
        return ""
    driver, build = _version_tuple(driver_cuda), _version_tuple(build_cuda)
    if driver >= build or (driver[:1] == build[:1] and cuda_started):
        return ""
    return (
        f"Your NVIDIA driver supports CUDA {driver_cuda}; this build needs {build_cuda}: "
        "update the driver or use the Vulkan/CPU build "
        f"({gpu_build_command(backend='Vulkan')})."
    )


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text))


@functools.lru_cache(maxsize=4)
def llama_build_info(python: str = sys.executable, timeout: float = 60.0) -> LlamaBuildInfo:
    """Which llama-cpp-python build ``python`` has, its backend, and what to do if it lacks one."""
    try:
        result = subprocess.run(
            [python, "-c", _PROBE], capture_output=True, text=True, timeout=timeout, check=False
        )
        probe = json.loads(result.stdout.strip().splitlines()[-1]) if result.returncode == 0 else None
        failure = (result.stderr.strip().splitlines() or ["it exited with no message"])[-1]
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError) as error:
        probe, failure = None, str(error)
    if probe is None:
        install = f"pip install llama-cpp-python=={PINNED_LLAMA_CPP_VERSION}"
        if "No module named 'llama_cpp'" in failure:
            return LlamaBuildInfo(None, False, f"llama-cpp-python is not installed; run: {install}")
        return LlamaBuildInfo(None, False, f"llama-cpp-python does not load ({failure}); run: {install}")
    version, dry = str(probe["version"]), bool(probe.get("dry"))
    backends = probe.get("backends") or re.findall(r"(\w+) : ", str(probe.get("system_info", "")))
    backend = next((name for name in backends if name not in NOT_GPU_BACKENDS), "CPU")
    if probe["gpu"] and backend == "CPU":
        backend = "GPU"  # offload works, but neither the registry nor the system info named it
    devices = tuple(
        BackendDevice(name, description, total // MIB, free // MIB)
        for name, description, total, free in probe.get("devices") or ()
        if name == backend and name not in NOT_GPU_BACKENDS
    )
    cuda_runtime = cuda_version_text(int(probe.get("cuda_runtime") or 0))
    registry_read = probe.get("devices") is not None
    hint = _build_hint(version, backend, devices, cuda_runtime, registry_read=registry_read)
    return LlamaBuildInfo(version, bool(probe["gpu"]), hint, dry, backend, devices, cuda_runtime)


def _build_hint(
    version: str, backend: str, devices: tuple[BackendDevice, ...], cuda_runtime: str, *, registry_read: bool
) -> str:
    if backend != "CPU":
        if devices or not registry_read:
            return ""
        driver_cuda = next((gpu.cuda_version for gpu in gpu_report().gpus if gpu.cuda_version), "")
        too_old = cuda_driver_problem(driver_cuda, cuda_runtime, cuda_started=False)
        return too_old or (
            f"This {backend} build of llama.cpp found no GPU it can use, so models run on the CPU: "
            "check the GPU driver (nexus doctor shows what was found)."
        )
    if nvidia_gpus():
        return (
            "This llama.cpp build runs on the CPU only; for your NVIDIA GPU run: "
            f"{gpu_build_command(version)}"
        )
    return (
        "This llama.cpp build runs on the CPU only; with an NVIDIA GPU run "
        f"{gpu_build_command(version)} (for AMD or Intel GPUs use -DGGML_VULKAN=on)."
    )


def describe_backend(info: LlamaBuildInfo) -> str:
    """Which backend runs and on which GPU: "CUDA on NVIDIA GeForce RTX 4090 (24.0 GB VRAM, ...)"."""
    if info.backend != "CPU" and not info.devices and not info.supports_gpu_offload:
        return f"CPU (the {info.backend} build found no usable GPU)"
    if info.backend == "CPU" or not info.devices:
        return info.backend
    return f"{info.backend} on {describe_devices(info.devices)}"


def describe_devices(devices: tuple[BackendDevice, ...]) -> str:
    return ", ".join(
        f"{device.name} ({_vram(device.vram_total_mb, device.vram_free_mb)})" for device in devices
    )


def describe_gpus(report: GpuReport) -> str:
    """The NVIDIA GPUs with their VRAM and driver, or why none was read."""
    if not report.gpus:
        return f"no NVIDIA GPU found ({report.problem})" if report.problem else "no NVIDIA GPU found"
    lines = []
    for gpu in report.gpus:
        driver = f", driver {gpu.driver_version}" if gpu.driver_version else ""
        cuda = f" (CUDA {gpu.cuda_version})" if gpu.cuda_version else ""
        lines.append(f"{gpu.name}, {_vram(gpu.vram_total_mb, gpu.vram_free_mb)}{driver}{cuda}")
    return "; ".join(lines) + f" [{report.source}]"


def _vram(total_mb: int, free_mb: int) -> str:
    return f"{total_mb / 1024:.1f} GB VRAM, {free_mb / 1024:.1f} GB free"


def read_nvml(nvml: Any = None) -> tuple[GpuInfo, ...]:
    """NVIDIA GPUs through NVML; ``nvml`` is the ``pynvml`` module (or a scripted stand-in).

    Raises GpuProbeError saying why when NVML is missing or fails.
    """
    if nvml is None:
        try:
            import pynvml
        except ImportError:
            raise GpuProbeError("NVML unavailable: nvidia-ml-py is not installed") from None
        nvml = pynvml
    try:
        nvml.nvmlInit()
    except Exception as error:  # NVMLError_LibraryNotFound, _DriverNotLoaded, ...: all mean "no NVML"
        raise GpuProbeError(f"NVML unavailable: {error}") from None
    try:
        driver = _text(nvml.nvmlSystemGetDriverVersion())
        cuda = cuda_version_text(int(nvml.nvmlSystemGetCudaDriverVersion()))
        gpus = []
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            name = _text(nvml.nvmlDeviceGetName(handle))
            gpus.append(GpuInfo(name, memory.total // MIB, memory.free // MIB, driver, cuda))
        return tuple(gpus)
    except Exception as error:  # a GPU that fell off the bus, a driver mid-update
        raise GpuProbeError(f"NVML failed: {error}") from None
    finally:
        try:
            nvml.nvmlShutdown()
        except Exception:  # what was read stays true whether or not NVML closes cleanly
            pass


class GpuProbeError(Exception):
    """Why a GPU probe read nothing, in words for the user."""


def _text(value: str | bytes) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def parse_nvidia_smi(csv: str, cuda_version: str = "") -> tuple[GpuInfo, ...]:
    """``nvidia-smi --query-gpu=name,memory.total,memory.free,driver_version`` CSV (no header/units)."""
    gpus = []
    for line in csv.splitlines():
        fields = [field.strip() for field in line.split(",")]
        driver = fields.pop() if len(fields) >= 4 and not fields[-1].isdigit() else ""
        if len(fields) >= 3 and fields[-2].isdigit() and fields[-1].isdigit():
            name = ", ".join(fields[:-2])
            gpus.append(GpuInfo(name, int(fields[-2]), int(fields[-1]), driver, cuda_version))
    return tuple(gpus)


def read_nvidia_smi(timeout: float = 5.0) -> tuple[GpuInfo, ...]:
    executable = shutil.which("nvidia-smi")
    if executable is None:
        raise GpuProbeError("nvidia-smi not found")
    query = "--query-gpu=name,memory.total,memory.free,driver_version"
    try:
        listing = subprocess.run(
            [executable, query, "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        ).stdout
        gpus = parse_nvidia_smi(listing)
        if not gpus:
            return ()
        # The CUDA version appears only in the summary's header ("CUDA Version: 12.4").
        summary = subprocess.run([executable], capture_output=True, text=True, timeout=timeout).stdout
    except (OSError, subprocess.SubprocessError) as error:
        raise GpuProbeError(f"nvidia-smi failed: {error}") from None
    cuda = re.search(r"CUDA Version:\s*([\d.]+)", summary)
    return parse_nvidia_smi(listing, cuda.group(1) if cuda else "")


def gpu_report(nvml: Any = None) -> GpuReport:
    """NVIDIA GPUs through NVML, else nvidia-smi, with the reason when neither reads one."""
    try:
        gpus = read_nvml(nvml)
        return GpuReport(gpus, "NVML", "" if gpus else "NVML lists no GPU")
    except GpuProbeError as error:
        nvml_problem = str(error)
    try:
        gpus = read_nvidia_smi()
    except GpuProbeError as error:
        return GpuReport((), "", f"{nvml_problem}; {error}")
    return GpuReport(gpus, "nvidia-smi", "" if gpus else f"{nvml_problem}; nvidia-smi lists no GPU")


@functools.lru_cache(maxsize=1)
def nvidia_gpus() -> tuple[GpuInfo, ...]:
    """NVIDIA GPUs (cached for the life of the process); empty when none can be read."""
    return gpu_report().gpus
