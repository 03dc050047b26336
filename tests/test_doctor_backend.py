"""`nexus doctor` and the settings page say which llama.cpp backend runs, on which GPU, and why not.

The real CLI runs against the real installed llama.cpp build (CPU on this machine).  Only the GPU
is stood in for: a tiny nvidia-smi script, read when NVML finds no driver.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nexus_desktop.llm.hardware import llama_build_info

NEXUS = Path(sys.executable).with_name("nexus")


def doctor(tmp_path: Path, path_prefix: str = "") -> dict[str, str]:
    env = {**os.environ, "NEXUS_DATA_DIR": str(tmp_path / "data")}
    if path_prefix:
        env["PATH"] = f"{path_prefix}{os.pathsep}{env['PATH']}"
    result = subprocess.run([str(NEXUS), "doctor"], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    rows = {}
    for line in result.stdout.splitlines():
        label, _, value = line.partition(":")
        rows[label] = value.strip()
    return rows


@pytest.fixture(scope="module")
def cpu_build() -> None:
    info = llama_build_info()
    if info.supports_gpu_offload:
        pytest.skip("this machine has a GPU build of llama.cpp")


def nvml_has_a_driver() -> bool:
    pynvml = pytest.importorskip("pynvml")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return False
    pynvml.nvmlShutdown()
    return True


def test_doctor_names_the_cpu_backend_of_the_installed_build(tmp_path: Path, cpu_build: None) -> None:
    rows = doctor(tmp_path)
    assert rows["llama.cpp"] == "llama-cpp-python 0.3.36, CPU build"
    assert rows["Backend"].startswith("CPU. This llama.cpp build runs on the CPU only;")
    assert 'CMAKE_ARGS="-DGGML_CUDA=on"' in rows["Backend"]
    if not nvml_has_a_driver() and not any(
        (Path(folder) / "nvidia-smi").exists() for folder in os.environ["PATH"].split(os.pathsep)
    ):
        assert rows["GPU"].startswith("no NVIDIA GPU found (NVML unavailable: ")
        assert rows["GPU"].endswith("; nvidia-smi not found)")


def test_doctor_names_the_gpu_and_the_way_to_use_it(tmp_path: Path, cpu_build: None) -> None:
    if nvml_has_a_driver():
        pytest.skip("a real NVIDIA driver answers here, not the stand-in")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text(
        "#!/bin/sh\n"
        'if [ "$#" -gt 0 ]; then echo "NVIDIA GeForce RTX 4090, 24564, 23012, 550.54.14"; '
        'else echo "Driver Version: 550.54.14   CUDA Version: 12.4"; fi\n'
    )
    smi.chmod(0o755)
    rows = doctor(tmp_path, str(bin_dir))
    assert rows["GPU"] == (
        "NVIDIA GeForce RTX 4090, 24.0 GB VRAM, 22.5 GB free, driver 550.54.14 (CUDA 12.4) [nvidia-smi]"
    )
    assert rows["Backend"].startswith(
        "CPU. This llama.cpp build runs on the CPU only; for your NVIDIA GPU run: "
        'CMAKE_ARGS="-DGGML_CUDA=on" pip install'
    )


def test_settings_show_the_same_backend_and_hint(cpu_build: None) -> None:
    from nexus_desktop.ui.build_info import describe_build

    short, detail = describe_build()
    assert short == "llama.cpp 0.3.36 · CPU"
    assert detail == llama_build_info().hint and detail.startswith(
        "This llama.cpp build runs on the CPU only;"
    )
