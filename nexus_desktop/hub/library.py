"""The models on this PC: each file's GGUF metadata, where it came from, and deleting one.

Built on ``llm.catalog`` (which files are models) and ``llm.gguf_check`` (the checked header).
Reading headers takes about 0.1 s a model: call from a worker thread, not the UI thread.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from nexus_desktop.hub.download import SIDECAR_SUFFIX, bytes_on_disk, part_path, pending_downloads
from nexus_desktop.hub.errors import HubError
from nexus_desktop.hub.names import repo_from_folder, split_part
from nexus_desktop.hub.search import RemoteModel
from nexus_desktop.llm.catalog import default_model_path, list_models, resolve_model
from nexus_desktop.llm.contract import ModelFileError
from nexus_desktop.llm.gguf_check import ModelInfo, inspect_model
from nexus_desktop.llm.gguf_reader import format_size
from nexus_desktop.llm.templates import TEMPLATE_LABELS

# What marks each family's Jinja template; the first match names it.
_TEMPLATE_MARKERS: tuple[tuple[str, str], ...] = (
    ("<|start_header_id|>", "llama3"),
    ("<|im_start|>", "chatml"),
    ("<start_of_turn>", "gemma"),
    ("[INST]", "mistral"),
    ("### Instruction", "alpaca"),
    ("ASSISTANT:", "vicuna"),
)


@dataclass(frozen=True)
class LibraryModel:
    """One model file on disk, with what its header says (``info``) or why it cannot be used."""

    path: Path
    info: ModelInfo | None
    error: str | None
    """Why the file cannot be used (one sentence); None when it can."""
    bundled: bool
    """The model that ships with NEXUS (it cannot be deleted)."""

    @property
    def usable(self) -> bool:
        return self.info is not None

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def size(self) -> int:
        """Bytes on disk, all parts of a split model together."""
        return sum(part.stat().st_size for part in model_parts(self.path) if part.exists())

    @property
    def source_repo(self) -> str | None:
        """The hub repo it was downloaded from (``owner/name``), from its folder or its header."""
        from_folder = repo_from_folder(self.path.parent.name)
        if from_folder is not None:
            return from_folder
        if self.info is None:
            return None
        return _text(self.info.metadata, "general.source.huggingface.repository") or _text(
            self.info.metadata, "general.source.repo_url"
        )

    @property
    def parameters(self) -> str | None:
        """ "135M", "8B": the header's size label, else counted from the tensors."""
        if self.info is None:
            return None
        if self.info.size_label:
            return self.info.size_label
        count = self.info.parameter_count
        return f"{count / 1e9:.1f}B" if count >= 1_000_000_000 else f"{count / 1e6:.0f}M"

    @property
    def licence(self) -> str | None:
        """``general.license`` ("apache-2.0", "llama3.2"...); None when the file does not say."""
        if self.info is None:
            return None
        return _text(self.info.metadata, "general.license.name") or _text(
            self.info.metadata, "general.license"
        )

    @property
    def chat_template(self) -> str | None:
        """The family of the model's own chat template ("ChatML", "Llama 3"...); None without one."""
        if self.info is None:
            return None
        return chat_template_family(_text(self.info.metadata, "tokenizer.chat_template"))

    def details(self) -> list[tuple[str, str]]:
        """Label and value rows for an info view (``nexus models info``, the Models page)."""
        if self.info is None:
            return [("File", str(self.path)), ("Problem", self.error or "unusable")]
        info = self.info
        rows = [
            ("Name", info.name),
            ("File", str(self.path)),
            ("Size", format_size(self.size)),
            ("Architecture", info.architecture or "unknown"),
            ("Parameters", self.parameters or "unknown"),
            ("Quantisation", info.quantization),
            ("Context length", f"{info.context_length:,}" if info.context_length else "unknown"),
            ("Layers", str(info.n_layers) if info.n_layers else "unknown"),
            ("Chat template", self.chat_template or "none (a template is picked in Settings)"),
            ("Licence", self.licence or "not stated in the file"),
            ("Source", self.source_repo or ("bundled with NEXUS" if self.bundled else "added by hand")),
        ]
        if info.split_count > 1:
            rows.insert(3, ("Parts", str(info.split_count)))
        return rows


@dataclass(frozen=True)
class PartialDownload:
    """An unfinished download in the models folder (its ``.part`` files)."""

    model: RemoteModel
    done: int
    """Bytes downloaded so far."""


def chat_template_family(template: str | None) -> str | None:
    """Name the family of a Jinja chat template; "its own" for one NEXUS does not recognise."""
    if not template:
        return None
    for marker, key in _TEMPLATE_MARKERS:
        if marker in template:
            return TEMPLATE_LABELS.get(key, key)  # type: ignore[call-overload]
    return "its own"


def list_library(models_dir: Path | None, *, include_default: bool = True) -> list[LibraryModel]:
    """Every model on disk: the bundled one first, then the models folder, unusable ones too."""
    default = default_model_path()
    return [
        LibraryModel(entry.path, entry.info, entry.error, default is not None and entry.path == default)
        for entry in list_models(models_dir, include_default=include_default)
    ]


def library_model(path_or_name: str | Path, models_dir: Path | None) -> LibraryModel:
    """One model by path or by file name in the models folder; raises ``HubError`` when absent."""
    default = default_model_path()
    text = str(path_or_name).strip()
    try:
        if default is not None and text.lower() in (default.name.lower(), default.stem.lower()):
            path = default
        else:
            path = resolve_model(text, models_dir)
    except ModelFileError as error:
        raise HubError(
            f"{error}".replace("pick another file in Settings → Model", "see: nexus models list")
        ) from None
    try:
        return LibraryModel(path, inspect_model(path), None, path == default)
    except ModelFileError as error:
        return LibraryModel(path, None, str(error), path == default)


def partial_downloads(models_dir: Path) -> list[PartialDownload]:
    """Unfinished downloads, with how much of each is on disk."""
    if not Path(models_dir).is_dir():
        return []
    return [
        PartialDownload(model, bytes_on_disk(models_dir, model)) for model in pending_downloads(models_dir)
    ]


def model_parts(path: Path) -> list[Path]:
    """The files a model is made of: itself, or every part of a split model."""
    part = split_part(path.name)
    if part is None:
        return [path]
    return [
        path.with_name(f"{part.prefix}-{n:05d}-of-{part.count:05d}.gguf") for n in range(1, part.count + 1)
    ]


def delete_model(model: LibraryModel, models_dir: Path) -> list[Path]:
    """Delete a downloaded model's file(s) from the models folder; return what was removed.

    Refuses the bundled model and files outside the models folder (those are the user's own).
    """
    if model.bundled:
        raise HubError("The bundled model ships with NEXUS and cannot be deleted.")
    folder = Path(models_dir).resolve()
    if not model.path.resolve().is_relative_to(folder):
        raise HubError(
            f"{model.path} is not in the models folder ({folder}); delete it yourself if you wish."
        )
    removed = []
    for path in model_parts(model.path):
        if path.exists():
            path.unlink()
            removed.append(path)
        part_path(path).unlink(missing_ok=True)
    model.path.with_name(model.path.name + SIDECAR_SUFFIX).unlink(missing_ok=True)
    parent = model.path.parent
    if parent.resolve() != folder and not any(parent.iterdir()):
        parent.rmdir()  # the empty owner__repo folder
    return removed


def _text(metadata: Mapping[str, object], key: str) -> str | None:
    value = metadata.get(key)
    return value.strip() if isinstance(value, str) and value.strip() else None
