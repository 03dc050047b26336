"""NVIDIA GPUs through NVML or nvidia-smi, and what a CUDA build says about the driver.

The GPU, NVML's answers and a CUDA build are outside this machine: a scripted NVML, tiny
nvidia-smi scripts and a stand-in "python" that prints a CUDA build's probe answer replace them.
Everything else (the fallback order, the parsing, the messages) is the real code.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from nexus_desktop.llm.hardware import (
    GpuInfo,
    GpuProbeError,
    cuda_driver_problem,
    cuda_version_text,
    describe_backend,
    describe_gpus,
    gpu_report,
    llama_build_info,
    nvidia_gpus,
    parse_nvidia_smi,
    read_nvml,
)

GIB = 1024**3


class ScriptedNvml:
    """Answers as pynvml does for the GPUs given; ``fail_at`` names a call that raises."""

    def __init__(self, gpus: list[tuple[bytes | str, int, int]], fail_at: str = "") -> None:
        self.gpus, self.fail_at = gpus, fail_at
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> object:
        def call(*args: object) -> object:
            self.calls.append(name)
            if name == self.fail_at:
                raise RuntimeError(f"{name} says Unknown Error")
            return self._answer(name, *args)

        return call

    def _answer(self, name: str, *args: object) -> object:
        gpu = self.gpus[args[0]] if name == "nvmlDeviceGetHandleByIndex" else None
        answers: dict[str, object] = {
            "nvmlSystemGetDriverVersion": "550.54.14",
            "nvmlSystemGetCudaDriverVersion": 12040,
            "nvmlDeviceGetCount": len(self.gpus),
            "nvmlDeviceGetHandleByIndex": gpu,
        }
        if name == "nvmlDeviceGetName":
            return args[0][0]  # type: ignore[index]
        if name == "nvmlDeviceGetMemoryInfo":
            return SimpleNamespace(total=args[0][1], free=args[0][2])  # type: ignore[index]
        return answers.get(name)


@pytest.fixture
def no_nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    return bin_dir


@pytest.fixture
def fresh_caches() -> Iterator[None]:
    llama_build_info.cache_clear()
    nvidia_gpus.cache_clear()
    yield
    llama_build_info.cache_clear()
    nvidia_gpus.cache_clear()


def fake_nvidia_smi(bin_dir: Path, csv: str, cuda: str = "12.4") -> None:
    script = bin_dir / "nvidia-smi"
    script.write_text(
        "#!/bin/sh\n"
        f'if [ "$#" -gt 0 ]; then printf "%s\\n" "{csv}"; '
        f'else echo "| NVIDIA-SMI 550.54.14   Driver Version: 550.54.14   CUDA Version: {cuda} |"; fi\n'
    )
    script.chmod(0o755)


# --- NVML ---------------------------------------------------------------------------------


def test_nvml_lists_each_gpu_with_vram_driver_and_cuda_version() -> None:
    nvml = ScriptedNvml(
        [(b"NVIDIA GeForce RTX 4090", 24 * GIB, 20 * GIB), ("NVIDIA H200", 141 * GIB, 140 * GIB)]
    )
    assert read_nvml(nvml) == (
        GpuInfo("NVIDIA GeForce RTX 4090", 24576, 20480, "550.54.14", "12.4"),
        GpuInfo("NVIDIA H200", 144384, 143360, "550.54.14", "12.4"),
    )
    assert nvml.calls[0] == "nvmlInit" and nvml.calls[-1] == "nvmlShutdown"
    report = gpu_report(nvml)
    assert report.source == "NVML" and report.problem == ""
    assert describe_gpus(report) == (
        "NVIDIA GeForce RTX 4090, 24.0 GB VRAM, 20.0 GB free, driver 550.54.14 (CUDA 12.4); "
        "NVIDIA H200, 141.0 GB VRAM, 140.0 GB free, driver 550.54.14 (CUDA 12.4) [NVML]"
    )


def test_nvml_not_installed_gives_the_reason(monkeypatch: pytest.MonkeyPatch, no_nvidia_smi: Path) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml now raises ImportError
    with pytest.raises(GpuProbeError, match=r"^NVML unavailable: nvidia-ml-py is not installed$"):
        read_nvml()
    report = gpu_report()
    assert report.gpus == () and report.source == ""
    assert report.problem == "NVML unavailable: nvidia-ml-py is not installed; nvidia-smi not found"
    assert describe_gpus(report) == f"no NVIDIA GPU found ({report.problem})"


def test_nvml_that_cannot_start_gives_its_reason(no_nvidia_smi: Path) -> None:
    nvml = ScriptedNvml([], fail_at="nvmlInit")
    report = gpu_report(nvml)
    assert report.gpus == ()
    assert report.problem == "NVML unavailable: nvmlInit says Unknown Error; nvidia-smi not found"
    assert "nvmlShutdown" not in nvml.calls


def test_real_nvml_without_a_driver_says_so(no_nvidia_smi: Path) -> None:
    pynvml = pytest.importorskip("pynvml")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        pass
    else:
        pynvml.nvmlShutdown()
        pytest.skip("this machine has an NVIDIA driver")
    report = gpu_report()
    assert report.gpus == () and report.problem.startswith("NVML unavailable: ")


def test_nvml_failing_mid_read_is_reported_and_closed(no_nvidia_smi: Path) -> None:
    nvml = ScriptedNvml([(b"NVIDIA GeForce RTX 3060", 12 * GIB, 11 * GIB)], fail_at="nvmlDeviceGetMemoryInfo")
    with pytest.raises(GpuProbeError, match=r"^NVML failed: nvmlDeviceGetMemoryInfo says Unknown Error$"):
        read_nvml(nvml)
    assert nvml.calls[-1] == "nvmlShutdown"


def test_nvml_failing_falls_back_to_nvidia_smi(no_nvidia_smi: Path) -> None:
    fake_nvidia_smi(no_nvidia_smi, "NVIDIA GeForce RTX 4070, 12282, 11000, 551.86", cuda="12.3")
    report = gpu_report(ScriptedNvml([], fail_at="nvmlInit"))
    assert report.source == "nvidia-smi" and report.problem == ""
    assert report.gpus == (GpuInfo("NVIDIA GeForce RTX 4070", 12282, 11000, "551.86", "12.3"),)


# --- nvidia-smi's CSV ---------------------------------------------------------------------


def test_nvidia_smi_csv_is_parsed_with_and_without_the_driver_column() -> None:
    csv = "NVIDIA GeForce RTX 4090, 24564, 23012, 550.54.14\nNVIDIA RTX A6000, 49140, 48000\n"
    assert parse_nvidia_smi(csv, "12.4") == (
        GpuInfo("NVIDIA GeForce RTX 4090", 24564, 23012, "550.54.14", "12.4"),
        GpuInfo("NVIDIA RTX A6000", 49140, 48000, "", "12.4"),
    )


def test_nvidia_smi_lines_without_memory_figures_are_skipped() -> None:
    csv = (
        "NVIDIA GeForce GTX 1050, [N/A], [N/A], 470.1\n\nNo devices were found\n"
        "GPU, With, Comma, 8192, 8000, 535.2\n"
    )
    assert parse_nvidia_smi(csv) == (GpuInfo("GPU, With, Comma", 8192, 8000, "535.2"),)


def test_nvidia_smi_that_fails_is_reported(no_nvidia_smi: Path) -> None:
    script = no_nvidia_smi / "nvidia-smi"
    script.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed' >&2\nexit 9\n")
    script.chmod(0o755)
    report = gpu_report(ScriptedNvml([], fail_at="nvmlInit"))
    assert report.gpus == ()
    assert report.problem.startswith("NVML unavailable: nvmlInit says Unknown Error; nvidia-smi failed: ")


# --- The driver against a CUDA build ------------------------------------------------------


def test_cuda_versions_are_written_as_people_write_them() -> None:
    assert [cuda_version_text(v) for v in (12040, 11080, 13000, 0)] == ["12.4", "11.8", "13.0", ""]


def test_driver_older_than_the_build_is_explained() -> None:
    message = cuda_driver_problem("11.8", "12.4")
    assert message.startswith(
        "Your NVIDIA driver supports CUDA 11.8; this build needs 12.4: "
        "update the driver or use the Vulkan/CPU build"
    )
    assert 'CMAKE_ARGS="-DGGML_VULKAN=on"' in message


def test_driver_newer_than_or_equal_to_the_build_is_fine() -> None:
    assert cuda_driver_problem("12.4", "12.2") == ""
    assert cuda_driver_problem("12.4", "12.4") == ""
    assert cuda_driver_problem("13.0", "12.4", cuda_started=False) == ""


def test_older_minor_version_is_blamed_only_when_cuda_did_not_start() -> None:
    # CUDA's minor version compatibility: a 12.2 driver usually runs a 12.4 build.
    assert cuda_driver_problem("12.2", "12.4", cuda_started=True) == ""
    assert cuda_driver_problem("12.2", "12.4", cuda_started=False).startswith(
        "Your NVIDIA driver supports CUDA 12.2; this build needs 12.4"
    )


def test_unknown_versions_blame_nothing() -> None:
    assert cuda_driver_problem("", "12.4") == "" and cuda_driver_problem("11.8", "") == ""


def fake_python(bin_dir: Path, probe: dict[str, object] | None, stderr: str = "") -> str:
    """A "python" that answers the build probe as a given llama.cpp build would."""
    script = bin_dir / "python-with-llama"
    body = f"echo '{json.dumps(probe)}'" if probe else f"echo '{stderr}' >&2; exit 1"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return str(script)


def cuda_build_probe(devices: list[list[object]]) -> dict[str, object]:
    return {
        "version": "0.3.36",
        "gpu": any(device[0] == "CUDA" for device in devices),  # as llama_supports_gpu_offload
        "dry": True,
        "system_info": "CUDA : ARCHS = 890 | CPU : AVX2 = 1 | ",
        "backends": ["CUDA", "CPU"],
        "devices": devices,
        "cuda_runtime": 12040,
    }


def test_cuda_build_on_an_old_driver_says_to_update_it(
    no_nvidia_smi: Path, monkeypatch: pytest.MonkeyPatch, fresh_caches: None
) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)
    fake_nvidia_smi(no_nvidia_smi, "NVIDIA GeForce GTX 1080, 8192, 8000, 470.57", cuda="11.4")
    info = llama_build_info(fake_python(no_nvidia_smi, cuda_build_probe([])))
    assert info.backend == "CUDA" and info.cuda_runtime == "12.4" and info.devices == ()
    assert info.hint.startswith(
        "Your NVIDIA driver supports CUDA 11.4; this build needs 12.4: update the driver"
    )
    assert describe_backend(info) == "CPU (the CUDA build found no usable GPU)"


def test_cuda_build_that_found_its_gpu_needs_nothing(no_nvidia_smi: Path, fresh_caches: None) -> None:
    device = ["CUDA", "NVIDIA GeForce RTX 4090", 24 * GIB, 22 * GIB]
    cpu = ["CPU", "AMD Ryzen 9", 64 * GIB, 60 * GIB]
    info = llama_build_info(fake_python(no_nvidia_smi, cuda_build_probe([device, cpu])))
    assert info.hint == "" and info.supports_gpu_offload
    assert [(d.backend, d.name, d.vram_total_mb) for d in info.devices] == [
        ("CUDA", "NVIDIA GeForce RTX 4090", 24576)
    ]
    assert describe_backend(info) == "CUDA on NVIDIA GeForce RTX 4090 (24.0 GB VRAM, 22.0 GB free)"


def test_build_without_a_reachable_registry_reads_the_system_info(
    no_nvidia_smi: Path, fresh_caches: None
) -> None:
    probe = {
        **cuda_build_probe([]),
        "gpu": True,
        "backends": None,
        "devices": None,
        "system_info": "CUDA : ARCHS = 890 | CPU : AVX = 1 | ",
    }
    info = llama_build_info(fake_python(no_nvidia_smi, probe))
    assert info.backend == "CUDA" and info.hint == ""  # nothing known against it: no false alarm
    assert describe_backend(info) == "CUDA"


def test_build_that_does_not_load_says_why(no_nvidia_smi: Path, fresh_caches: None) -> None:
    error = "OSError: libcuda.so.1: cannot open shared object file: No such file or directory"
    info = llama_build_info(fake_python(no_nvidia_smi, None, stderr=error))
    assert info.version is None
    assert info.hint == f"llama-cpp-python does not load ({error}); run: pip install llama-cpp-python==0.3.36"


def test_real_cpu_build_names_the_cpu_backend(fresh_caches: None) -> None:
    info = llama_build_info()
    assert info.version == "0.3.36"
    if info.supports_gpu_offload:
        pytest.skip("this machine has a GPU build")
    assert info.backend == "CPU" and info.devices == () and info.cuda_runtime == ""
