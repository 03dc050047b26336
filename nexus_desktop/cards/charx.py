"""CHARX: the Character Card V3 zip, with ``card.json`` at its root and assets beside it.

Nothing is extracted to disk; entries are read into memory, bounded, and an archive with
unsafe paths or absurd sizes is refused outright because it was made to attack, not to share.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from pathlib import PurePosixPath

from nexus_desktop.cards.errors import MAX_FILE_BYTES, CardError

MAX_ENTRIES = 10_000
_EMBEDDED_PREFIXES = ("embeded://", "embedded://")  # the spec itself spells it "embeded"


class CharxArchive:
    """A checked .charx archive held in memory."""

    def __init__(self, data: bytes) -> None:
        try:
            self._zip = zipfile.ZipFile(io.BytesIO(data))
        except (zipfile.BadZipFile, zlib.error, ValueError, EOFError):
            raise CardError(
                "This .charx file is damaged (not a valid zip archive); export the card again."
            ) from None
        infos = self._zip.infolist()
        if len(infos) > MAX_ENTRIES:
            raise CardError(
                f"This .charx file has {len(infos):,} entries, far too many for a card; it was not opened."
            )
        for info in infos:
            if not _is_safe(info.filename):
                raise CardError(
                    f"This .charx file has an entry with an unsafe path ({info.filename!r}); "
                    "it may be malicious, so it was not opened."
                )
            if info.file_size > MAX_FILE_BYTES:
                raise CardError(
                    f"This .charx file has an entry that unpacks to {info.file_size:,} bytes, "
                    "far more than a card needs; it was not opened."
                )
        self._names = {_normalize(info.filename): info for info in infos if not info.is_dir()}

    def card_json(self) -> bytes:
        info = self._names.get("card.json")
        if info is None:
            # Zipped by hand, the card often sits one folder down.
            nested = [name for name in self._names if PurePosixPath(name).name.lower() == "card.json"]
            if len(nested) != 1:
                raise CardError("This .charx file has no card.json in it; export the card again.")
            info = self._names[nested[0]]
        return self._read(info)

    def read_asset(self, uri: str) -> bytes | None:
        """An asset named by ``embeded://path`` (or a plain relative path); None if not in the archive."""
        path = uri
        for prefix in _EMBEDDED_PREFIXES:
            if uri.lower().startswith(prefix):
                path = uri[len(prefix) :]
        info = self._names.get(_normalize(path))
        return None if info is None else self._read(info)

    def first_icon(self) -> bytes | None:
        """The conventional place for the avatar, for archives whose card lists no icon asset."""
        icons = sorted(name for name in self._names if name.lower().startswith("assets/icon/"))
        return self._read(self._names[icons[0]]) if icons else None

    def _read(self, info: zipfile.ZipInfo) -> bytes:
        try:
            with self._zip.open(info) as entry:
                data = entry.read(MAX_FILE_BYTES + 1)
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError):
            raise CardError(
                f"The entry {info.filename!r} in this .charx file cannot be read (damaged or encrypted); "
                "export the card again."
            ) from None
        if len(data) > MAX_FILE_BYTES:
            raise CardError("This .charx file has an entry over 64 MB; it was not opened.")
        return data


def _normalize(name: str) -> str:
    path = name.replace("\\", "/")
    while path.startswith("./"):
        path = path[2:]
    return path


def _is_safe(name: str) -> bool:
    """No absolute paths, drive letters or ``..``: the zip-slip shapes."""
    path = name.replace("\\", "/")
    if path.startswith("/") or (len(path) > 1 and path[1] == ":"):
        return False
    return ".." not in path.split("/") and "\0" not in path
