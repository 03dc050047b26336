"""A bounded reader for a GGUF header: metadata and the tensor table, never the weights.

Every count and length in the file is checked against what is left of it before anything is
read or allocated, so a crafted header cannot make it hang or run out of memory.  Problems are
raised as ``Truncated`` (the file is shorter than its header says) or ``Malformed`` (a short
fragment for the user); ``gguf_check`` turns them into ``ModelFileError``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import BinaryIO

from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFValueType

_MAX_DIMS = 4
_MAX_TENSOR_NAME = 63  # GGML_MAX_NAME is 64 including the terminating zero.
_MAX_STRING = 1 << 30
_MAX_STRING_ARRAY = 1 << 23
_MAX_KEPT_STRING = 1 << 20
_CHUNK = 1 << 20
SCALAR_FORMATS: dict[GGUFValueType, str] = {
    GGUFValueType.UINT8: "<B",
    GGUFValueType.INT8: "<b",
    GGUFValueType.UINT16: "<H",
    GGUFValueType.INT16: "<h",
    GGUFValueType.UINT32: "<I",
    GGUFValueType.INT32: "<i",
    GGUFValueType.FLOAT32: "<f",
    GGUFValueType.BOOL: "<?",
    GGUFValueType.UINT64: "<Q",
    GGUFValueType.INT64: "<q",
    GGUFValueType.FLOAT64: "<d",
}
INTEGER_TYPES = frozenset(SCALAR_FORMATS) - {
    GGUFValueType.FLOAT32,
    GGUFValueType.FLOAT64,
    GGUFValueType.BOOL,
}


@dataclass(frozen=True)
class ArrayInfo:
    item_type: GGUFValueType
    count: int


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    """Dimensions in GGUF order: ``shape[0]`` is the row length (ggml's ``ne[0]``)."""
    ggml_type: GGMLQuantizationType
    offset: int
    n_bytes: int


class Truncated(Exception):
    """The header claims more bytes than the file holds; ``needed`` is the full size when known."""

    def __init__(self, needed: int | None = None) -> None:
        super().__init__(needed)
        self.needed = needed


class Malformed(Exception):
    """The header is structurally wrong; the message is a short fragment for the user."""


def format_size(n_bytes: int) -> str:
    if n_bytes >= 1_000_000_000:
        return f"{n_bytes / 1e9:.1f} GB"
    if n_bytes >= 1_000_000:
        return f"{n_bytes / 1e6:.0f} MB"
    return f"{n_bytes / 1e3:.0f} KB" if n_bytes >= 1000 else f"{n_bytes} bytes"


class Cursor:
    """Sequential reads over a file with a bounded buffer; never reads past ``size``."""

    def __init__(self, handle: BinaryIO, size: int) -> None:
        self._handle = handle
        self._size = size
        self._buffer = b""
        self._pos = 0
        self._base = 0

    def tell(self) -> int:
        return self._base + self._pos

    def remaining(self) -> int:
        return self._size - self.tell()

    def take(self, n: int) -> bytes:
        if n > self.remaining():
            raise Truncated
        if self._pos + n > len(self._buffer):
            self._base += self._pos
            self._handle.seek(self._base)
            self._buffer = self._handle.read(max(n, _CHUNK))
            self._pos = 0
            if len(self._buffer) < n:
                raise Truncated
        chunk = self._buffer[self._pos : self._pos + n]
        self._pos += n
        return chunk

    def skip(self, n: int) -> None:
        if n > self.remaining():
            raise Truncated
        if self._pos + n <= len(self._buffer):
            self._pos += n
        else:
            self._base, self._buffer, self._pos = self.tell() + n, b"", 0

    def unpack(self, fmt: str) -> int | float | bool:
        value: int | float | bool = struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]
        return value

    def u32(self) -> int:
        return int(self.unpack("<I"))

    def u64(self) -> int:
        return int(self.unpack("<Q"))

    def string(self, what: str) -> bytes:
        length = self.u64()
        if length > _MAX_STRING:
            raise Malformed(f"{what} claims to be {format_size(length)} long")
        return self.take(length)


def shown(text: str, limit: int = 200) -> str:
    """Text that may quote the file, made safe for a one-line message."""
    return "".join(char if char.isprintable() else "?" for char in text[:limit])


