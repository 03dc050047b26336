"""Installing a module from a folder, a .zip or a wheel into ``<data>/modules/<name>/<version>/``.

Everything is unpacked into a staging folder beside the destination, checked (paths, links,
sizes, the manifest), hashed, and only then renamed into place in one step, so a refused or
interrupted install leaves nothing behind.  Nothing from the module is imported or run.
Earlier versions stay on disk so a user can roll back.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import tempfile
import unicodedata
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from packaging.version import InvalidVersion, Version

from nexus_desktop import paths
from nexus_desktop.modules.errors import InstallError, ManifestError
from nexus_desktop.modules.manifest import MANIFEST_NAMES, ModuleManifest, Origin, load_manifest

MAX_FILES = 2_000
MAX_FILE_BYTES = 50 * 1024 * 1024
MAX_TOTAL_BYTES = 200 * 1024 * 1024
# Byte-code caches are rebuilt by Python and would make the hash change after every run.
IGNORED_DIRS = frozenset({"__pycache__"})
STAGING_DIR = ".staging"
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class InstalledModule:
    manifest: ModuleManifest
    path: Path
    content_hash: str
    origin: Origin
    already_installed: bool = False
    """True when this exact content was installed before and nothing was copied."""

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> str:
        return self.manifest.version


def user_modules_dir() -> Path:
    path = paths.data_dir() / "modules"
    path.mkdir(parents=True, exist_ok=True)
    return path


# Hashing --------------------------------------------------------------------------------------


def _tree(folder: Path) -> Iterator[tuple[str, Path]]:
    """(relative posix path, path) of every file and link under ``folder``, links not followed."""
    for directory, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames[:] = [name for name in dirnames if name not in IGNORED_DIRS]
        base = Path(directory)
        for name in filenames + [name for name in dirnames if (base / name).is_symlink()]:
            path = base / name
            yield path.relative_to(folder).as_posix(), path


def content_hash(folder: Path) -> str:
    """sha256 over the sorted relative paths and bytes of every file: the same on every copy.

    A link is hashed as its target text, so where it points is part of what was approved.
    """
    digest = hashlib.sha256()
    for relative, path in sorted(_tree(folder)):
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            entry = f"L\0{relative}\0{os.readlink(path)}\n"
        elif not stat.S_ISREG(mode):
            entry = f"O\0{relative}\0{stat.S_IFMT(mode)}\n"  # never opened: a FIFO would block
        else:
            file_digest = hashlib.sha256()
            with path.open("rb") as file:
                while chunk := file.read(_CHUNK):
                    file_digest.update(chunk)
            entry = f"F\0{relative}\0{file_digest.hexdigest()}\n"
        digest.update(entry.encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


# Checking a folder ----------------------------------------------------------------------------


def check_folder(folder: Path) -> None:
    """Refuse links leading out of ``folder``, linked folders, special files and size bombs."""
    real_root = folder.resolve()
    total = 0
    for files, (relative, path) in enumerate(_tree(folder), start=1):
        if path.is_symlink():
            target = path.resolve()
            if not target.exists():
                raise InstallError(f"{relative} in {folder.name} is a broken link; remove it.")
            if not target.is_relative_to(real_root):
                raise InstallError(
                    f"{relative} in {folder.name} is a link to {target}, outside the module; "
                    "replace the link with the file itself."
                )
            if target.is_dir():
                raise InstallError(
                    f"{relative} in {folder.name} is a linked folder; replace it with a real folder."
                )
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise InstallError(f"{relative} in {folder.name} is not a regular file; remove it.")
        total += info.st_size
        _check_counts(folder.name, relative, files, info.st_size, total)


def _check_counts(source: str, relative: str, files: int, size: int, total: int) -> None:
    if files > MAX_FILES:
        raise InstallError(
            f"{source} has more than {MAX_FILES:,} files, too many for a module; it was refused."
        )
    if size > MAX_FILE_BYTES:
        raise InstallError(
            f"{relative} in {source} is over {MAX_FILE_BYTES // 2**20} MB, too large for a module; "
            "it was refused."
        )
    if total > MAX_TOTAL_BYTES:
        raise InstallError(
            f"{source} unpacks to over {MAX_TOTAL_BYTES // 2**20} MB, too large for a module; it was refused."
        )


def _copy_folder(source: Path, destination: Path) -> None:
    check_folder(source)
    real_root = source.resolve()
    for relative, path in _tree(source):
        real = path.resolve()
        if not real.is_relative_to(real_root):  # changed since the check
            raise InstallError(f"{relative} in {source.name} now leads outside the module; it was refused.")
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        # Links inside the module become plain copies, so nothing installed points anywhere.
        shutil.copyfile(real, target)


# Unpacking an archive -------------------------------------------------------------------------


def _unsafe_entry(name: str) -> str | None:
    """Why an archive entry name could write outside the destination (zip-slip), if it could."""
    if "\0" in name:
        return "has a NUL character in its name"
    normalized = name.replace("\\", "/")
    if normalized.startswith("/") or re.match(r"^[A-Za-z]:", normalized):
        return "has an absolute path"
    if ".." in normalized.split("/"):
        return "uses '..' to climb out of the module folder"
    return None


def _unpack(archive: Path, destination: Path) -> None:
    try:
        bundle = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        raise InstallError(f"{archive.name} is not a valid zip archive; download it again.") from None
    with bundle:
        infos = bundle.infolist()
        if len(infos) > MAX_FILES:
            raise InstallError(
                f"{archive.name} has {len(infos):,} entries, more than the {MAX_FILES:,} a module may have; "
                "it was refused."
            )
        seen: set[str] = set()
        files = total = 0
        for info in infos:
            problem = _unsafe_entry(info.filename)
            if problem:
                raise InstallError(
                    f"{archive.name} was refused: the entry {info.filename!r} {problem} (a zip-slip attack)."
                )
            if stat.S_ISLNK(info.external_attr >> 16):
                with bundle.open(info) as entry:
                    target = entry.read(200).decode("utf-8", "replace")
                raise InstallError(
                    f"{archive.name} was refused: the entry {info.filename!r} is a link (to {target!r}); "
                    "a module archive may hold only plain files."
                )
            relative = PurePosixPath(info.filename.replace("\\", "/"))
            if IGNORED_DIRS & set(relative.parts) or info.is_dir():
                continue
            # Case-insensitive or normalising file systems (Windows, macOS) would merge these.
            key = unicodedata.normalize("NFC", relative.as_posix()).casefold()
            if key in seen:
                raise InstallError(
                    f"{archive.name} was refused: {info.filename!r} appears twice, so what you review "
                    "might not be what runs."
                )
            seen.add(key)
            files += 1
            total += info.file_size
            _check_counts(archive.name, info.filename, files, info.file_size, total)
            output = destination / relative
            if not output.resolve().is_relative_to(destination.resolve()):
                raise InstallError(f"{archive.name} was refused: {info.filename!r} leads outside the module.")
            output.parent.mkdir(parents=True, exist_ok=True)
            _extract(bundle, info, output, archive.name)


def _extract(bundle: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, source: str) -> None:
    written = 0
    try:
        with bundle.open(info) as entry, target.open("wb") as out:
            # Count what really comes out: a header can understate the size of a bomb.
            while chunk := entry.read(_CHUNK):
                written += len(chunk)
                if written > MAX_FILE_BYTES:
                    raise InstallError(
                        f"{info.filename} in {source} unpacks to over {MAX_FILE_BYTES // 2**20} MB; "
                        "it was refused."
                    )
                out.write(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError):
        raise InstallError(
            f"{info.filename} in {source} cannot be unpacked (damaged or encrypted); download it again."
        ) from None


def _module_root(unpacked: Path, source: str) -> Path:
    """The folder holding the manifest: the archive's top, or its single top-level folder."""
    if any((unpacked / name).exists() for name in MANIFEST_NAMES):
        return unpacked
    children = [
        child for child in unpacked.iterdir() if child.is_dir() and not child.name.endswith(".dist-info")
    ]
    if len(children) == 1 and any((children[0] / name).exists() for name in MANIFEST_NAMES):
        return children[0]
    raise ManifestError(
        f"{source} has no nexus-module.toml at its top or in its one top folder; add the manifest and "
        "pack the module again."
    )


