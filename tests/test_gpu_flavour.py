"""Which llama.cpp build set-up makes (installers/gpu-flavour.sh), with the tools stood in for.

Each test runs real bash on the real script with a PATH of tiny scripts named nvidia-smi, nvcc,
glslc or pkg-config: a GPU and its toolkits are outside this machine.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FLAVOUR_SCRIPT = ROOT / "installers" / "gpu-flavour.sh"
BASH = shutil.which("bash") or "/bin/bash"
CUDA_KEY = "cmake-" + hashlib.md5(b"-DGGML_CUDA=on").hexdigest()[:8]
VULKAN_KEY = "cmake-" + hashlib.md5(b"-DGGML_VULKAN=on").hexdigest()[:8]


def fake_tools(tmp_path: Path, **scripts: str) -> Path:
    """A bin folder holding only md5sum, cut and the named fakes (name -> shell body)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    for tool in ("md5sum", "cut"):
        real = shutil.which(tool)
        assert real, tool
        (bin_dir / tool).symlink_to(real)
    for name, body in scripts.items():
        fake = bin_dir / name.replace("_", "-")
        fake.write_text(f"#!{BASH}\n{body}\n")
        fake.chmod(0o755)
    return bin_dir


def run(bin_dir: Path, script: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {"PATH": str(bin_dir), "VULKAN_INCLUDE_DIRS": str(bin_dir / "no-headers"), **env}
    return subprocess.run(
        [BASH, "-c", f'set -euo pipefail; source "{FLAVOUR_SCRIPT}"; {script}'],
        env=environ,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def chosen(bin_dir: Path, **env: str) -> tuple[str, str, str]:
    """(CMAKE_ARGS, LLAMA_FLAVOUR, LLAMA_BACKEND) after llama_flavour."""
    result = run(bin_dir, 'llama_flavour; echo "$CMAKE_ARGS|$LLAMA_FLAVOUR|$LLAMA_BACKEND"', **env)
    assert result.returncode == 0, result.stderr
    cmake_args, flavour, backend = result.stdout.strip().split("|")
    return cmake_args, flavour, backend


def vulkan_headers(tmp_path: Path) -> str:
    include = tmp_path / "sdk" / "include"
    (include / "vulkan").mkdir(parents=True)
    (include / "vulkan" / "vulkan.h").write_text("/* Vulkan */\n")
    return str(include)


def test_nvidia_gpu_with_cuda_toolkit_builds_cuda(tmp_path: Path) -> None:
    bin_dir = fake_tools(tmp_path, nvidia_smi="exit 0", nvcc="echo 'release 12.4'")
    assert chosen(bin_dir) == ("-DGGML_CUDA=on", CUDA_KEY, "CUDA")


def test_cuda_wins_over_vulkan_when_both_toolchains_are_there(tmp_path: Path) -> None:
    bin_dir = fake_tools(tmp_path, nvidia_smi="exit 0", nvcc="exit 0", glslc="exit 0")
    assert chosen(bin_dir, VULKAN_INCLUDE_DIRS=vulkan_headers(tmp_path))[2] == "CUDA"


def test_nvcc_without_a_gpu_or_a_broken_nvcc_builds_for_the_cpu(tmp_path: Path) -> None:
    # CI's machines have a CUDA toolkit but no GPU: their CPU wheel cache must stay in use.
    assert chosen(fake_tools(tmp_path, nvcc="exit 0")) == ("", "cpu", "CPU")
    # An nvcc wrapper whose toolkit is gone does not count as a toolkit.
    broken = fake_tools(tmp_path / "broken", nvidia_smi="exit 0", nvcc="exit 127")
    assert chosen(broken) == ("", "cpu", "CPU")


def test_vulkan_toolchain_already_installed_builds_vulkan(tmp_path: Path) -> None:
    bin_dir = fake_tools(tmp_path, glslc="exit 0")
    assert chosen(bin_dir, VULKAN_INCLUDE_DIRS=vulkan_headers(tmp_path)) == (
        "-DGGML_VULKAN=on",
        VULKAN_KEY,
        "Vulkan",
    )
    # The headers found through pkg-config count too.
    with_pkg_config = fake_tools(tmp_path / "pc", glslc="exit 0", pkg_config='[ "$*" = "--exists vulkan" ]')
    assert chosen(with_pkg_config)[2] == "Vulkan"


def test_glslc_without_vulkan_headers_builds_for_the_cpu(tmp_path: Path) -> None:
    bin_dir = fake_tools(tmp_path, glslc="exit 0", pkg_config="exit 1")
    assert chosen(bin_dir) == ("", "cpu", "CPU")


def test_nexus_gpu_forces_a_flavour(tmp_path: Path) -> None:
    nothing = fake_tools(tmp_path)
    assert chosen(nothing, NEXUS_GPU="vulkan") == ("-DGGML_VULKAN=on", VULKAN_KEY, "Vulkan")
    assert chosen(nothing, NEXUS_GPU="cuda") == ("-DGGML_CUDA=on", CUDA_KEY, "CUDA")
    cuda_machine = fake_tools(tmp_path / "cuda", nvidia_smi="exit 0", nvcc="exit 0")
    assert chosen(cuda_machine, NEXUS_GPU="cpu") == ("", "cpu", "CPU")


def test_cmake_args_set_by_hand_are_kept(tmp_path: Path) -> None:
    bin_dir = fake_tools(tmp_path, nvidia_smi="exit 0", nvcc="exit 0")
    flags = "-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=89"
    expected_key = "cmake-" + hashlib.md5(flags.encode()).hexdigest()[:8]
    assert chosen(bin_dir, CMAKE_ARGS=flags, NEXUS_GPU="cpu") == (flags, expected_key, "custom")


def test_unknown_nexus_gpu_is_refused_with_the_choices(tmp_path: Path) -> None:
    result = run(fake_tools(tmp_path), "llama_flavour", NEXUS_GPU="metal")
    assert result.returncode == 2
    assert result.stderr.strip() == "NEXUS_GPU=metal is not a build: use auto, cuda, vulkan or cpu."


BUILD_RECORDER = 'echo "attempt CMAKE_ARGS=$CMAKE_ARGS" >> "$BUILD_LOG"; [[ "$CMAKE_ARGS" != *FAIL_ON* ]]'


@pytest.mark.parametrize("gpu", ["cuda", "vulkan"])
def test_gpu_build_that_does_not_compile_falls_back_to_the_cpu_build(tmp_path: Path, gpu: str) -> None:
    bin_dir = fake_tools(tmp_path, fake_build=BUILD_RECORDER.replace("FAIL_ON", gpu.upper()))
    log = tmp_path / "build.log"
    result = run(
        bin_dir,
        'llama_flavour; build_with_cpu_fallback fake-build; echo "$LLAMA_FLAVOUR|$CMAKE_ARGS"',
        NEXUS_GPU=gpu,
        BUILD_LOG=str(log),
    )
    assert result.returncode == 0, result.stderr
    flag = f"-DGGML_{gpu.upper()}=on"
    assert log.read_text().splitlines() == [f"attempt CMAKE_ARGS={flag}", "attempt CMAKE_ARGS="]
    assert result.stdout.strip() == "cpu|"
    assert "did not compile;" in result.stderr and "building the CPU version instead" in result.stderr


def test_gpu_build_that_compiles_is_kept(tmp_path: Path) -> None:
    bin_dir = fake_tools(tmp_path, fake_build=BUILD_RECORDER.replace("FAIL_ON", "NOTHING"))
    log = tmp_path / "build.log"
    result = run(
        bin_dir,
        'llama_flavour; build_with_cpu_fallback fake-build; echo "$LLAMA_FLAVOUR"',
        NEXUS_GPU="cuda",
        BUILD_LOG=str(log),
    )
    assert result.returncode == 0 and result.stdout.strip() == CUDA_KEY
    assert log.read_text().splitlines() == ["attempt CMAKE_ARGS=-DGGML_CUDA=on"]
    assert result.stderr == ""


def test_cpu_build_that_does_not_compile_fails_once(tmp_path: Path) -> None:
    bin_dir = fake_tools(tmp_path, fake_build='echo attempt >> "$BUILD_LOG"; exit 1')
    log = tmp_path / "build.log"
    result = run(
        bin_dir, "llama_flavour; build_with_cpu_fallback fake-build", NEXUS_GPU="cpu", BUILD_LOG=str(log)
    )
    assert result.returncode == 1
    assert log.read_text().splitlines() == ["attempt"]


@pytest.mark.parametrize(
    ("nexus_gpu", "installed", "record", "expected"),
    [
        ("auto", "", "", True),  # a fresh virtualenv
        ("auto", "0.3.30", f"0.3.30 {CUDA_KEY} {CUDA_KEY}", True),  # another version
        ("auto", "0.3.36", f"0.3.36 {CUDA_KEY} {CUDA_KEY}", False),  # already what is asked
        ("auto", "0.3.36", "0.3.36 cpu cpu", True),  # the CUDA toolkit came since: build for it
        ("cpu", "0.3.36", f"0.3.36 {CUDA_KEY} {CUDA_KEY}", True),  # another flavour asked for
        ("auto", "0.3.36", f"0.3.36 {CUDA_KEY} cpu", False),  # fell back: no 10-minute retry each run
        ("cuda", "0.3.36", f"0.3.36 {CUDA_KEY} cpu", True),  # asked for by name: try again
        ("cuda", "0.3.36", f"0.3.36 {CUDA_KEY} {CUDA_KEY}", False),
        ("auto", "0.3.36", "", False),  # installed before set-up kept a record: adopted
        ("cpu", "0.3.36", "", True),
    ],
)
def test_llama_is_reinstalled_only_when_the_build_must_change(
    tmp_path: Path, nexus_gpu: str, installed: str, record: str, expected: bool
) -> None:
    bin_dir = fake_tools(tmp_path, nvidia_smi="exit 0", nvcc="exit 0")  # auto means CUDA here
    result = run(
        bin_dir,
        f'llama_flavour; llama_needs_install 0.3.36 "{installed}" "{record}" && echo yes || echo no',
        NEXUS_GPU=nexus_gpu,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ("yes" if expected else "no")


def test_setup_script_parses_and_sources_the_flavour_choice() -> None:
    setup = ROOT / "installers" / "setup.sh"
    assert subprocess.run([BASH, "-n", str(setup)], check=False).returncode == 0
    assert 'source "$ROOT/installers/gpu-flavour.sh"' in setup.read_text()
