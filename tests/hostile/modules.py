"""Make module folders, zips and wheels for tests: a valid module by default, hostile on request.

Nothing is checked in: every hostile case is built in the test's own tmp dir, so no malicious
archive or link ever sits in the repository.
"""

from __future__ import annotations

import json
import stat
import zipfile
from pathlib import Path
from typing import Any

HOOKS_SOURCE = '''"""A tiny test module: one tool."""

from nexus_desktop.modules.hookspecs import hookimpl


class Plugin:
    @hookimpl
    def register_tools(self, register):
        pass


plugin = Plugin()
'''


def package_name(name: str) -> str:
    return name.replace("-", "_").replace(".", "_")


def manifest_data(name: str = "dice-roller", version: str = "1.0.0", **fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": name,
        "version": version,
        "display_name": name.replace("-", " ").title(),
        "description": "Rolls dice for the characters.",
        "author": "Test Author",
        "category": "tools",
        "entry_point": f"{package_name(name)}.main:plugin",
        "hooks": ["register_tools"],
    }
    data.update(fields)
    return {key: value for key, value in data.items() if value is not None}


def write_module(
    folder: Path,
    name: str = "dice-roller",
    version: str = "1.0.0",
    *,
    code: str = HOOKS_SOURCE,
    manifest: dict[str, Any] | None = None,
    **fields: Any,
) -> Path:
    """A valid module in ``folder`` (created), with ``fields`` overriding manifest entries."""
    package = folder / package_name(name)
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text("")
    (package / "main.py").write_text(code)
    data = manifest if manifest is not None else manifest_data(name, version, **fields)
    (folder / "nexus-module.json").write_text(json.dumps(data, indent=2))
    return folder


def zip_folder(folder: Path, archive: Path, *, prefix: str = "") -> Path:
    with zipfile.ZipFile(archive, "w") as bundle:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                bundle.write(path, prefix + path.relative_to(folder).as_posix())
    return archive


def zip_with_entries(archive: Path, entries: dict[str, bytes], *, base: Path | None = None) -> Path:
    """A zip of a valid module (from ``base``) plus raw ``entries`` written under any name at all."""
    with zipfile.ZipFile(archive, "w") as bundle:
        if base is not None:
            for path in sorted(base.rglob("*")):
                if path.is_file():
                    bundle.write(path, path.relative_to(base).as_posix())
        for name, data in entries.items():
            bundle.writestr(name, data)
    return archive


def zip_with_symlink(archive: Path, base: Path, link_name: str, target: str) -> Path:
    """A valid module zip plus an entry that unpacks as a symbolic link to ``target``."""
    zip_folder(base, archive)
    with zipfile.ZipFile(archive, "a") as bundle:
        info = zipfile.ZipInfo(link_name)
        info.create_system = 3  # Unix, so the mode bits below are honoured by unzip tools
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        bundle.writestr(info, target)
    return archive


def zip_bomb(archive: Path, base: Path, *, size: int) -> Path:
    """A valid module zip plus one highly compressible entry of ``size`` bytes (zeros)."""
    zip_folder(base, archive)
    chunk = b"\0" * (1024 * 1024)
    with (
        zipfile.ZipFile(archive, "a", compression=zipfile.ZIP_DEFLATED) as bundle,
        bundle.open("data/zeros.bin", "w", force_zip64=True) as out,
    ):
        for _ in range(size // len(chunk)):
            out.write(chunk)
    return archive


def wheel_from(folder: Path, archive: Path, *, name: str, version: str) -> Path:
    """A .whl-shaped zip: the module files at its root plus a .dist-info folder."""
    zip_folder(folder, archive)
    dist_info = f"{package_name(name)}-{version}.dist-info"
    with zipfile.ZipFile(archive, "a") as bundle:
        bundle.writestr(f"{dist_info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        bundle.writestr(
            f"{dist_info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        bundle.writestr(f"{dist_info}/RECORD", "")
    return archive
