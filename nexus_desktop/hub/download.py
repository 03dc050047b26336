"""One model download: resumable, checked against the hub's SHA-256, and honest about disk space.

Each file is fetched into ``NAME.part`` beside where it will end up
(``models/owner__repo/NAME``), with ``Range`` requests so a stopped download continues where it
stopped, also after a restart.  A small ``NAME.download.json`` beside it remembers what is being
downloaded (repo, commit, parts, sizes, SHA-256) until the model is complete.  A part is renamed
into place only after its SHA-256 matches the hub's; a mismatch deletes the ``.part``.

Blocking network and disk work: run it in a thread (``download_queue.DownloadQueue`` does).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
from huggingface_hub import hf_hub_url
from huggingface_hub.utils import build_hf_headers

from nexus_desktop.hub.errors import DownloadPaused, HubError
from nexus_desktop.hub.names import local_folder
from nexus_desktop.hub.search import RemoteFile, RemoteModel, hub_endpoint
from nexus_desktop.llm.gguf_reader import format_size

PART_SUFFIX = ".part"
SIDECAR_SUFFIX = ".download.json"
DISK_MARGIN = 256 * 1024 * 1024
"""Room left free after a download: a full disk breaks the OS and the app's own database."""
_CHUNK = 1024 * 1024
_PROGRESS_EVERY = 0.2  # seconds between progress reports


@dataclass(frozen=True)
class Progress:
    """How far a model's download is, over all its parts."""

    done: int
    """Bytes on disk so far (finished parts and the ``.part`` file)."""
    total: int
    bytes_per_second: float
    """Speed since this run started (0 until bytes arrive)."""
    eta_seconds: float | None
    """Seconds left at that speed; None while unknown."""
    file: str
    """The part being fetched."""
    verifying: bool = False
    """True while the finished file's SHA-256 is being checked."""

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0


ProgressCallback = Callable[[Progress], object]


def final_path(models_dir: Path, model: RemoteModel, file: RemoteFile | None = None) -> Path:
    """Where a model (or one of its parts) ends up: ``models_dir/owner__repo/NAME``."""
    name = (file or model.files[0]).path.rsplit("/", 1)[-1]
    return Path(models_dir) / local_folder(model.repo_id) / name


def part_path(final: Path) -> Path:
    return final.with_name(final.name + PART_SUFFIX)


def sidecar_path(models_dir: Path, model: RemoteModel) -> Path:
    """The JSON file that remembers an unfinished download of ``model``."""
    final = final_path(models_dir, model)
    return final.with_name(final.name + SIDECAR_SUFFIX)


def bytes_on_disk(models_dir: Path, model: RemoteModel) -> int:
    """How much of ``model`` is already downloaded (finished parts and ``.part`` files)."""
    done = 0
    for file in model.files:
        final = final_path(models_dir, model, file)
        part = part_path(final)
        if final.is_file():
            done += final.stat().st_size
        elif part.is_file():
            done += min(part.stat().st_size, file.size)
    return done


def write_sidecar(models_dir: Path, model: RemoteModel) -> Path:
    path = sidecar_path(models_dir, model)
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = asdict(model)
    fields["files"] = [asdict(file) for file in model.files]
    path.write_text(json.dumps(fields, indent=1), encoding="utf-8")
    return path


def read_sidecar(path: Path) -> RemoteModel:
    """The model an unfinished download was fetching; raises ``HubError`` for a damaged file."""
    try:
        fields = json.loads(path.read_text(encoding="utf-8"))
        files = tuple(RemoteFile(str(f["path"]), int(f["size"]), f.get("sha256")) for f in fields["files"])
        return RemoteModel(
            repo_id=str(fields["repo_id"]),
            revision=str(fields["revision"]),
            files=files,
            quantization=fields.get("quantization"),
            fit=str(fields.get("fit", "")),
        )
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise HubError(
            f"{path.name} is damaged ({type(error).__name__}); delete it and download again."
        ) from error


def pending_downloads(models_dir: Path) -> list[RemoteModel]:
    """Unfinished downloads in the models folder (paused, failed or cut off by a restart)."""
    models = []
    for sidecar in sorted(Path(models_dir).glob(f"*/*{SIDECAR_SUFFIX}")):
        try:
            models.append(read_sidecar(sidecar))
        except HubError:
            continue  # not ours to repair; the file stays for the user to look at
    return models


def discard_download(models_dir: Path, model: RemoteModel) -> None:
    """Delete an unfinished download's ``.part`` files and its record (cancel)."""
    for file in model.files:
        part_path(final_path(models_dir, model, file)).unlink(missing_ok=True)
    sidecar = sidecar_path(models_dir, model)
    sidecar.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # the owner__repo folder, when nothing else is in it
        sidecar.parent.rmdir()


def check_disk_space(models_dir: Path, model: RemoteModel) -> None:
    """Raise ``HubError`` unless the disk holds what is left to download plus a margin."""
    remaining = model.size - bytes_on_disk(models_dir, model)
    free = shutil.disk_usage(models_dir).free
    if free < remaining + DISK_MARGIN:
        raise HubError(
            f"Not enough disk space for {model.name}: it needs {format_size(remaining)} more and "
            f"only {format_size(free)} is free in {models_dir}; free some space or pick another "
            "models folder in Settings."
        )


