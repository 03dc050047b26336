"""Finding modules on disk: bundled with the app, installed by the user, or in a developer folder.

``discover()`` yields one ``Discovered`` per module folder, good or bad, and never raises: a
broken, hostile or duplicate module is reported with its error and the others are still found
(npe2's lesson).  Only manifests and file listings are read; no module code is imported.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from nexus_desktop.modules.errors import ModuleError
from nexus_desktop.modules.install import check_folder, content_hash, user_modules_dir
from nexus_desktop.modules.manifest import ModuleManifest, load_manifest

log = logging.getLogger(__name__)

Source = Literal["bundled", "user", "developer"]
SOURCE_LABELS: dict[Source, str] = {
    "bundled": "a built-in module",
    "user": "an installed module",
    "developer": "a module in your developer folder",
}


@dataclass(frozen=True)
class Discovered:
    """One module folder: its manifest and hash when valid, else the error that stops it."""

    manifest: ModuleManifest | None
    path: Path
    error: str | None
    source: Source
    content_hash: str | None = None

    @property
    def ok(self) -> bool:
        return self.manifest is not None and self.error is None


def bundled_modules_dir() -> Path:
    """``plugins/`` beside the package in a checkout, or inside it when installed."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here.parent / "plugins", here / "plugins"):
        if candidate.is_dir():
            return candidate
    return here.parent / "plugins"


def _module_folders(root: Path | None, source: Source) -> Iterator[tuple[Path, str | None]]:
    """(folder, error) per candidate module under ``root``; hidden folders are skipped."""
    if root is None or not root.is_dir():
        return
    try:
        children = sorted(root.iterdir())
    except OSError as error:
        yield root, f"The folder {root} cannot be read ({error.strerror}); check its permissions."
        return
    for child in children:
        if child.name.startswith(".") or not (child.is_dir() or child.is_symlink()):
            continue
        if source == "user":
            # <name>/<version>/: each version is its own module folder.
            if child.is_symlink():
                yield child, f"{child.name} in the modules folder is a link; install the module instead."
                continue
            try:
                versions = sorted(child.iterdir())
            except OSError as error:
                yield child, f"{child.name} cannot be read ({error.strerror}); check its permissions."
                continue
            for version in versions:
                if version.is_dir() or version.is_symlink():
                    yield version, None
        elif child.is_symlink() and source != "developer":
            yield child, f"{child.name} is a link; put the module folder itself here."
        else:
            yield child, None


def _inspect(folder: Path, source: Source) -> Discovered:
    if source == "user" and folder.is_symlink():
        raise ModuleError(f"{folder.parent.name}/{folder.name} is a link; reinstall the module.")
    manifest = load_manifest(folder, bundled=source == "bundled")
    if source == "user":
        expected = (folder.parent.name, folder.name)
        if (manifest.name, manifest.version) != expected:
            raise ModuleError(
                f"{folder.parent.name}/{folder.name} holds {manifest.name} {manifest.version} according to "
                "its manifest, so it was changed after install; reinstall the module."
            )
    check_folder(folder.resolve() if source == "developer" else folder)
    return Discovered(manifest, folder, None, source, content_hash(folder.resolve()))


def discover(
    *,
    bundled_dir: Path | None = None,
    user_dir: Path | None = None,
    developer_dir: Path | None = None,
) -> Iterator[Discovered]:
    """Every module folder in the bundled, user and developer folders, in that order of precedence.

    A name already taken by an earlier folder (another source, or another developer folder) is
    reported as a duplicate; versions of one installed module share their name by design.
    """
    roots: list[tuple[Path | None, Source]] = [
        (bundled_dir if bundled_dir is not None else bundled_modules_dir(), "bundled"),
        (user_dir if user_dir is not None else user_modules_dir(), "user"),
        (developer_dir, "developer"),
    ]
    owners: dict[str, tuple[Source, Path]] = {}
    for root, source in roots:
        for folder, problem in _module_folders(root, source):
            if problem:
                yield Discovered(None, folder, problem, source)
                continue
            try:
                found = _inspect(folder, source)
            except (ModuleError, OSError) as error:
                yield Discovered(None, folder, str(error), source)
                continue
            except Exception as error:  # one module must never stop discovery of the rest
                log.exception("Unexpected error reading the module in %s", folder)
                yield Discovered(
                    None, folder, f"{folder.name} could not be read ({error}); reinstall it.", source
                )
                continue
            assert found.manifest is not None
            name = found.manifest.name
            owner = owners.get(name)
            if owner is not None and not (owner[0] == source == "user"):
                yield Discovered(
                    found.manifest,
                    folder,
                    f"The module name {name!r} is already used by {SOURCE_LABELS[owner[0]]} in {owner[1]}; "
                    "rename one of them.",
                    source,
                    found.content_hash,
                )
                continue
            owners.setdefault(name, (source, folder))
            yield found
