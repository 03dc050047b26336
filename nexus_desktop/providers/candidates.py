"""The sources the router may pick, read from the settings and the models folder.

Blocking (it reads every GGUF header, and the GPU's memory): call it off the event loop's thread.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from nexus_desktop.llm.catalog import default_model_path, list_models
from nexus_desktop.llm.vram_fit import fit_by_size
from nexus_desktop.providers.decision import Candidate, SourceKind
from nexus_desktop.settings import Settings

GpuTotal = Callable[[], int | None]
"""This PC's total VRAM in bytes (None when unknown): ``llm.vram_fit.gpu_memory``'s first value."""

MIB = 1024 * 1024


def read_gpu_total() -> int | None:
    from nexus_desktop.llm.vram_fit import gpu_memory

    try:
        return gpu_memory()[0]
    except Exception:  # a failing GPU probe leaves the verdict to system memory
        return None


def remote_configured(settings: Settings) -> bool:
    """A remote server counts as configured once a model is named (the URL has a default)."""
    return bool(settings.remote_model.strip() and settings.remote_base_url.strip())


def remote_name(settings: Settings) -> str:
    return f"remote: {settings.remote_model.strip()}"


def list_candidates(
    settings: Settings, gpu_total: GpuTotal = read_gpu_total, *, chat_only: bool = False
) -> list[Candidate]:
    """The remote server when configured, then every usable local model (the chat's chosen file
    too, wherever it lives) with its fit verdict, the bundled default last.

    ``chat_only`` (chat and routing, asked on every message): the remote server and the chat's
    own model, which is loaded already, without reading the models folder or the GPU."""
    found: list[Candidate] = []
    if remote_configured(settings):
        found.append(Candidate(remote_name(settings), "remote", is_chat=settings.source == "remote"))
    default = default_model_path()
    chat_path = _chat_model(settings, default)
    if chat_only:
        if chat_path is not None:
            is_default = default is not None and chat_path == default.resolve()
            kind: SourceKind = "default" if is_default else "local"
            found.append(Candidate(f"{kind}: {chat_path.name}", kind, chat_path, is_chat=True))
        return found
    vram = gpu_total() or 0
    reserve = settings.vram_reserve_mb * MIB
    entries = [e for e in list_models(settings.models_folder()) if e.info is not None]
    paths = {e.path.resolve() for e in entries}
    local: list[Candidate] = []
    for entry in entries:
        assert entry.info is not None
        size = entry.info.file_size
        is_default = default is not None and entry.path.resolve() == default.resolve()
        local.append(
            Candidate(
                f"{'default' if is_default else 'local'}: {entry.path.name}",
                "default" if is_default else "local",
                entry.path,
                size,
                fit_by_size(size, gpu_total_bytes=vram, reserve_bytes=reserve),
                is_chat=settings.source == "local"
                and chat_path is not None
                and entry.path.resolve() == chat_path,
            )
        )
    if (
        settings.source == "local"
        and chat_path is not None
        and chat_path not in paths
        and chat_path.is_file()
    ):
        size = chat_path.stat().st_size
        fit = fit_by_size(size, gpu_total_bytes=vram, reserve_bytes=reserve)
        local.append(Candidate(f"local: {chat_path.name}", "local", chat_path, size, fit, is_chat=True))
    found += [c for c in local if c.kind == "local"] + [c for c in local if c.kind == "default"]
    return found


def _chat_model(settings: Settings, default: Path | None) -> Path | None:
    """The local file the chat runs on; None when the chat runs on the remote server."""
    if settings.source == "remote":
        return None
    if settings.model_path.strip():
        return Path(settings.model_path).expanduser().resolve()
    return default.resolve() if default is not None else None


def settings_for(settings: Settings, candidate: Candidate) -> Settings:
    """The settings that make ``SourceManager`` start ``candidate`` (the rest stay the user's)."""
    if candidate.kind == "remote":
        return settings.model_copy(update={"source": "remote"})
    assert candidate.path is not None
    return settings.model_copy(update={"source": "local", "model_path": str(candidate.path)})
