"""Validate a GGUF file's header before llama.cpp ever sees it.

llama.cpp trusts model files: a truncated file, a zero tensor dimension, a duplicate vocabulary
entry or a wrongly typed key can crash the process that loads it.  This module reads only the
header (metadata and tensor table, never the weights) with our own bounded reader
(``gguf_reader``), so a crafted file cannot make it hang or allocate without limit, checks what
llama.cpp relies on, and turns every problem into a ``ModelFileError`` whose text tells the user
what is wrong and what to do.

The ``gguf`` package's ``GGUFReader`` is not used for this: it takes seconds on a real model
(it builds a numpy view per vocabulary entry) and loops on a crafted array count.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from gguf.constants import GGUFValueType, LlamaFileType

from nexus_desktop.llm.contract import ModelFileError
from nexus_desktop.llm.gguf_reader import (
    INTEGER_TYPES,
    ArrayInfo,
    Cursor,
    Malformed,
    TensorInfo,
    Truncated,
    format_size,
    product,
    read_metadata,
    read_tensor,
    shown,
)

_MAGIC = b"GGUF"
_SUPPORTED_VERSIONS = (2, 3)
_DEFAULT_ALIGNMENT = 32
_MAX_TENSORS = 65_536
_MAX_KEYS = 65_536

# Keys llama.cpp reads with type-asserting getters: a wrong type aborts the process.
_STRING_KEYS = ("general.architecture", "general.type", "general.name", "tokenizer.ggml.model")
_SPECIAL_TOKENS = ("bos", "eos", "eot", "eom", "unknown", "seperator", "padding", "mask", "cls")


@dataclass(frozen=True)
class ModelInfo:
    path: Path
    file_size: int
    gguf_version: int
    kind: str
    """``general.type``: "model", "adapter", "mmproj" and so on."""
    architecture: str
    name: str
    parameter_count: int
    size_label: str | None
    quantization: str
    context_length: int | None
    n_layers: int | None
    n_embd: int | None
    vocab_size: int | None
    has_chat_template: bool
    split_count: int
    adapter_type: str | None
    lora_alpha: float | None
    tensors: Mapping[str, TensorInfo] = field(repr=False, compare=False)
    metadata: Mapping[str, object] = field(default_factory=dict, repr=False, compare=False)
    """The header's values (arrays as ``ArrayInfo``), for the memory estimate in ``vram_fit``."""

    def describe(self) -> str:
        """One line for the model list, e.g. ``SmolLM2 · llama · 135M · Q4_1 · 98 MB``."""
        params = self.size_label or _format_count(self.parameter_count)
        size = format_size(self.file_size)
        return f"{self.name} · {self.architecture} · {params} · {self.quantization} · {size}"


def _format_count(count: int) -> str:
    if count >= 1_000_000_000:
        return f"{count / 1e9:.1f}B"
    return f"{count / 1e6:.0f}M" if count >= 1_000_000 else str(count)


def _int_value(values: Mapping[str, object], types: Mapping[str, GGUFValueType], key: str) -> int | None:
    if key not in values:
        return None
    if types[key] not in INTEGER_TYPES:
        raise Malformed(f"metadata key '{key}' should be a number but is {types[key].name.lower()}")
    return int(values[key])  # type: ignore[call-overload]


def _check_known_keys(
    values: Mapping[str, object], types: Mapping[str, GGUFValueType], vocabulary: list[bytes] | None
) -> None:
    for key in _STRING_KEYS:
        if key in types and types[key] != GGUFValueType.STRING:
            raise Malformed(f"metadata key '{key}' should be text but is {types[key].name.lower()}")
    alignment_type = types.get("general.alignment")
    if alignment_type is not None and alignment_type != GGUFValueType.UINT32:
        raise Malformed("metadata key 'general.alignment' has the wrong type")
    if "tokenizer.ggml.tokens" in types and vocabulary is None:
        raise Malformed("the vocabulary 'tokenizer.ggml.tokens' is not a list of text")
    if vocabulary is None:
        return
    if len(set(vocabulary)) != len(vocabulary):
        raise Malformed("the vocabulary lists the same token twice")
    for suffix in _SPECIAL_TOKENS:
        token_id = _int_value(values, types, f"tokenizer.ggml.{suffix}_token_id")
        if token_id is not None and token_id >= len(vocabulary):
            raise Malformed(f"special token '{suffix}' points outside the vocabulary")


def _quantization(values: Mapping[str, object], tensors: list[TensorInfo]) -> str:
    file_type = values.get("general.file_type")
    if isinstance(file_type, int) and not isinstance(file_type, bool):
        try:
            return LlamaFileType(file_type).name.removeprefix("MOSTLY_").removeprefix("ALL_")
        except ValueError:
            pass
    by_bytes: dict[str, int] = {}
    for tensor in tensors:
        by_bytes[tensor.ggml_type.name] = by_bytes.get(tensor.ggml_type.name, 0) + tensor.n_bytes
    return max(by_bytes, key=lambda name: by_bytes[name]) if by_bytes else "unknown"


