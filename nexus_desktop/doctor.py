"""``nexus doctor``: what NEXUS finds on this machine, one fact per line.

Qt and llama.cpp are probed in short-lived child processes, so a broken install is reported
rather than crashing the report, and this module stays Qt-free.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from importlib import metadata

from nexus_desktop import __version__, paths


def _package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def qt_platform() -> str:
    """The Qt platform plugin a window would use here, probed in a child process."""
    has_display = any(os.environ.get(v) for v in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"))
    if not has_display and sys.platform.startswith("linux"):
        return "no display (DISPLAY and WAYLAND_DISPLAY are unset): the CLI works, the window needs a desktop"
    try:
        result = subprocess.run(
            [sys.executable, "-m", "nexus_desktop.ui.qt_probe"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        info = json.loads(result.stdout.strip().splitlines()[-1])
        tray = "tray available" if info["tray"] else "no system tray"
        return f"{info['platform']} (PySide6 {info['qt_version']}, {tray})"
    except (subprocess.SubprocessError, OSError, ValueError, IndexError, KeyError):
        return "unavailable: Qt cannot start here (run the setup command from the README)"


def llama_build() -> str:
    from nexus_desktop.llm.hardware import llama_build_info

    info = llama_build_info()
    return f"llama-cpp-python {info.version}, {info.backend} build" if info.version else info.hint


def llama_backend() -> str:
    """Which backend runs models and on which GPU, and what to do when the GPU goes unused."""
    from nexus_desktop.llm.hardware import describe_backend, llama_build_info

    info = llama_build_info()
    if info.version is None:
        return "none: llama.cpp does not load (see the llama.cpp line)"
    text = describe_backend(info)
    return f"{text}. {info.hint}" if info.hint else text


def gpus() -> str:
    from nexus_desktop.llm.hardware import describe_gpus, gpu_report

    return describe_gpus(gpu_report())


def keyring_backend() -> str:
    from nexus_desktop.secrets import SecretStore

    return SecretStore().backend_name()


def default_model() -> str:
    from nexus_desktop.llm.catalog import default_model_path

    path = default_model_path()
    return str(path) if path else "missing: install it with the setup command from the README"


def containment() -> str:
    """Which kernel layers hold modules and the model worker here (docs/security.md)."""
    from nexus_desktop.sandbox.support import detect

    support = detect()
    if support.platform != "linux":
        return f"not built for {support.platform} yet: modules are held only by in-process checks"
    layers = [f"Landlock ABI {support.landlock_abi}" if support.landlock_abi else "no Landlock"]
    layers.append("seccomp" if support.seccomp else "no seccomp")
    layers.append(
        "namespaces (bwrap)" if support.namespaces else "no namespaces (bwrap missing or not allowed)"
    )
    return ", ".join(layers)


def doctor_report() -> list[tuple[str, str]]:
    checks = [
        ("Qt platform", qt_platform),
        ("llama.cpp", llama_build),
        ("Backend", llama_backend),
        ("GPU", gpus),
        ("Keyring", keyring_backend),
        ("Default model", default_model),
        ("Containment", containment),
    ]
    rows = [
        ("NEXUS Desktop", __version__),
        ("Python", f"{platform.python_version()} ({sys.executable})"),
        ("OS", f"{platform.system()} {platform.release()} {platform.machine()}"),
        ("PySide6", _package_version("pyside6-essentials")),
        ("Data dir", str(paths.data_dir())),
    ]
    for label, check in checks:
        try:
            rows.append((label, check()))
        except Exception as error:  # a broken part is a finding, not a crash
            rows.append((label, f"error: {error}"))
    return rows
