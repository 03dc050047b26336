"""Load and save character cards: JSON, PNG (SillyTavern's format) and CHARX.

The avatar travels beside the card, not inside it: ``load_card_with_avatar`` returns both,
``save_card`` takes the avatar to embed the card into.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from nexus_desktop.cards.avatar import placeholder_avatar, png_bytes
from nexus_desktop.cards.charx import CharxArchive
from nexus_desktop.cards.convert import card_from_raw, card_from_record, card_to_raw, parse_json
from nexus_desktop.cards.errors import MAX_FILE_BYTES, CardError, describe_size
from nexus_desktop.cards.model import SPEC_V3, CharacterCard
from nexus_desktop.cards.png import is_png, read_card_chunks, strip_card_chunks, with_text_chunks

__all__ = [
    "CARD_SUFFIXES",
    "avatar_from_png",
    "card_and_avatar_from_bytes",
    "card_from_bytes",
    "card_from_json",
    "card_from_record",
    "card_to_json",
    "card_to_png",
    "card_to_record",
    "load_card",
    "load_card_with_avatar",
    "save_card",
]

log = logging.getLogger(__name__)

CARD_SUFFIXES = (".png", ".json", ".charx")
_NOT_A_CARD = "This PNG has no character card in it; export the card from SillyTavern as PNG or JSON."
_OTHER_IMAGES = {b"\xff\xd8\xff": "a JPEG", b"GIF8": "a GIF", b"RIFF": "a WebP"}


# Loading ----------------------------------------------------------------------------------------


def load_card(path: str | os.PathLike[str]) -> CharacterCard:
    """The card in a .png, .json or .charx file; ``CardError`` says what is wrong with a bad one."""
    return load_card_with_avatar(path)[0]


def load_card_with_avatar(path: str | os.PathLike[str]) -> tuple[CharacterCard, bytes | None]:
    """The card and its avatar PNG (the image without card data), if the file has one."""
    file = Path(path).expanduser()
    try:
        size = file.stat().st_size
        if size > MAX_FILE_BYTES:
            raise CardError(
                f"This file is {describe_size(size)}, over the 64 MB limit for a card; pick the card file."
            )
        with file.open("rb") as stream:
            data = stream.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise CardError(f"There is no file at {file}; check the path and try again.") from None
    except IsADirectoryError:
        raise CardError(f"{file} is a folder; pick a card file (.png, .json or .charx) inside it.") from None
    except PermissionError:
        raise CardError(f"{file} cannot be read (permission denied); check its permissions.") from None
    return card_and_avatar_from_bytes(data, filename=file.name)


def card_from_bytes(data: bytes, *, filename: str | None = None) -> CharacterCard:
    """A card from the bytes of a card file; the format is sniffed, ``filename`` only refines errors."""
    return card_and_avatar_from_bytes(data, filename=filename)[0]


def card_and_avatar_from_bytes(
    data: bytes, *, filename: str | None = None
) -> tuple[CharacterCard, bytes | None]:
    """``card_from_bytes`` plus the avatar PNG (for dropped files and downloads)."""
    if len(data) > MAX_FILE_BYTES:
        raise CardError(
            f"This file is {describe_size(len(data))}, over the 64 MB limit for a card; pick the card file."
        )
    suffix = Path(filename).suffix.lower() if filename else ""
    if is_png(data):
        return _from_png(data)
    if data.startswith(b"PK\x03\x04") or data.startswith(b"PK\x05\x06"):
        return _from_charx(data)
    for magic, kind in _OTHER_IMAGES.items():
        if data.startswith(magic) and (magic != b"RIFF" or data[8:12] == b"WEBP"):
            raise CardError(
                f"This image is {kind}, not a PNG, so it holds no card; export the card as PNG or JSON."
            )
    if suffix == ".png":
        raise CardError("This file is not a PNG image; export the card from SillyTavern as PNG or JSON.")
    if suffix == ".charx":
        raise CardError("This .charx file is not a zip archive; export the card again.")
    head = data[:16].lstrip(b"\xef\xbb\xbf\xff\xfe\x00 \t\r\n")
    if suffix == ".json" or head.startswith((b"{", b"[")) or not data.strip():
        return card_from_json(data), None
    raise CardError("This file is not a character card; pick a .png, .json or .charx card file.")


def card_from_json(data: str | bytes | dict[str, Any], *, where: str = "This file") -> CharacterCard:
    """A card from card JSON text or an already parsed object, in any of the V1/V2/V3 shapes."""
    raw = data if isinstance(data, dict) else parse_json(data, where=where)
    return card_from_raw(raw, where=where)


def _from_png(data: bytes) -> tuple[CharacterCard, bytes | None]:
    chunks = read_card_chunks(io.BytesIO(data))
    if not chunks:
        raise CardError(_NOT_A_CARD)
    first_error: CardError | None = None
    for keyword in ("ccv3", "chara"):  # V3 first: it carries everything V2 does and more
        chunk = chunks.get(keyword)
        if chunk is None:
            continue
        try:
            card = card_from_json(_chunk_json(chunk.text), where="The card in this PNG")
        except CardError as error:
            damaged = CardError(
                "The character data in this PNG is damaged (bad checksum); export the card again."
            )
            first_error = first_error or (error if chunk.crc_ok else damaged)
            continue
        return card, _avatar_or_original(data)
    assert first_error is not None
    raise first_error


def _chunk_json(text: str) -> bytes | str:
    """Base64 JSON, as every card tool writes; a few write the JSON itself."""
    text = text.strip().lstrip("\ufeff")
    if text.startswith("{"):
        return text
    compact = "".join(text.split()).rstrip("=")
    altchars = b"-_" if "-" in compact or "_" in compact else None  # URL-safe base64
    try:
        return base64.b64decode(compact + "=" * (-len(compact) % 4), altchars=altchars)
    except (binascii.Error, ValueError):
        raise CardError(
            "The character data in this PNG is damaged (not base64); export the card again."
        ) from None


def _avatar_or_original(data: bytes) -> bytes:
    try:
        return strip_card_chunks(data)
    except CardError:
        return data  # a slightly broken image still shows; the card in it was fine


def _from_charx(data: bytes) -> tuple[CharacterCard, bytes | None]:
    archive = CharxArchive(data)
    card = card_from_json(archive.card_json(), where="The card.json in this .charx file")
    icons = [a for a in card.assets or [] if a.get("type") == "icon" and isinstance(a.get("uri"), str)]
    icons.sort(key=lambda asset: asset.get("name") != "main")  # the spec's main icon is the avatar
    icon = next((image for a in icons if (image := archive.read_asset(a["uri"])) is not None), None)
    if icon is None:
        icon = archive.first_icon()
    return card, None if icon is None else _as_png(icon)


def _as_png(image: bytes) -> bytes | None:
    """CHARX icons may be WebP or JPEG; the app shows PNG avatars."""
    if is_png(image):
        return image
    try:
        from PIL import Image

        with Image.open(io.BytesIO(image)) as opened:
            return png_bytes(opened.convert("RGBA"))
    except Exception as error:  # any undecodable image just means "no avatar"
        log.info("The .charx icon could not be read as an image: %s", error)
        return None


def avatar_from_png(data: bytes) -> bytes:
    """The image of a card PNG without the card data, ready to show or to embed another card into."""
    return strip_card_chunks(data)


# Saving -----------------------------------------------------------------------------------------


def card_to_record(card: CharacterCard) -> tuple[str, dict[str, Any]]:
    """The display name and the JSON-ready dict the app stores; ``card_from_record`` reverses it."""
    return card.name.strip(), card.model_dump(mode="json")


def card_to_json(card: CharacterCard, *, version: int | None = None) -> str:
    """Card JSON, V2 or V3 (default: the version the card came in, V2 for V1 cards)."""
    return _json_text(card_to_raw(card, _version(card, version)), indent=2)


def card_to_png(card: CharacterCard, avatar_png: bytes | None = None) -> bytes:
    """A SillyTavern card PNG: the avatar (or a generated one) with V2 ``chara`` and V3 ``ccv3`` chunks."""
    image = avatar_png if avatar_png is not None else placeholder_avatar(card.name)
    texts = {
        "chara": _base64_json(card_to_raw(card, 2)),
        "ccv3": _base64_json(card_to_raw(card, 3)),
    }
    return with_text_chunks(image, texts)


def save_card(
    card: CharacterCard,
    path: str | os.PathLike[str],
    *,
    version: int | None = None,
    avatar_png: bytes | None = None,
) -> None:
    """Write the card as .json (V2 or V3) or .png (always both, as SillyTavern does), atomically."""
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix == ".json":
        data = card_to_json(card, version=version).encode("utf-8")
    elif suffix == ".png":
        _version(card, version)  # reject a bad version even though PNG holds both
        data = card_to_png(card, avatar_png)
    else:
        raise CardError(f"Cards can be saved as .png or .json, not {suffix or 'a file without extension'}.")
    _write_atomically(file, data)


def _version(card: CharacterCard, version: int | None) -> int:
    if version is None:
        return 3 if card.spec == SPEC_V3 else 2
    if version not in (2, 3):
        raise CardError(f"Cards can be exported as version 2 or 3, not {version}; pick one of those.")
    return version


def _json_text(raw: dict[str, Any], *, indent: int | None = None) -> str:
    """Readable UTF-8 JSON; text with a lone surrogate (legal in JSON, not in UTF-8) is escaped instead."""
    text = json.dumps(raw, ensure_ascii=False, indent=indent)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(raw, ensure_ascii=True, indent=indent)
    return text


def _base64_json(raw: dict[str, Any]) -> str:
    return base64.b64encode(_json_text(raw).encode("utf-8")).decode("ascii")


def _write_atomically(file: Path, data: bytes) -> None:
    """A crash mid-write leaves the old file, never half a card."""
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{file.name}.", dir=file.parent)
        try:
            with os.fdopen(handle, "wb") as stream:
                stream.write(data)
            os.chmod(temporary, 0o644)  # mkstemp makes it private; a card file is an ordinary file
            os.replace(temporary, file)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as error:
        raise CardError(
            f"The card could not be saved to {file} ({error.strerror}); pick another folder."
        ) from None
