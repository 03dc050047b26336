"""The containment profiles of module processes: what the kernel lets each one reach.

- ``serving``: an approved module gets its own folder (read), its data folder (read/write), the
  paths its manifest declares, the network through its gatekeeper's port only when it declared
  hosts, and other programs only when it declared subprocess;
- ``validating``: a module not yet approved gets nothing it declared but its read paths: no
  network, no secrets, no subprocesses, no native code, writes only to a scratch folder that is
  thrown away.

Both also read what any Python child needs (the system's libraries, Python, NEXUS's package)
and nothing else: not the app's database, not other modules' folders or data, not the keyring.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from nexus_desktop.modules.manifest import ModuleManifest
from nexus_desktop.sandbox.profile import (
    PROGRAM_FOLDERS,
    Profile,
    import_root,
    package_dir,
    python_read_paths,
    system_read_paths,
    system_write_paths,
)
from nexus_desktop.sandbox.support import detect


def validation_grant(permissions: dict[str, Any]) -> dict[str, Any]:
    """What a module not yet approved may do while it is checked: read the paths it declares, so
    its tests can exercise them, and nothing that could carry what it read away or change
    anything: no network, no writes outside scratch, no programs, no native code, no secrets."""
    return {"read": list(permissions.get("read", ())), "write": [], "network": [], "subprocess": False,
            "native_code": False}  # fmt: skip


def _expand(paths: list[str]) -> list[str]:
    return [os.path.realpath(os.path.expanduser(path)) for path in paths]


def _reads_processes(granted: dict[str, Any]) -> bool:
    return any(path.rstrip("/") == "/proc" for path in _expand(list(granted.get("read", ()))))


def _base_read(folder: str) -> list[str]:
    return [*system_read_paths(), *python_read_paths(), package_dir(), import_root(), folder]


def serving(load: dict[str, Any], *, gatekeeper_port: int | None) -> Profile:
    granted = load.get("granted", load["permissions"])
    network = bool(granted.get("network")) and gatekeeper_port is not None
    subprocess = bool(granted.get("subprocess"))
    return Profile(
        name=f"module {load['name']}",
        read=tuple([*_base_read(load["folder"]), *_expand(list(granted.get("read", ())))]),
        write=tuple([load["data_dir"], *_expand(list(granted.get("write", ()))), *system_write_paths()]),
        execute=PROGRAM_FOLDERS if subprocess else (),
        network=network,
        connect_ports=(gatekeeper_port,) if network and gatekeeper_port is not None else (),
        subprocess=subprocess,
        see_processes=_reads_processes(granted),
        memory_limit_mb=int(load.get("memory_limit_mb") or 0),
        cpu_seconds=int(load.get("cpu_seconds") or 0),
    )


def validating(load: dict[str, Any], scratch: Path) -> Profile:
    granted = validation_grant(load["permissions"])
    return Profile(
        name=f"validation of {load['name']}",
        read=tuple([*_base_read(load["folder"]), *_expand(granted["read"])]),
        write=(str(scratch), *system_write_paths()),
        see_processes=_reads_processes(granted),
        memory_limit_mb=int(load.get("memory_limit_mb") or 0),
        cpu_seconds=int(load.get("cpu_seconds") or 0),
    )


ACCEPTED = "Accepted without enforcement: "
"""How an approval records a gap the user accepted (in ``ModuleRecord.approved_access``)."""


def gaps(manifest: ModuleManifest) -> list[str]:
    """What this PC's kernel cannot enforce of what ``manifest`` asks, in plain words."""
    permissions = manifest.permissions
    return detect().gaps(network=bool(permissions.network), subprocess=permissions.subprocess)


def unaccepted_gaps(manifest: ModuleManifest, approved_access: list[str]) -> list[str]:
    accepted = {line.removeprefix(ACCEPTED) for line in approved_access if line.startswith(ACCEPTED)}
    return [gap for gap in gaps(manifest) if gap not in accepted]