def download_model(
    model: RemoteModel,
    models_dir: Path,
    *,
    on_progress: ProgressCallback | None = None,
    stop: threading.Event | None = None,
    client: httpx.Client | None = None,
) -> Path:
    """Download every part of ``model`` into the models folder; return the first part's path.

    Continues a ``.part`` left by an earlier run.  Raises ``DownloadPaused`` when ``stop`` is
    set, and ``HubError`` (one sentence, ``.part`` kept) when the network, the server or the disk
    fails, or (``.part`` deleted) when the SHA-256 does not match.
    """
    models_dir = Path(models_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    check_disk_space(models_dir, model)
    write_sidecar(models_dir, model)
    meter = _Meter(model, bytes_on_disk(models_dir, model), on_progress)
    own_client = client is None
    http = client or httpx.Client(follow_redirects=True, timeout=httpx.Timeout(30.0))
    try:
        for file in model.files:
            _fetch(models_dir, model, file, http, meter, stop or threading.Event())
    finally:
        if own_client:
            http.close()
    sidecar_path(models_dir, model).unlink(missing_ok=True)
    return final_path(models_dir, model)


def _fetch(
    models_dir: Path,
    model: RemoteModel,
    file: RemoteFile,
    http: httpx.Client,
    meter: _Meter,
    stop: threading.Event,
) -> None:
    final = final_path(models_dir, model, file)
    if final.is_file() and final.stat().st_size == file.size:
        return  # finished (and checked) by an earlier run
    part = part_path(final)
    name = final.name
    have = part.stat().st_size if part.is_file() else 0
    if have > file.size:  # not a prefix of this file: start over
        part.unlink()
        meter.add(-have)
        have = 0
    digest = _hash_existing(part, have)
    if have < file.size:
        url = hf_hub_url(model.repo_id, file.path, revision=model.revision, endpoint=hub_endpoint())
        digest = _stream(http, url, part, have, digest, file, meter, stop)
    size = part.stat().st_size
    if size != file.size:
        raise HubError(
            f"The download of {name} stopped at {format_size(size)} of {format_size(file.size)} "
            "(the connection ended early); run it again to resume."
        )
    if file.sha256:
        meter.report(name, verifying=True)
        if digest.hexdigest() != file.sha256.lower():
            part.unlink(missing_ok=True)
            meter.add(-size)
            if not bytes_on_disk(models_dir, model):
                discard_download(models_dir, model)  # nothing of it is left to resume
            raise HubError(
                f"{name} did not match the SHA-256 that Hugging Face lists, so it was deleted; "
                "download it again (if it fails again, the file on the hub is damaged)."
            )
    part.replace(final)


def _hash_existing(part: Path, length: int) -> hashlib._Hash:
    digest = hashlib.sha256()
    if length:
        with part.open("rb") as handle:
            while block := handle.read(_CHUNK):
                digest.update(block)
    return digest


def _stream(
    http: httpx.Client,
    url: str,
    part: Path,
    have: int,
    digest: hashlib._Hash,
    file: RemoteFile,
    meter: _Meter,
    stop: threading.Event,
) -> hashlib._Hash:
    name = part.name.removesuffix(PART_SUFFIX)
    headers = build_hf_headers()
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        with http.stream("GET", url, headers=headers) as response:
            if response.status_code >= 400:
                raise HubError(
                    f"The download of {name} stopped: Hugging Face answered {response.status_code}"
                    f"{' (a server error)' if response.status_code >= 500 else ''}; "
                    "try again later, it resumes where it stopped."
                )
            if have and not _continues_at(response, have):  # the server ignored Range: start over
                meter.add(-have)
                have, digest = 0, hashlib.sha256()
            with part.open("ab" if have else "wb") as out:
                for chunk in response.iter_bytes(_CHUNK):
                    if stop.is_set():
                        raise DownloadPaused(name)
                    out.write(chunk)
                    digest.update(chunk)
                    meter.add(len(chunk), name)
    except (DownloadPaused, HubError):
        raise
    except httpx.HTTPError as error:
        on_disk = part.stat().st_size if part.exists() else 0
        raise HubError(
            f"The download of {name} stopped at {format_size(on_disk)} of {format_size(file.size)} "
            f"(the connection failed: {type(error).__name__}); run it again to resume."
        ) from error
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            raise HubError(
                f"The download of {name} stopped: the disk is full ({error.strerror}); "
                "free some space and run it again to resume."
            ) from error
        raise HubError(
            f"The download of {name} stopped: {part.parent} cannot be written ({error.strerror}); "
            "check the models folder in Settings."
        ) from error
    return digest


def _continues_at(response: httpx.Response, offset: int) -> bool:
    """Whether a response to ``Range: bytes=OFFSET-`` really starts at ``offset``."""
    content_range = response.headers.get("Content-Range", "")
    return response.status_code == 206 and content_range.startswith(f"bytes {offset}-")


class _Meter:
    """Counts bytes for the whole model and reports progress a few times a second."""

    def __init__(self, model: RemoteModel, done: int, on_progress: ProgressCallback | None) -> None:
        self.total = model.size
        self.done = done
        self._start_done = done
        self._started = time.monotonic()
        self._last_report = 0.0
        self._on_progress = on_progress

    def add(self, count: int, file: str = "") -> None:
        self.done += count
        if count < 0:
            self._start_done += count
        now = time.monotonic()
        if file and now - self._last_report >= _PROGRESS_EVERY:
            self._last_report = now
            self.report(file)

    def report(self, file: str, *, verifying: bool = False) -> None:
        if self._on_progress is None:
            return
        elapsed = time.monotonic() - self._started
        speed = (self.done - self._start_done) / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done) / speed if speed > 0 else None
        self._on_progress(Progress(self.done, self.total, speed, eta, file, verifying))
