"""Header validation: every unusable model file is refused with advice, before llama.cpp sees it."""

from __future__ import annotations

import shutil
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from gguf import GGUFWriter
from gguf.constants import GGUFValueType
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nexus_desktop.llm.contract import ModelFileError
from nexus_desktop.llm.gguf_check import inspect_model, validate_lora_adapter


def write_gguf(
    path: Path,
    *,
    arch: str = "llama",
    tensors: dict[str, np.ndarray] | None = None,
    configure: Callable[[GGUFWriter], None] | None = None,
) -> Path:
    """A small GGUF file made with the ``gguf`` package's own writer."""
    writer = GGUFWriter(path, arch)
    writer.add_name("tiny test model")
    writer.add_block_count(1)
    writer.add_context_length(128)
    writer.add_embedding_length(8)
    if configure is not None:
        configure(writer)
    for name, array in (
        tensors if tensors is not None else {"blk.0.attn_q.weight": np.ones((8, 8), np.float32)}
    ).items():
        writer.add_tensor(name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def raw_gguf(*, kv: bytes = b"", kv_count: int = 0, tensor_count: int = 0, version: int = 3) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", version, tensor_count, kv_count) + kv


def gguf_string(text: bytes) -> bytes:
    return struct.pack("<Q", len(text)) + text


def refusal(path: Path) -> str:
    with pytest.raises(ModelFileError) as caught:
        inspect_model(path)
    return str(caught.value)


# --- The real model --------------------------------------------------------------------------


@pytest.mark.model
def test_real_model_header_reports_what_the_ui_shows(smollm2_path: Path) -> None:
    info = inspect_model(smollm2_path)

    assert info.architecture == "llama"
    assert info.kind == "model"
    assert info.quantization == "Q4_1"
    assert info.context_length == 8192
    assert info.n_layers == 30
    assert info.n_embd == 576
    assert info.vocab_size == 49152
    assert info.has_chat_template
    assert 130_000_000 < info.parameter_count < 140_000_000
    assert info.file_size == smollm2_path.stat().st_size
    assert "Q4_1" in info.describe() and "98 MB" in info.describe()


# --- Files that are not models at all ----------------------------------------------------------


def test_missing_file_says_not_found_and_where_to_pick_another(tmp_path: Path) -> None:
    message = refusal(tmp_path / "gone.gguf")
    assert "not found" in message and "gone.gguf" in message and "Settings → Model" in message


def test_folder_instead_of_file_is_refused(tmp_path: Path) -> None:
    assert "not a file" in refusal(tmp_path)


def test_zero_byte_file_says_it_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "empty.gguf"
    path.touch()
    message = refusal(path)
    assert "empty" in message and "download" in message


def test_text_file_says_it_is_not_gguf(tmp_path: Path) -> None:
    path = tmp_path / "notes.gguf"
    path.write_text("just some notes\n")
    assert "not a GGUF model file" in refusal(path)


def test_saved_web_page_is_recognised(tmp_path: Path) -> None:
    path = tmp_path / "model.gguf"
    path.write_text("<!DOCTYPE html><html><body>Sign in to download</body></html>")
    assert "web page" in refusal(path)


def test_git_lfs_pointer_is_recognised(tmp_path: Path) -> None:
    path = tmp_path / "model.gguf"
    path.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 98362432\n")
    assert "Git LFS pointer" in refusal(path)


def test_garbage_after_magic_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "garbage.gguf"
    path.write_bytes(b"GGUF" + bytes(range(256)) * 40)
    message = refusal(path)
    assert "garbage.gguf" in message and ("damaged" in message or "version" in message)


def test_unsupported_version_says_so(tmp_path: Path) -> None:
    path = tmp_path / "v1.gguf"
    path.write_bytes(raw_gguf(version=1))
    assert "GGUF version 1" in refusal(path)


def test_big_endian_file_is_explained(tmp_path: Path) -> None:
    path = tmp_path / "be.gguf"
    path.write_bytes(b"GGUF" + struct.pack(">IQQ", 3, 0, 0))
    assert "big-endian" in refusal(path)


# --- Damaged model files ------------------------------------------------------------------------


@pytest.mark.model
def test_truncated_download_reports_how_much_is_missing(smollm2_path: Path, tmp_path: Path) -> None:
    path = tmp_path / "partial.gguf"
    with smollm2_path.open("rb") as source, path.open("wb") as target:
        target.write(source.read(50_000_000))

    message = refusal(path)

    assert "truncated (50 MB of 98 MB)" in message and "download it again" in message


@pytest.mark.model
def test_file_cut_inside_its_header_is_truncated(smollm2_path: Path, tmp_path: Path) -> None:
    path = tmp_path / "header-only.gguf"
    with smollm2_path.open("rb") as source, path.open("wb") as target:
        target.write(source.read(300_000))
    assert "truncated" in refusal(path)


@pytest.mark.model
def test_file_with_extra_bytes_at_the_end_is_still_accepted(smollm2_path: Path, tmp_path: Path) -> None:
    path = tmp_path / "padded.gguf"
    shutil.copyfile(smollm2_path, path)
    with path.open("ab") as handle:
        handle.write(b"\0" * 100)
    assert inspect_model(path).architecture == "llama"


def test_tiny_valid_file_is_accepted(tmp_path: Path) -> None:
    info = inspect_model(write_gguf(tmp_path / "tiny.gguf"))
    assert info.architecture == "llama" and info.n_layers == 1 and info.parameter_count == 64


def test_zero_sized_tensor_dimension_is_refused(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "zero.gguf", tensors={"blk.0.attn_q.weight": np.ones((0, 8), np.float32)})
    message = refusal(path)
    assert "zero-sized dimension" in message and "damaged" in message


def test_empty_metadata_key_is_refused(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "emptykey.gguf", configure=lambda w: w.add_string("", "x"))
    assert "is empty" in refusal(path)


def test_duplicate_vocabulary_entries_are_refused(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "vocab.gguf", configure=lambda w: w.add_token_list(["a", "b", "a"]))
    assert "same token twice" in refusal(path)


def test_special_token_outside_vocabulary_is_refused(tmp_path: Path) -> None:
    def configure(writer: GGUFWriter) -> None:
        writer.add_token_list(["a", "b"])
        writer.add_eos_token_id(7)

    assert "outside the vocabulary" in refusal(write_gguf(tmp_path / "eos.gguf", configure=configure))


def test_architecture_of_the_wrong_type_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "arch.gguf"
    kv = gguf_string(b"general.architecture") + struct.pack("<II", GGUFValueType.UINT32, 7)
    path.write_bytes(raw_gguf(kv=kv, kv_count=1))
    assert "should be text" in refusal(path)


def test_absurd_array_length_is_refused_without_hanging(tmp_path: Path) -> None:
    path = tmp_path / "array.gguf"
    kv = gguf_string(b"x") + struct.pack("<IIQ", GGUFValueType.ARRAY, GGUFValueType.UINT8, 1 << 60)
    path.write_bytes(raw_gguf(kv=kv, kv_count=1) + b"\0" * 64)
    assert "truncated" in refusal(path)


def test_absurd_string_array_length_is_refused_without_hanging(tmp_path: Path) -> None:
    path = tmp_path / "strings.gguf"
    kv = gguf_string(b"x") + struct.pack("<IIQ", GGUFValueType.ARRAY, GGUFValueType.STRING, 1 << 40)
    path.write_bytes(raw_gguf(kv=kv, kv_count=1) + b"\0" * 64)
    assert "impossible" in refusal(path)


def test_absurd_tensor_count_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "count.gguf"
    path.write_bytes(raw_gguf(tensor_count=1 << 40))
    assert "damaged" in refusal(path)


def test_missing_part_of_a_split_model_is_named(tmp_path: Path) -> None:
    def configure(writer: GGUFWriter) -> None:
        writer.add_uint16("split.no", 0)
        writer.add_uint16("split.count", 2)

    path = write_gguf(tmp_path / "big-00001-of-00002.gguf", configure=configure)
    assert "big-00002-of-00002.gguf is missing" in refusal(path)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_corruption_gives_model_file_error_or_a_valid_header(tmp_path: Path, data: st.DataObject) -> None:
    template = tmp_path / "template.gguf"
    if not template.exists():
        write_gguf(template, configure=lambda w: w.add_token_list(["a", "b", "c"]))
    blob = bytearray(template.read_bytes())
    for _ in range(data.draw(st.integers(1, 6))):
        position = data.draw(st.integers(0, len(blob) - 1))
        blob[position] = data.draw(st.integers(0, 255))
    blob = blob[: data.draw(st.integers(0, len(blob)))]
    path = tmp_path / "mutant.gguf"
    path.write_bytes(bytes(blob))

    try:
        info = inspect_model(path)
    except ModelFileError as error:
        assert str(error).endswith(".")
    else:
        assert all(0 not in tensor.shape for tensor in info.tensors.values())


# --- LoRA adapters ------------------------------------------------------------------------------


def write_adapter(
    path: Path,
    pairs: dict[str, tuple[tuple[int, int], tuple[int, int]]],
    *,
    arch: str = "llama",
    kind: str = "adapter",
) -> Path:
    """``pairs`` maps a base tensor to the GGUF shapes (ne0, ne1) of its lora_a and lora_b."""

    def configure(writer: GGUFWriter) -> None:
        writer.add_type(kind)
        writer.add_string("adapter.type", "lora")
        writer.add_float32("adapter.lora.alpha", 16.0)

    tensors = {}
    for base, (a_shape, b_shape) in pairs.items():
        # numpy shapes are the reverse of GGUF's (ne0 is the last numpy axis).
        tensors[f"{base}.lora_a"] = np.zeros(a_shape[::-1], np.float32)
        tensors[f"{base}.lora_b"] = np.zeros(b_shape[::-1], np.float32)
    return write_gguf(path, arch=arch, tensors=tensors, configure=configure)


RANK = 4


@pytest.mark.model
def test_adapter_made_for_the_model_is_accepted(smollm2_path: Path, tmp_path: Path) -> None:
    pairs = {
        "blk.0.attn_q.weight": ((576, RANK), (RANK, 576)),
        "blk.0.attn_k.weight": ((576, RANK), (RANK, 192)),
        "blk.3.ffn_down.weight": ((1536, RANK), (RANK, 576)),
    }
    adapter = validate_lora_adapter(write_adapter(tmp_path / "good.gguf", pairs), inspect_model(smollm2_path))
    assert adapter.kind == "adapter" and adapter.lora_alpha == 16.0


@pytest.mark.model
def test_adapter_for_another_model_size_is_refused(smollm2_path: Path, tmp_path: Path) -> None:
    pairs = {"blk.0.attn_q.weight": ((512, RANK), (RANK, 512))}
    with pytest.raises(ModelFileError, match=r"does not fit .*wrong shape"):
        validate_lora_adapter(write_adapter(tmp_path / "wrong.gguf", pairs), inspect_model(smollm2_path))


@pytest.mark.model
def test_adapter_with_mismatched_rank_is_refused(smollm2_path: Path, tmp_path: Path) -> None:
    pairs = {"blk.0.attn_q.weight": ((576, RANK), (RANK + 1, 576))}
    with pytest.raises(ModelFileError, match="wrong shape"):
        validate_lora_adapter(write_adapter(tmp_path / "rank.gguf", pairs), inspect_model(smollm2_path))


@pytest.mark.model
def test_adapter_for_a_layer_the_model_lacks_is_refused(smollm2_path: Path, tmp_path: Path) -> None:
    pairs = {"blk.40.attn_q.weight": ((576, RANK), (RANK, 576))}
    with pytest.raises(ModelFileError, match="which that model lacks"):
        validate_lora_adapter(write_adapter(tmp_path / "deep.gguf", pairs), inspect_model(smollm2_path))


@pytest.mark.model
def test_adapter_for_another_architecture_is_refused(smollm2_path: Path, tmp_path: Path) -> None:
    pairs = {"blk.0.attn_q.weight": ((576, RANK), (RANK, 576))}
    with pytest.raises(ModelFileError, match="made for a qwen2 model"):
        validate_lora_adapter(
            write_adapter(tmp_path / "qwen.gguf", pairs, arch="qwen2"), inspect_model(smollm2_path)
        )


@pytest.mark.model
def test_a_model_file_is_not_accepted_as_adapter(smollm2_path: Path) -> None:
    with pytest.raises(ModelFileError, match="not a LoRA adapter"):
        validate_lora_adapter(smollm2_path, inspect_model(smollm2_path))


@pytest.mark.model
def test_adapter_missing_half_a_pair_is_refused(smollm2_path: Path, tmp_path: Path) -> None:
    def configure(writer: GGUFWriter) -> None:
        writer.add_type("adapter")
        writer.add_string("adapter.type", "lora")

    half = write_gguf(
        tmp_path / "half.gguf",
        tensors={"blk.0.attn_q.weight.lora_a": np.zeros((RANK, 576), np.float32)},
        configure=configure,
    )
    with pytest.raises(ModelFileError, match="lacks half of its pair"):
        validate_lora_adapter(half, inspect_model(smollm2_path))