# Installing -----------------------------------------------------------------------------------


def installed_versions(name: str, modules_dir: Path | None = None) -> list[str]:
    """Versions of ``name`` on disk, newest first."""
    folder = (modules_dir or user_modules_dir()) / name
    versions = []
    for child in folder.iterdir() if folder.is_dir() else ():
        try:
            versions.append((Version(child.name), child.name))
        except InvalidVersion:
            continue
    return [name for _, name in sorted(versions, reverse=True)]


def _installed_origin(name: str, modules_dir: Path) -> Origin | None:
    for version in installed_versions(name, modules_dir):
        try:
            return load_manifest(modules_dir / name / version).origin
        except ManifestError:
            continue
    return None


def install_module(
    source: Path,
    modules_dir: Path | None = None,
    *,
    origin: Origin = "installed",
    reserved_names: Mapping[str, str] | None = None,
) -> InstalledModule:
    """Install the module in ``source`` (a folder, .zip or .whl) and return where it went.

    ``reserved_names`` maps names taken elsewhere (e.g. built-in modules) to who holds them;
    installing over one is refused, as is reusing a name installed with another origin.
    """
    modules_dir = modules_dir or user_modules_dir()
    staging_parent = modules_dir / STAGING_DIR
    staging_parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="install-", dir=staging_parent))
    try:
        unpacked = staging / "module"
        if source.is_dir():
            _copy_folder(source, unpacked)
            root = unpacked
        elif source.is_file():
            unpacked.mkdir()
            _unpack(source, unpacked)
            root = _module_root(unpacked, source.name)
            check_folder(root)
        else:
            raise InstallError(f"{source} does not exist; pick the module's folder, .zip or .whl file.")
        manifest = load_manifest(root)
        effective_origin: Origin = "generated" if manifest.origin == "generated" else origin
        _check_name_is_free(manifest.name, effective_origin, modules_dir, reserved_names or {})
        digest = content_hash(root)
        target = modules_dir / manifest.name / manifest.version
        if target.exists():
            if content_hash(target) == digest:
                return InstalledModule(manifest, target, digest, effective_origin, already_installed=True)
            raise InstallError(
                f"{manifest.name} {manifest.version} is already installed with different content; "
                "raise the version number, or uninstall that version first."
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(root, target)  # atomic on one file system: the version appears whole or not at all
        return InstalledModule(manifest, target, digest, effective_origin)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _check_name_is_free(name: str, origin: Origin, modules_dir: Path, reserved: Mapping[str, str]) -> None:
    if name in reserved:
        raise InstallError(
            f"A module named {name!r} is already provided by {reserved[name]}; rename yours to install it."
        )
    existing = _installed_origin(name, modules_dir)
    if existing is not None and existing != origin:
        raise InstallError(
            f"A module named {name!r} is already installed with origin {existing}; rename this "
            f"{origin} module, or uninstall the other first."
        )


def remove_version(name: str, version: str, modules_dir: Path | None = None) -> None:
    """Delete one installed version from disk (the caller keeps the database in step)."""
    folder = (modules_dir or user_modules_dir()) / name
    target = folder / version
    if target.parent != folder or not target.is_dir() or target.is_symlink():
        return
    shutil.rmtree(target)
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