def _parse(path: Path, handle: BinaryIO, file_size: int) -> ModelInfo:
    cursor = Cursor(handle, file_size)
    cursor.take(4)
    version = cursor.u32()
    if version & 0xFFFF == 0 and version:
        raise ModelFileError(
            f"{path.name} is a big-endian GGUF file, which this computer cannot use; "
            "download the standard (little-endian) version of the model."
        )
    if version not in _SUPPORTED_VERSIONS:
        raise ModelFileError(
            f"{path.name} uses GGUF version {version}, which llama.cpp cannot read; "
            "download a current GGUF version of the model."
        )
    tensor_count, kv_count = cursor.u64(), cursor.u64()
    if tensor_count > _MAX_TENSORS or kv_count > _MAX_KEYS:
        raise Malformed(f"the header claims {tensor_count} tensors and {kv_count} metadata keys")
    values, types, vocabulary = read_metadata(cursor, kv_count)
    _check_known_keys(values, types, vocabulary)
    tensors = [read_tensor(cursor) for _ in range(tensor_count)]
    by_name = {tensor.name: tensor for tensor in tensors}
    if len(by_name) != len(tensors):
        raise Malformed("two tensors have the same name")

    alignment = int(values.get("general.alignment", _DEFAULT_ALIGNMENT))  # type: ignore[call-overload]
    if alignment <= 0 or alignment & (alignment - 1):
        raise Malformed(f"the alignment {alignment} is not a power of two")
    data_start = -(-cursor.tell() // alignment) * alignment
    expected_offset = 0
    for tensor in tensors:
        # llama.cpp requires tensors packed in order; anything else is a damaged table.
        if tensor.offset != expected_offset:
            raise Malformed(f"tensor '{tensor.name}' starts at the wrong place")
        expected_offset += -(-tensor.n_bytes // alignment) * alignment
    needed = data_start + max((t.offset + t.n_bytes for t in tensors), default=0)
    if needed > file_size:
        raise Truncated(needed)

    _check_splits(path, values, types)
    arch = values.get("general.architecture")
    architecture = arch if isinstance(arch, str) else ""
    alpha = values.get("adapter.lora.alpha")
    if alpha is not None and types["adapter.lora.alpha"] != GGUFValueType.FLOAT32:
        raise Malformed("metadata key 'adapter.lora.alpha' should be a 32-bit float")
    adapter_type = values.get("adapter.type")
    vocab_array = values.get("tokenizer.ggml.tokens")
    return ModelInfo(
        path=path,
        file_size=file_size,
        gguf_version=version,
        kind=str(values.get("general.type", "model")),
        architecture=architecture,
        name=str(values.get("general.name") or path.stem),
        parameter_count=sum(product(t.shape) for t in tensors),
        size_label=str(values["general.size_label"]) if "general.size_label" in values else None,
        quantization=_quantization(values, tensors),
        context_length=_int_value(values, types, f"{architecture}.context_length"),
        n_layers=_int_value(values, types, f"{architecture}.block_count"),
        n_embd=_int_value(values, types, f"{architecture}.embedding_length"),
        vocab_size=vocab_array.count if isinstance(vocab_array, ArrayInfo) else None,
        has_chat_template=isinstance(values.get("tokenizer.chat_template"), str),
        split_count=_int_value(values, types, "split.count") or 1,
        adapter_type=str(adapter_type) if adapter_type is not None else None,
        lora_alpha=float(alpha) if isinstance(alpha, float) else None,
        tensors=by_name,
        metadata=values,
    )


def _check_splits(path: Path, values: Mapping[str, object], types: Mapping[str, GGUFValueType]) -> None:
    count = _int_value(values, types, "split.count") or 1
    if count <= 1:
        return
    index = _int_value(values, types, "split.no") or 0
    stem = path.name.removesuffix(".gguf")
    prefix = stem.removesuffix(f"-{index + 1:05d}-of-{count:05d}")
    if index != 0 or prefix == stem:
        raise ModelFileError(
            f"{path.name} is part {index + 1} of a model split into {count} files; "
            f"pick the first part (ending in -00001-of-{count:05d}.gguf)."
        )
    for part in range(2, count + 1):
        sibling = path.with_name(f"{prefix}-{part:05d}-of-{count:05d}.gguf")
        if not sibling.is_file():
            raise ModelFileError(
                f"{path.name} is split into {count} files and {sibling.name} is missing; "
                "put all parts in the same folder."
            )


def _not_gguf_reason(head: bytes) -> str:
    lowered = head.lstrip().lower()
    if lowered.startswith((b"<!doctype", b"<html")):
        return "is a web page, not a model (the download saved the page instead of the file)"
    if lowered.startswith(b"version https://git-lfs"):
        return "is a Git LFS pointer, not the model itself"
    if head[:4] in (b"lmgg", b"fmgg", b"tjgg", b"algg"):
        return "uses the old GGML format that llama.cpp no longer reads"
    return "is not a GGUF model file"


def inspect_model(path: str | Path) -> ModelInfo:
    """Read and check a GGUF header; raise ``ModelFileError`` with advice if the file is unusable."""
    path = Path(path).expanduser()
    if not path.exists():
        raise ModelFileError(f"Model file not found: {path}; pick another file in Settings → Model.")
    if not path.is_file():
        raise ModelFileError(f"{path} is not a file; pick a .gguf model file in Settings → Model.")
    try:
        with path.open("rb") as handle:
            file_size = path.stat().st_size
            if file_size == 0:
                raise ModelFileError(f"{path.name} is empty (0 bytes); download the model again.")
            head = handle.read(64)
            if head[:4] != _MAGIC:
                raise ModelFileError(
                    f"{path.name} {_not_gguf_reason(head)}; pick a .gguf model file in Settings → Model."
                )
            handle.seek(0)
            return _parse(path, handle, file_size)
    except ModelFileError:
        raise
    except Truncated as error:
        of_needed = f" of {format_size(error.needed)}" if error.needed else " on disk"
        raise ModelFileError(
            f"{path.name} is truncated ({format_size(path.stat().st_size)}{of_needed}); download it again."
        ) from None
    except Malformed as error:
        raise ModelFileError(
            f"{path.name} is damaged ({shown(str(error))}); download it again or pick another model."
        ) from None
    except OSError as error:
        raise ModelFileError(
            f"{path.name} cannot be read ({error.strerror or error}); check the file's permissions."
        ) from None
    except Exception as error:  # A parser bug must not look like a crash to the user.
        raise ModelFileError(
            f"{path.name} could not be checked ({type(error).__name__}); pick another model."
        ) from error


def validate_lora_adapter(adapter_path: str | Path, model_info: ModelInfo) -> ModelInfo:
    """Check that a LoRA adapter fits the base model exactly, as llama.cpp would.

    llama.cpp fails such an adapter with a NULL handle that llama-cpp-python does not check, and
    the first decode then segfaults; so every check llama.cpp makes is repeated here first.
    """
    adapter = inspect_model(adapter_path)
    label = adapter.path.name
    if adapter.kind != "adapter" or adapter.adapter_type != "lora":
        raise ModelFileError(f"{label} is not a LoRA adapter; pick a LoRA adapter file (.gguf).")
    if adapter.architecture != model_info.architecture:
        raise ModelFileError(
            f"{label} was made for a {adapter.architecture or 'unknown'} model, not "
            f"{model_info.architecture}; pick an adapter trained for {model_info.path.name}."
        )
    pairs: dict[str, dict[str, TensorInfo]] = {}
    for tensor in adapter.tensors.values():
        base_name, _, part = tensor.name.rpartition(".")
        if part in ("lora_a", "lora_b"):
            pairs.setdefault(base_name, {})[part] = tensor
        elif not tensor.name.endswith("_norm.weight"):
            raise ModelFileError(
                f"{label} holds an unexpected tensor '{tensor.name}'; it is not a LoRA adapter."
            )
    if not pairs:
        raise ModelFileError(f"{label} holds no LoRA weights; pick another adapter.")
    for base_name, pair in sorted(pairs.items()):
        _check_lora_pair(label, base_name, pair, model_info)
    return adapter


def _check_lora_pair(label: str, base_name: str, pair: dict[str, TensorInfo], model_info: ModelInfo) -> None:
    mismatch = (
        f"{label} does not fit {model_info.path.name} (tensor '{base_name}' has the wrong shape); "
        "pick an adapter trained for this model."
    )
    if "lora_a" not in pair or "lora_b" not in pair:
        raise ModelFileError(
            f"{label} is incomplete (tensor '{base_name}' lacks half of its pair); export it again."
        )
    base = model_info.tensors.get(base_name)
    if base is None:
        raise ModelFileError(
            f"{label} does not fit {model_info.path.name} (it changes '{base_name}', "
            "which that model lacks); pick an adapter trained for this model."
        )
    a, b = pair["lora_a"].shape, pair["lora_b"].shape
    base_shape = base.shape if len(base.shape) >= 2 else (*base.shape, 1)
    if len(a) != 2 or len(b) != 2:
        raise ModelFileError(mismatch)
    if base_name.endswith("token_embd.weight"):
        # llama.cpp stores the embedding adapter flipped; see llm_build_inp_embd().
        fits = base_shape[0] == b[1] and base_shape[1] == a[1]
    else:
        fits = base_shape[0] == a[0] and base_shape[1] == b[1] and a[1] == b[0]
    if not fits:
        raise ModelFileError(mismatch)
