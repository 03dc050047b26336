"""PNG text chunks, read and written without decoding the image.

Character cards live in ``tEXt`` chunks (``chara`` for V2, ``ccv3`` for V3) holding base64 JSON;
some tools use ``zTXt`` or ``iTXt`` instead.  The reader walks chunk headers and seeks past
everything that is not text, so a large image costs nothing but its size on disk.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from nexus_desktop.cards.errors import MAX_FILE_BYTES, CardError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CARD_KEYWORDS = ("ccv3", "chara")
TEXT_CHUNK_TYPES = (b"tEXt", b"zTXt", b"iTXt")
_HEADER = struct.Struct(">I4s")
_MAX_CHUNK = 2**31 - 1  # the PNG spec's own limit


@dataclass(frozen=True)
class TextChunk:
    keyword: str
    text: str
    crc_ok: bool


@dataclass(frozen=True)
class _RawChunk:
    kind: bytes
    data: bytes


def is_png(data: bytes) -> bool:
    return data.startswith(PNG_SIGNATURE)


def read_card_chunks(stream: BinaryIO) -> dict[str, TextChunk]:
    """The card text chunks by lower-case keyword; the first of each wins, as in SillyTavern.

    A truncated file yields what was found before the damage.  Bad CRCs are recorded, not
    fatal: the caller tries the text and only blames the checksum if the text is unusable.
    """
    if stream.read(len(PNG_SIGNATURE)) != PNG_SIGNATURE:
        raise CardError("This file is not a PNG image; export the card from SillyTavern as PNG or JSON.")
    found: dict[str, TextChunk] = {}
    while True:
        header = stream.read(_HEADER.size)
        if len(header) < _HEADER.size:
            break
        length, kind = _HEADER.unpack(header)
        if length > _MAX_CHUNK or kind == b"IEND":
            break
        if kind not in TEXT_CHUNK_TYPES:
            stream.seek(length + 4, io.SEEK_CUR)
            continue
        data = stream.read(length)
        crc = stream.read(4)
        if len(data) < length:
            break
        keyword, _, _ = data.partition(b"\0")
        name = keyword.decode("latin-1").strip().lower()
        if name not in CARD_KEYWORDS or name in found:
            continue
        crc_ok = len(crc) == 4 and struct.unpack(">I", crc)[0] == zlib.crc32(kind + data)
        found[name] = TextChunk(name, _chunk_text(kind, data, crc_ok), crc_ok)
    return found


def _chunk_text(kind: bytes, data: bytes, crc_ok: bool) -> str:
    """The text of a tEXt/zTXt/iTXt chunk; damaged compressed text reads as empty."""
    _, _, rest = data.partition(b"\0")
    try:
        if kind == b"tEXt":
            return rest.decode("latin-1")
        if kind == b"zTXt":
            return _inflate(rest[1:]).decode("latin-1")
        compressed, rest = rest[:1] == b"\x01", rest[2:]
        _language, _, rest = rest.partition(b"\0")
        _translated, _, text = rest.partition(b"\0")
        return (_inflate(text) if compressed else text).decode("utf-8", errors="replace")
    except zlib.error:
        if crc_ok:
            raise CardError("The character data in this PNG is damaged; export the card again.") from None
        return ""


def _inflate(data: bytes) -> bytes:
    """zlib, refusing to grow past the card size limit (a few bytes can inflate to gigabytes)."""
    inflater = zlib.decompressobj()
    out = inflater.decompress(data, MAX_FILE_BYTES)
    if inflater.unconsumed_tail:
        raise CardError("The character data in this PNG unpacks to more than 64 MB; it is not a real card.")
    return out


def _chunks(png: bytes) -> Iterator[_RawChunk]:
    if not is_png(png):
        raise CardError("The avatar is not a PNG image; convert it to PNG and try again.")
    offset = len(PNG_SIGNATURE)
    while offset + _HEADER.size <= len(png):
        length, kind = _HEADER.unpack_from(png, offset)
        start = offset + _HEADER.size
        if start + length + 4 > len(png):
            raise CardError("The avatar PNG is cut short; save the image again and retry.")
        yield _RawChunk(kind, png[start : start + length])
        if kind == b"IEND":
            return
        offset = start + length + 4
    raise CardError("The avatar PNG is cut short; save the image again and retry.")


def _chunk_bytes(kind: bytes, data: bytes) -> bytes:
    return _HEADER.pack(len(data), kind) + data + struct.pack(">I", zlib.crc32(kind + data))


def _is_card_chunk(chunk: _RawChunk) -> bool:
    if chunk.kind not in TEXT_CHUNK_TYPES:
        return False
    keyword, _, _ = chunk.data.partition(b"\0")
    return keyword.decode("latin-1").strip().lower() in CARD_KEYWORDS


def with_text_chunks(png: bytes, texts: dict[str, str]) -> bytes:
    """``png`` with its card chunks replaced by ``tEXt`` chunks for ``texts`` (keyword -> ASCII text).

    The new chunks go just before ``IEND``, where SillyTavern puts them; every other chunk keeps
    its data unchanged (and gets a correct CRC).
    """
    chunks = list(_chunks(png))
    if not chunks or chunks[0].kind != b"IHDR":
        raise CardError("The avatar PNG has no image header; save the image again and retry.")
    out = [PNG_SIGNATURE]
    for chunk in chunks:
        if chunk.kind == b"IEND":
            out += [_chunk_bytes(b"tEXt", f"{key}\0{text}".encode("latin-1")) for key, text in texts.items()]
        if not _is_card_chunk(chunk):
            out.append(_chunk_bytes(chunk.kind, chunk.data))
    return b"".join(out)


def strip_card_chunks(png: bytes) -> bytes:
    """The image alone: ``png`` without any character card chunks."""
    return with_text_chunks(png, {})
