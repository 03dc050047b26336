"""Find and load the base model: the app's GGUF (dequantised to fp32, cached as HF files) or an HF folder.

Only llama-architecture models are supported: the GGUF LoRA export maps llama's tensor names and
permutes q/k for llama.cpp's rotary layout, which other architectures do not share.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.progress import TrainerError, log

SOURCE_MARKER = "nexus_source.json"
SUPPORTED_ARCHITECTURE = "llama"


@dataclass(frozen=True)
class BaseModel:
    hf_dir: Path | None
    """A folder ``from_pretrained`` can load directly (None until a GGUF has been converted)."""
    gguf_path: Path | None
    """The GGUF the app runs, used to check the exported adapter through llama.cpp."""


def resolve(base_model: str, hf_cache_dir: str | None) -> BaseModel:
    """Check the base model without loading it; raise ``TrainerError("base_model")`` with advice."""
    path = Path(base_model).expanduser()
    if path.is_file():
        _check_gguf_architecture(path)
        if not hf_cache_dir:
            raise TrainerError("internal", "The job names no hf_cache_dir to keep the converted model in.")
        cached = _cache_dir_for(path, hf_cache_dir)
        return BaseModel(cached if (cached / "config.json").is_file() else None, path)
    if path.is_dir():
        config = _read_config(path)
        model_type = config.get("model_type")
        if model_type != SUPPORTED_ARCHITECTURE:
            raise _not_llama(path.name, str(model_type))
        return BaseModel(path, _gguf_source(path))
    raise TrainerError("base_model", f"The base model {path} does not exist; pick the model file again.")


def _not_llama(name: str, architecture: str) -> TrainerError:
    return TrainerError(
        "base_model",
        f"{name} is a {architecture or 'unknown'} model, but fine-tuning supports only llama-architecture "
        "models (e.g. SmolLM2, Llama 3, TinyLlama); pick one of those.",
    )


def _check_gguf_architecture(path: Path) -> None:
    from nexus_desktop.llm.contract import ModelFileError
    from nexus_desktop.llm.gguf_check import inspect_model

    try:
        info = inspect_model(path)
    except ModelFileError as error:
        raise TrainerError("base_model", str(error)) from None
    if info.kind != "model":
        raise TrainerError(
            "base_model", f"{path.name} is a {info.kind}, not a model; pick the base model file."
        )
    if info.architecture != SUPPORTED_ARCHITECTURE:
        raise _not_llama(path.name, info.architecture)


def _read_config(folder: Path) -> dict[str, Any]:
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise TrainerError(
            "base_model",
            f"{folder} has no readable config.json; pick a GGUF file or a Hugging Face model folder.",
        ) from None
    if not isinstance(config, dict):
        raise TrainerError("base_model", f"{folder}/config.json is not a JSON object; pick another model.")
    return config


def _gguf_source(folder: Path) -> Path | None:
    try:
        source = Path(json.loads((folder / SOURCE_MARKER).read_text(encoding="utf-8"))["gguf"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return source if source.is_file() else None


def _cache_dir_for(gguf: Path, hf_cache_dir: str) -> Path:
    # Name, size and mtime identify the file without hashing gigabytes.
    stat = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    return Path(hf_cache_dir).expanduser() / f"{gguf.stem}-{key}"


def load(base: BaseModel, hf_cache_dir: str | None, torch_dtype: Any) -> tuple[Any, Any, Path]:
    """Model, tokenizer and the HF folder they came from (the GGUF is converted and cached on first use)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if base.hf_dir is not None:
        started = time.monotonic()
        model = AutoModelForCausalLM.from_pretrained(base.hf_dir, dtype=torch_dtype)
        tokenizer = AutoTokenizer.from_pretrained(base.hf_dir)
        log(f"loaded {base.hf_dir} in {time.monotonic() - started:.1f} s")
        return model, tokenizer, base.hf_dir
    assert base.gguf_path is not None
    gguf = base.gguf_path
    started = time.monotonic()
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch_dtype)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    log(f"dequantised {gguf.name} in {time.monotonic() - started:.1f} s")
    if model.config.model_type != SUPPORTED_ARCHITECTURE:
        raise _not_llama(gguf.name, model.config.model_type)
    assert hf_cache_dir, "resolve() checked it"
    target = _cache_dir_for(gguf, hf_cache_dir)
    _save_fp32_copy(model, tokenizer, gguf, target)
    return model, tokenizer, target


def _save_fp32_copy(model: Any, tokenizer: Any, gguf: Path, target: Path) -> None:
    """Cache the dequantised weights so later jobs load in under a second instead of ~20 s."""
    # transformers refuses to save a model "quantized with gguf"; the weights are plain fp32 by now.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.is_quantized = False
    partial = target.with_name(target.name + f".partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    (partial / SOURCE_MARKER).write_text(json.dumps({"gguf": str(gguf.resolve())}), encoding="utf-8")
    if target.exists():  # Another job won the race; its copy is as good as ours.
        shutil.rmtree(partial, ignore_errors=True)
        return
    partial.rename(target)
    log(f"cached an fp32 copy in {target}")
