"""What one contained child may reach: a plain, JSON-ready description the launcher applies.

The profiles themselves are built where their children are known (``modules.runtime``,
``llm.worker_process``, ``training.jobs``); this module holds the shape and the paths every Python
child needs to run at all.
"""

from __future__ import annotations

import glob
import os
import secrets
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import nexus_desktop

# The operating system's own files: programs, libraries, configuration, time zones, certificates.
_SYSTEM_READ = ("/usr", "/lib", "/lib32", "/lib64", "/bin", "/sbin", "/etc")
PROGRAM_FOLDERS = ("/usr", "/bin", "/sbin", "/lib", "/lib64")
"""Where the system's programs live: a child allowed to start programs may execute these."""
_DEVICES_RW = ("/dev/null", "/dev/zero", "/dev/full")
_DEVICES_READ = ("/dev/urandom", "/dev/random")
# NVIDIA (CUDA) and DRM (Vulkan) device nodes, for the model worker and the trainer on a GPU.
_GPU_DEVICE_PATTERNS = ("/dev/nvidia*", "/dev/dri")


@dataclass(frozen=True)
class Profile:
    """One child's containment.  Every path is absolute; missing paths are skipped."""

    name: str
    """What the child is (``module weather``, ``validation``, ``model worker``, ``trainer``)."""
    read: tuple[str, ...] = ()
    write: tuple[str, ...] = ()
    execute: tuple[str, ...] = ()
    """Programs (or folders of them) it may execute; the Python it runs on is always added."""
    devices: tuple[str, ...] = ()
    """Device nodes it may read, write and ioctl (GPU)."""
    network: bool = False
    """TCP streams to ``connect_ports`` only; without it the child has no network at all."""
    connect_ports: tuple[int, ...] = ()
    subprocess: bool = False
    memory_limit_mb: int = 0
    cpu_seconds: int = 0
    see_processes: bool = False
    """Share the PID namespace: for a module that asked to read /proc (a system monitor).  It
    still cannot signal, trace or open those processes (Landlock scoping, seccomp)."""
    die_with_parent: bool = True
    """False for the trainer: it finishes its job even when NEXUS is closed."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def package_dir() -> str:
    """The ``nexus_desktop`` package folder (not the repository around it)."""
    return str(Path(nexus_desktop.__file__).resolve().parent)


def training_dir() -> str:
    """The trainer's package, ``training/``, beside ``nexus_desktop/`` in a checkout."""
    return str(Path(package_dir()).parent / "training")


def import_root() -> str:
    """A folder holding only links to NEXUS's own packages, for a contained child's ``sys.path``.

    In a checkout the packages sit in the repository beside ``.git``, ``plugins/`` and the
    virtualenvs.  A child allowed to list that folder could read all of it, and one that may not
    list it cannot import from it (Python lists a ``sys.path`` folder before importing from it).
    This folder can be listed safely: the links lead only to the packages, which the profile
    lets it read.
    """
    from nexus_desktop import paths

    root = paths.data_dir() / "import-root"
    root.mkdir(parents=True, exist_ok=True)
    for target in (package_dir(), training_dir()):
        link = root / Path(target).name
        if os.path.islink(link) and os.readlink(link) == target:
            continue
        temporary = root / f".{link.name}.{secrets.token_hex(8)}"  # unique: threads race here too
        os.symlink(target, temporary)
        os.replace(temporary, link)  # atomic: a child starting now sees the old link or the new
    return str(root)


def python_read_paths(python: str = sys.executable) -> list[str]:
    """What a Python child reads to start: its prefixes and the site-packages of its venv."""
    real = os.path.realpath(python)
    venv = Path(python).parent.parent
    paths = {sys.base_prefix, sys.base_exec_prefix, os.path.dirname(real), str(venv)}
    if python == sys.executable:
        paths |= {sys.prefix, sys.exec_prefix}
    return sorted(os.path.realpath(path) for path in paths)


def system_read_paths() -> list[str]:
    return [*_SYSTEM_READ, "/proc", "/sys", *_DEVICES_READ]


def system_write_paths() -> list[str]:
    return list(_DEVICES_RW)


def gpu_devices() -> list[str]:
    found: list[str] = []
    for pattern in _GPU_DEVICE_PATTERNS:
        found.extend(sorted(glob.glob(pattern)))
    return found
