"""``nexus models``: the model library and Hugging Face, from the command line.

    nexus models list                    the bundled model and the models folder
    nexus models search TEXT             GGUF repos on Hugging Face; a repo or its URL lists its files
    nexus models download REPO [FILE]    download a model (FILE: a file name or a quantisation such as
                                         Q4_K_M); Ctrl+C pauses, the same command again resumes
    nexus models info MODEL              a model file's metadata (a path, or a name in the models folder)
    nexus models fit MODEL [--ctx N] [--kv q8_0] [--reserve-mb M] [--vram-mb TOTAL]
                                         the VRAM bar as text and the GPU layers Auto would pick

``cli.py`` hooks these in with ``add_subcommands(subparsers)`` and dispatches with ``run(args)``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from nexus_desktop.llm.gguf_reader import format_size

if TYPE_CHECKING:
    from nexus_desktop.hub.download import Progress
    from nexus_desktop.hub.search import RemoteModel, RepoModels
    from nexus_desktop.settings import Settings

COMMANDS = ("models",)


def add_subcommands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    models = subparsers.add_parser("models", help="models on disk, and finding and downloading more")
    actions = models.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", help="list GGUF models: the bundled one and the models folder")
    search = actions.add_parser("search", help="search Hugging Face for GGUF models, or list a repo's files")
    search.add_argument("text", nargs="+", help="words of a model's name, or a repo (owner/name) or its URL")
    search.add_argument("--limit", type=int, default=20, help="most repos to list (default 20)")
    download = actions.add_parser("download", help="download a model; run it again to resume")
    download.add_argument("repo", help="owner/name, the repo's URL, or a file's URL")
    download.add_argument("file", nargs="?", help="the file name, or its quantisation such as Q4_K_M")
    info = actions.add_parser(
        "info", help="a model's metadata: parameters, quantisation, context, licence..."
    )
    info.add_argument("model", help="a .gguf path, or a file name in the models folder")
    fit = actions.add_parser("fit", help="the VRAM bar: what fits on the GPU, and the layers Auto picks")
    fit.add_argument("model", help="a .gguf path, or a file name in the models folder")
    fit.add_argument("--ctx", type=int, metavar="N", help="context in tokens (default: the settings')")
    fit.add_argument("--kv", choices=("f16", "q8_0", "q4_0"), help="KV cache type (default: the settings')")
    fit.add_argument("--reserve-mb", type=int, metavar="M", help="VRAM kept for games (default: settings)")
    fit.add_argument("--vram-mb", type=int, metavar="TOTAL", help="plan for a card of this much VRAM")
    # Further `nexus models ...` commands: add their subparser here and their branch in run().


def run(args: argparse.Namespace) -> int:
    if args.action == "list":
        return _list()
    if args.action == "search":
        return _search(" ".join(args.text), args.limit)
    if args.action == "download":
        return _download(args.repo, args.file)
    if args.action == "info":
        return _info(args.model)
    if args.action == "fit":
        return _fit(args)
    return 2


def _settings() -> Settings:
    from nexus_desktop import paths
    from nexus_desktop.db.store import Store

    store = Store(paths.database_path())
    try:
        return store.load_settings()
    finally:
        store.close()


def _models_folder() -> Path:
    return _settings().models_folder()


def _list() -> int:
    from nexus_desktop.hub.library import list_library, partial_downloads
    from nexus_desktop.llm.catalog import default_model_path

    settings = _settings()
    folder = settings.models_folder()
    configured = settings.model_path or str(default_model_path() or "")
    models = list_library(folder)
    print(f"Models folder: {folder}")
    for model in models:
        mark = "*" if str(model.path) == configured else " "
        origin = "bundled" if model.bundled else (model.source_repo or "")
        quant = model.info.quantization if model.info else "unusable"
        print(f"{mark} {model.name:<48} {format_size(model.size):>9}  {quant:<8} {origin}")
    for partial in partial_downloads(folder):
        done = f"{format_size(partial.done)} of {format_size(partial.model.size)}"
        print(f"  {partial.model.name:<48} {done}  unfinished: nexus models download {partial.model.key}")
    if not models:
        print("No GGUF models found. Find one with: nexus models search NAME")
    return 0


def _search(text: str, limit: int) -> int:
    from nexus_desktop.hub.names import parse_reference
    from nexus_desktop.hub.search import repo_models, search_repos

    if "/" in text and " " not in text.strip():
        _print_files(repo_models(parse_reference(text), reserve_mb=_settings().vram_reserve_mb))
        return 0
    hits = search_repos(text, limit=limit)
    if not hits:
        print(f"No GGUF models on Hugging Face match {text!r}; try fewer or other words.")
        return 0
    for hit in hits:
        print(f"{hit.repo_id:<64} {hit.downloads:>10,} downloads")
    print("See a repo's files with: nexus models search OWNER/NAME")
    return 0


def _print_files(listing: RepoModels) -> None:
    print(f"{listing.repo_id} ({listing.revision[:8]}):")
    for model in listing.models:
        parts = f" ({len(model.files)} parts)" if len(model.files) > 1 else ""
        quant = model.quantization or "?"
        print(f"  {model.name + parts:<60} {quant:<8} {format_size(model.size):>9}  {model.fit}")
    print(f"Download one with: nexus models download {listing.repo_id} FILE")


def _pick(listing: RepoModels, wanted: str | None) -> RemoteModel:
    from nexus_desktop.cli import CliError

    if listing.wanted is not None:
        return listing.wanted
    if wanted is None:
        if len(listing.models) == 1:
            return listing.models[0]
        _print_files(listing)
        raise CliError(f"{listing.repo_id} has {len(listing.models)} models; name one as FILE (see above).")
    needle = wanted.strip().lower()
    by_name = [m for m in listing.models if needle in (m.name.lower(), m.files[0].path.lower())]
    by_quant = [m for m in listing.models if (m.quantization or "").lower() == needle]
    found = by_name or by_quant
    if len(found) == 1:
        return found[0]
    names = ", ".join(m.name for m in (found or listing.models)[:6])
    if found:
        raise CliError(f"{wanted} matches {len(found)} models in {listing.repo_id}; name one of: {names}")
    raise CliError(f"{listing.repo_id} has no model {wanted}; pick one of: {names}")


def _download(repo: str, wanted: str | None) -> int:
    from nexus_desktop.cli import CliError
    from nexus_desktop.hub.download_queue import DownloadQueue
    from nexus_desktop.hub.search import repo_models

    model = _pick(repo_models(repo, reserve_mb=_settings().vram_reserve_mb), wanted)
    folder = _models_folder()
    folder.mkdir(parents=True, exist_ok=True)
    queue = DownloadQueue(folder)
    resumed = queue.job(model.key)
    if resumed is not None and resumed.progress.done:
        print(f"Resuming {model.name} at {format_size(resumed.progress.done)}.", flush=True)
    line = _ProgressLine()
    queue.changes.subscribe(lambda job: line.show(job.progress) if job.status == "downloading" else None)
    queue.start(model)
    try:
        job = None
        while job is None or job.status == "downloading":
            job = queue.wait(model.key, timeout=0.5)
    except KeyboardInterrupt:
        queue.pause(model.key)
        job = queue.wait(model.key, timeout=30)
        line.end()
        done = format_size(job.progress.done) if job else "?"
        print(f"Paused at {done} of {format_size(model.size)}; run the same command again to resume.")
        return 130
    line.end()
    if job.status != "done" or job.path is None:
        raise CliError(job.error or f"The download of {model.name} stopped ({job.status}).")
    print(f"Downloaded {model.name} to {job.path}")
    return 0


class _ProgressLine:
    """One live line on stderr: percent, bytes, speed and time left, redrawn in place."""

    def __init__(self) -> None:
        self.drawn = False

    def show(self, progress: Progress) -> None:
        if not (progress.bytes_per_second or progress.verifying):
            return  # the job's first snapshot, before a byte arrived: a failure then stays one line
        speed = f"{format_size(int(progress.bytes_per_second))}/s" if progress.bytes_per_second else "…"
        left = f", {_duration(progress.eta_seconds)} left" if progress.eta_seconds is not None else ""
        doing = "checking SHA-256" if progress.verifying else f"{speed}{left}"
        amount = f"{format_size(progress.done)} of {format_size(progress.total)}"
        text = f"{progress.fraction:4.0%}  {amount}  {doing}"
        sys.stderr.write(f"\r{text:<72}")
        sys.stderr.flush()
        self.drawn = True

    def end(self) -> None:
        """Close the line, so what follows starts on its own."""
        if self.drawn:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _duration(seconds: float) -> str:
    whole = int(seconds)
    return (
        f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"
        if whole >= 3600
        else f"{whole // 60}:{whole % 60:02d}"
    )


def _info(model: str) -> int:
    from nexus_desktop.cli import CliError
    from nexus_desktop.hub.library import library_model

    found = library_model(model, _models_folder())
    if found.error is not None:
        raise CliError(found.error)
    for label, value in found.details():
        print(f"{label + ':':<16} {value}")
    return 0


def _fit(args: argparse.Namespace) -> int:
    from nexus_desktop.cli import CliError
    from nexus_desktop.hub.library import library_model
    from nexus_desktop.llm.hardware import llama_build_info
    from nexus_desktop.llm.vram_fit import MIB, format_fit_text, gpu_memory, plan_fit

    settings = _settings()
    found = library_model(args.model, _models_folder())
    if found.info is None:
        raise CliError(found.error or f"{found.name} cannot be read.")
    for name, value in (("--ctx", args.ctx), ("--reserve-mb", args.reserve_mb), ("--vram-mb", args.vram_mb)):
        if value is not None and value < (1 if name == "--ctx" else 0):
            raise CliError(f"{name} must be a positive number, not {value}.")
    context = args.ctx or settings.context_size
    if found.info.context_length and context > found.info.context_length:
        print(f"{found.name} was trained for {found.info.context_length:,} tokens; planning for that.")
        context = found.info.context_length
    if args.vram_mb is not None:  # "what if": a card this PC may not have, with a GPU build
        total, free, gpu_build = args.vram_mb * MIB, None, True
    else:
        (total, free), gpu_build = gpu_memory(), llama_build_info().supports_gpu_offload
    reserve = (settings.vram_reserve_mb if args.reserve_mb is None else args.reserve_mb) * MIB
    plan = plan_fit(
        found.info, context, args.kv or settings.kv_cache_type, total, free, reserve, gpu_build=gpu_build
    )
    print(format_fit_text(plan))
    print(f"Auto: {plan.auto_layers} of {plan.n_layers} layers on the GPU")
    return 0