def read_value_type(raw: int, key: str) -> GGUFValueType:
    try:
        return GGUFValueType(raw)
    except ValueError:
        raise Malformed(f"metadata key '{key}' has an unknown value type {raw}") from None


def read_array(cursor: Cursor, key: str) -> tuple[ArrayInfo, list[bytes] | None]:
    item_type = read_value_type(cursor.u32(), key)
    count = cursor.u64()
    if item_type == GGUFValueType.ARRAY:
        raise Malformed(f"metadata key '{key}' is a nested array")
    if item_type == GGUFValueType.STRING:
        if count > _MAX_STRING_ARRAY:
            raise Malformed(f"metadata key '{key}' claims an impossible {count} entries")
        if count * 8 > cursor.remaining():
            raise Truncated
        # Only the vocabulary is kept: duplicates in it make llama.cpp abort.
        keep = key == "tokenizer.ggml.tokens"
        items = [cursor.string(f"an entry of '{key}'") for _ in range(count)] if keep else None
        if not keep:
            for _ in range(count):
                cursor.skip(cursor.u64())
        return ArrayInfo(item_type, count), items
    item_size = struct.calcsize(SCALAR_FORMATS[item_type])
    if count * item_size > cursor.remaining():
        raise Truncated
    cursor.skip(count * item_size)
    return ArrayInfo(item_type, count), None


def read_text_value(cursor: Cursor, key: str) -> str:
    length = cursor.u64()
    if length > _MAX_STRING:
        raise Malformed(f"the value of '{key}' claims to be {format_size(length)} long")
    if length > _MAX_KEPT_STRING:
        # Embedded tokenizer JSON and the like: nothing here needs its text.
        cursor.skip(length)
        return ""
    return cursor.take(length).decode("utf-8", errors="replace")


def read_metadata(
    cursor: Cursor, kv_count: int
) -> tuple[dict[str, object], dict[str, GGUFValueType], list[bytes] | None]:
    values: dict[str, object] = {}
    types: dict[str, GGUFValueType] = {}
    vocabulary: list[bytes] | None = None
    for index in range(kv_count):
        raw_key = cursor.string("a metadata key")
        if not raw_key:
            raise Malformed(f"metadata key number {index + 1} is empty")
        key = raw_key.decode("utf-8", errors="replace")
        if key in types:
            raise Malformed(f"metadata key '{key}' appears twice")
        value_type = read_value_type(cursor.u32(), key)
        types[key] = value_type
        if value_type == GGUFValueType.STRING:
            values[key] = read_text_value(cursor, key)
        elif value_type == GGUFValueType.ARRAY:
            values[key], items = read_array(cursor, key)
            if items is not None:
                vocabulary = items
        else:
            values[key] = cursor.unpack(SCALAR_FORMATS[value_type])
    return values, types, vocabulary


def read_tensor(cursor: Cursor) -> TensorInfo:
    name = cursor.string("a tensor name").decode("utf-8", errors="replace")
    if not name:
        raise Malformed("a tensor has an empty name")
    if len(name.encode()) > _MAX_TENSOR_NAME:
        raise Malformed(f"tensor name '{name[:40]}' is too long")
    n_dims = cursor.u32()
    if not 1 <= n_dims <= _MAX_DIMS:
        raise Malformed(f"tensor '{name}' has {n_dims} dimensions")
    shape = tuple(cursor.u64() for _ in range(n_dims))
    if 0 in shape:
        raise Malformed(f"tensor '{name}' has a zero-sized dimension {list(shape)}")
    n_elements = product(shape)
    if n_elements >= 1 << 62:
        raise Malformed(f"tensor '{name}' has an impossible shape {list(shape)}")
    raw_type = cursor.u32()
    try:
        ggml_type = GGMLQuantizationType(raw_type)
        block_size, type_size = GGML_QUANT_SIZES[ggml_type]
    except (ValueError, KeyError):
        raise Malformed(f"tensor '{name}' has an unknown data type {raw_type}") from None
    if shape[0] % block_size:
        raise Malformed(f"tensor '{name}' has rows that do not fit its {ggml_type.name} blocks")
    offset = cursor.u64()
    return TensorInfo(name, shape, ggml_type, offset, n_elements // block_size * type_size)


def product(shape: tuple[int, ...]) -> int:
    result = 1
    for dim in shape:
        result *= dim
    return result
