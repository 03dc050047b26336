"""Search the hub for GGUF repos and list a repo's models: quantisation, size, SHA-256, fit.

Everything goes through ``huggingface_hub.HfApi``, which reads the hub's address from
``HF_ENDPOINT``.  Calls block on the network: run them off the UI thread.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from huggingface_hub import HfApi, constants
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.hf_api import RepoSibling

from nexus_desktop.hub.errors import HubError
from nexus_desktop.hub.names import RepoReference, parse_reference, quantization_from_name, split_part
from nexus_desktop.llm.catalog import is_model_file_name
from nexus_desktop.llm.gguf_reader import format_size


@dataclass(frozen=True)
class RepoHit:
    """One search result: a repo that holds GGUF files."""

    repo_id: str
    downloads: int
    likes: int
    last_modified: datetime | None


@dataclass(frozen=True)
class RemoteFile:
    """One file in a repo, as the hub lists it."""

    path: str
    """Relative to the repo root, e.g. ``Q4_K_M/model-00001-of-00002.gguf``."""
    size: int
    sha256: str | None
    """The LFS SHA-256 the download is checked against; None for a file not stored in LFS."""


@dataclass(frozen=True)
class RemoteModel:
    """One downloadable model: a single GGUF file, or all parts of a split one."""

    repo_id: str
    revision: str
    """The commit the listing came from, so every part comes from the same version."""
    files: tuple[RemoteFile, ...]
    """The parts in order; one file for a model that is not split."""
    quantization: str | None
    fit: str
    """How it would run on this PC, by size: "fits on GPU", "CPU only", "too large for this PC"..."""

    @property
    def name(self) -> str:
        """The file name the library shows (the first part's for a split model)."""
        return self.files[0].path.rsplit("/", 1)[-1]

    @property
    def size(self) -> int:
        return sum(file.size for file in self.files)

    @property
    def key(self) -> str:
        """Stable identity of this download: ``owner/name/file``."""
        return f"{self.repo_id}/{self.files[0].path}"

    def describe(self) -> str:
        """One line: ``Foo-Q4_K_M.gguf · Q4_K_M · 4.9 GB · fits on GPU``."""
        parts = f" ({len(self.files)} parts)" if len(self.files) > 1 else ""
        quant = self.quantization or "?"
        return f"{self.name}{parts} · {quant} · {format_size(self.size)} · {self.fit}"


@dataclass(frozen=True)
class RepoModels:
    """A repo's GGUF models, and the one a pasted file address pointed at."""

    repo_id: str
    revision: str
    models: tuple[RemoteModel, ...]
    wanted: RemoteModel | None
    """The model a pasted ``resolve`` URL named; None when a whole repo was given."""


def hub_endpoint() -> str:
    """The hub's address: ``HF_ENDPOINT`` as it is now (``huggingface_hub`` reads it once, at import)."""
    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def hub_api() -> HfApi:
    """The hub client for ``hub_endpoint()``."""
    return HfApi(endpoint=hub_endpoint())


def search_repos(text: str, *, limit: int = 30, api: HfApi | None = None) -> list[RepoHit]:
    """Repos with GGUF files whose name matches ``text``, most downloaded first.

    Raises ``HubError`` when the hub cannot be reached.
    """
    query = text.strip()
    if not query:
        raise HubError("Type part of a model's name to search for, for example: llama 3.2 1b")
    with _hub_errors(query):
        found = (api or hub_api()).list_models(search=query, filter="gguf", sort="downloads", limit=limit)
        return [
            RepoHit(
                repo_id=model.id,
                downloads=int(model.downloads or 0),
                likes=int(model.likes or 0),
                last_modified=model.last_modified,
            )
            for model in found
        ]


def repo_models(
    reference: str | RepoReference, *, api: HfApi | None = None, reserve_mb: int | None = None
) -> RepoModels:
    """The GGUF models in a repo given as ``owner/name``, a repo URL or one file's URL.

    Split files (``-00001-of-00003``) become one model.  Each model's ``fit`` keeps
    ``reserve_mb`` of VRAM free for games (the ``vram_reserve_mb`` setting; None: the default).
    Raises ``HubError`` when the repo does not exist, holds no GGUF model, or the hub cannot be
    reached.  Also probes this PC's GPU (once per call).
    """
    ref = parse_reference(reference) if isinstance(reference, str) else reference
    with _hub_errors(ref.repo_id):
        info = (api or hub_api()).model_info(ref.repo_id, revision=ref.revision, files_metadata=True)
    files = [_remote_file(sibling) for sibling in info.siblings or []]
    revision = info.sha or ref.revision or "main"
    models = tuple(_group_models(ref.repo_id, revision, files, _fit_verdict(reserve_mb)))
    if not models:
        raise HubError(
            f"{ref.repo_id} has no GGUF model files; search for its GGUF version "
            "(a repo whose name usually ends in -GGUF)."
        )
    wanted = None
    if ref.filename is not None:
        wanted = next((m for m in models if ref.filename in (f.path for f in m.files)), None)
        if wanted is None:
            raise HubError(
                f"{ref.repo_id} has no GGUF model named {ref.filename}; "
                f"pick one of: {', '.join(m.name for m in models[:6])}"
            )
    return RepoModels(ref.repo_id, revision, models, wanted)


def _remote_file(sibling: RepoSibling) -> RemoteFile:
    lfs = sibling.lfs
    size = sibling.size if sibling.size is not None else (lfs.size if lfs else 0)
    return RemoteFile(path=sibling.rfilename, size=int(size or 0), sha256=lfs.sha256 if lfs else None)


def _fit_verdict(reserve_mb: int | None) -> Callable[[int], str]:
    """``vram_fit.fit_by_size`` with this PC's VRAM read once for a whole listing."""
    from nexus_desktop.llm.vram_fit import DEFAULT_RESERVE_BYTES, fit_by_size, gpu_memory

    try:
        gpu_total = gpu_memory()[0] or 0
    except Exception:  # a failing GPU probe leaves the verdict to system memory
        gpu_total = 0
    reserve = reserve_mb * 1024 * 1024 if reserve_mb is not None else DEFAULT_RESERVE_BYTES
    return lambda size: fit_by_size(size, gpu_total_bytes=gpu_total, reserve_bytes=reserve)


def _group_models(
    repo_id: str, revision: str, files: Iterable[RemoteFile], fit: Callable[[int], str]
) -> list[RemoteModel]:
    singles: list[list[RemoteFile]] = []
    splits: dict[tuple[str, str, int], list[RemoteFile]] = {}
    for file in files:
        folder, _, base = file.path.rpartition("/")
        if not is_model_file_name(base):
            continue
        part = split_part(base)
        if part is None:
            singles.append([file])
        else:
            splits.setdefault((folder, part.prefix, part.count), []).append(file)
    groups = singles + [
        sorted(parts, key=lambda f: f.path)
        for (_, _, count), parts in splits.items()
        if len(parts) == count  # a split model missing a part on the hub cannot be loaded
    ]
    models = [
        RemoteModel(
            repo_id=repo_id,
            revision=revision,
            files=tuple(group),
            quantization=quantization_from_name(group[0].path),
            fit=fit(sum(f.size for f in group)),
        )
        for group in groups
    ]
    return sorted(models, key=lambda m: (m.size, m.name))


@contextmanager
def _hub_errors(name: str) -> Iterator[None]:
    """Turn the hub client's exceptions into one ``HubError`` sentence."""
    try:
        yield
    except HubError:
        raise
    except Exception as error:
        raise _as_hub_error(name, error) from error


def _as_hub_error(name: str, error: Exception) -> HubError:
    if isinstance(error, OfflineModeIsEnabled):
        return HubError(
            "Hugging Face is switched off here (HF_HUB_OFFLINE is set); unset it to search or download."
        )
    if isinstance(error, GatedRepoError):
        return HubError(
            f"{name} is gated: accept its licence on huggingface.co and log in with `hf auth login`."
        )
    if isinstance(error, RevisionNotFoundError):
        return HubError(f"{name} has no such branch or commit; paste the repo's address without it.")
    if isinstance(error, RepositoryNotFoundError):
        return HubError(f"There is no model repo named {name} on Hugging Face; check the name.")
    if isinstance(error, HfHubHTTPError):
        status = error.response.status_code if error.response is not None else "an error"
        return HubError(f"Hugging Face answered {status} for {name}; try again in a while.")
    return HubError(f"Cannot reach Hugging Face ({type(error).__name__}); check the internet connection.")
