"""Downloading a model: complete and checked, resumable after a dropped connection, a server
error, a full disk, a pause or a restart; a wrong hash or too little disk space loses nothing."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import threading
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

from nexus_desktop.hub.download import download_model, part_path
from nexus_desktop.hub.download_queue import DownloadJob, DownloadQueue
from nexus_desktop.hub.errors import DownloadPaused, HubError
from nexus_desktop.hub.library import delete_model, library_model, list_library, partial_downloads
from nexus_desktop.hub.search import RemoteModel, repo_models
from nexus_desktop.llm.catalog import list_models
from tests.hub_server import FakeHub, running_hub, tiny_gguf, tiny_split_gguf

MIB = 1024 * 1024
REPO = "tester/Tiny-GGUF"
NAME = "Tiny-Q8_0.gguf"


@cache
def tiny() -> bytes:
    return tiny_gguf(name="Tiny Downloaded", licence="apache-2.0", n_layers=6, payload_bytes=3 * MIB)


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    with running_hub() as served:
        monkeypatch.setenv("HF_ENDPOINT", served.url)
        served.add_repo(REPO, {NAME: tiny(), "README.md": b"# Tiny"})
        yield served


@pytest.fixture
def models(tmp_path: Path) -> Path:
    folder = tmp_path / "models"
    folder.mkdir()
    return folder


def tiny_model() -> RemoteModel:
    return repo_models(REPO).models[0]


def test_a_download_lands_in_the_models_folder_checked_and_listed(
    hub: FakeHub, models: Path, smollm2_path: Path
) -> None:
    real = smollm2_path.read_bytes()
    hub.add_repo("HuggingFaceTB/SmolLM2-135M-Instruct-GGUF", {smollm2_path.name: real})
    model = repo_models("HuggingFaceTB/SmolLM2-135M-Instruct-GGUF").models[0]
    seen: list[int] = []

    path = download_model(model, models, on_progress=lambda p: seen.append(p.done))

    assert path == models / "HuggingFaceTB__SmolLM2-135M-Instruct-GGUF" / smollm2_path.name
    assert hashlib.sha256(path.read_bytes()).hexdigest() == hashlib.sha256(real).hexdigest()
    assert seen and seen[-1] == len(real)
    assert [p.name for p in path.parent.iterdir()] == [smollm2_path.name]  # no .part, no record left
    assert [entry.path for entry in list_models(models, include_default=False)] == [path]
    listed = library_model(path, models)
    assert (listed.source_repo, listed.parameters, listed.licence) == (model.repo_id, "135M", "apache-2.0")
    assert listed.info is not None and listed.info.n_layers == 30 and listed.chat_template == "ChatML"


def test_a_split_model_downloads_every_part_and_lists_as_one_model(hub: FakeHub, models: Path) -> None:
    parts = tiny_split_gguf("Tiny-F16")
    hub.add_repo("tester/Split-GGUF", {f"F16/{name}": data for name, data in parts.items()})
    [model] = repo_models("tester/Split-GGUF").models
    hub.drop_after = 100 * 1024  # the first part is cut off once: the resume continues it

    with pytest.raises(HubError):
        download_model(model, models)
    path = download_model(model, models)

    folder = models / "tester__Split-GGUF"
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == parts
    [entry] = list_library(models, include_default=False)
    assert entry.path == path and entry.info is not None and entry.info.split_count == 2
    assert entry.size == sum(map(len, parts.values()))
    assert delete_model(entry, models) == sorted(folder / name for name in parts)
    assert not folder.exists()


def test_a_dropped_connection_keeps_the_part_and_resume_finishes_with_identical_bytes(
    hub: FakeHub, models: Path, tmp_path: Path
) -> None:
    hub.drop_after = int(1.5 * MIB)
    with pytest.raises(HubError, match=r"connection failed.*run it again to resume"):
        download_model(tiny_model(), models)
    part = part_path(models / "tester__Tiny-GGUF" / NAME)
    assert 0 < part.stat().st_size < len(tiny())
    assert partial_downloads(models)[0].done == part.stat().st_size
    assert list_models(models, include_default=False) == []  # a half file is no model

    kept = part.stat().st_size

    path = download_model(tiny_model(), models)

    assert hub.ranges == ["", f"bytes={kept}-"]  # only the missing bytes were asked for
    assert path.read_bytes() == tiny()
    control = download_model(tiny_model(), tmp_path / "control")  # uninterrupted, same file
    assert control.read_bytes() == path.read_bytes()
    assert hub.ranges[-1] == ""


def test_a_server_error_says_so_and_the_download_resumes_later(hub: FakeHub, models: Path) -> None:
    hub.fail_status = 500
    with pytest.raises(HubError, match=r"answered 500 \(a server error\); try again later"):
        download_model(tiny_model(), models)
    hub.fail_status = None
    assert download_model(tiny_model(), models).read_bytes() == tiny()


def test_a_hash_mismatch_deletes_the_part_and_adds_no_model(hub: FakeHub, models: Path) -> None:
    hub.lie_sha.add(NAME)
    with pytest.raises(HubError, match=r"did not match the SHA-256 .* so it was deleted"):
        download_model(tiny_model(), models)
    assert list(models.iterdir()) == []  # no part, no record of an unfinished download
    assert list_models(models, include_default=False) == []
    hub.lie_sha.clear()  # positive control: the true hash passes
    assert download_model(tiny_model(), models).read_bytes() == tiny()


def test_too_little_disk_space_refuses_before_writing_a_byte(hub: FakeHub, models: Path) -> None:
    hub.claimed_size[NAME] = 10**18  # an exabyte: no disk has that much free
    with pytest.raises(HubError, match=r"Not enough disk space for Tiny-Q8_0\.gguf"):
        download_model(tiny_model(), models)
    assert list(models.iterdir()) == []
    assert not any("/resolve/" in request for request in hub.requests)


FULL_DISK_SCRIPT = """
import resource, signal, sys
from pathlib import Path
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # then a write past the limit fails with EFBIG
from nexus_desktop.hub.download import download_model
from nexus_desktop.hub.errors import HubError
from nexus_desktop.hub.search import repo_models
model = repo_models(sys.argv[1]).models[0]
limit = int(sys.argv[3])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
try:
    download_model(model, Path(sys.argv[2]))
except HubError as error:
    print(error)
    sys.exit(3)
"""


def test_a_full_disk_mid_download_keeps_the_part_and_resumes_after(hub: FakeHub, models: Path) -> None:
    limit = int(1.5 * MIB)
    result = subprocess.run(
        [sys.executable, "-c", FULL_DISK_SCRIPT, REPO, str(models), str(limit)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 3, result.stderr
    assert "the disk is full" in result.stdout and "run it again to resume" in result.stdout
    part = part_path(models / "tester__Tiny-GGUF" / NAME)
    assert part.stat().st_size == limit

    assert download_model(tiny_model(), models).read_bytes() == tiny()
    assert hub.ranges[-1] == f"bytes={limit}-"


def test_pause_then_resume_after_a_restart(hub: FakeHub, models: Path) -> None:
    hub.throttle = 0.05  # about 5 MB/s, so the pause lands mid-way
    queue = DownloadQueue(models)
    model = tiny_model()

    def pause_after_a_mib(job: DownloadJob) -> None:
        if job.status == "downloading" and job.progress.done >= MIB:
            queue.pause(job.key)

    queue.changes.subscribe(pause_after_a_mib)
    queue.start(model)
    paused = queue.wait(model.key, timeout=30)
    assert paused is not None and paused.status == "paused"
    part = part_path(models / "tester__Tiny-GGUF" / NAME)
    kept = part.stat().st_size
    assert MIB <= kept < len(tiny()) and paused.progress.done == kept
    queue.close()

    hub.throttle = None
    restarted = DownloadQueue(models)  # a new app start finds the paused download
    [found] = restarted.jobs()
    assert (found.key, found.status, found.progress.done) == (model.key, "paused", kept)
    restarted.resume(found.key)
    done = restarted.wait(found.key, timeout=30)

    assert done is not None and done.status == "done" and done.path is not None
    assert done.path.read_bytes() == tiny() and not part.exists()
    assert hub.ranges[-1] == f"bytes={kept}-"
    assert DownloadQueue(models).jobs() == []  # nothing left unfinished


def test_a_failed_download_reports_its_reason_on_the_job(hub: FakeHub, models: Path) -> None:
    hub.fail_status = 503
    queue = DownloadQueue(models)
    queue.start(tiny_model())
    job = queue.wait(tiny_model().key, timeout=30)
    assert job is not None and job.status == "failed" and job.error is not None and "503" in job.error


def test_cancel_deletes_what_was_fetched(hub: FakeHub, models: Path) -> None:
    hub.throttle = 0.05
    queue = DownloadQueue(models)
    model = tiny_model()
    started = threading.Event()
    queue.changes.subscribe(lambda job: started.set() if job.progress.done else None)
    queue.start(model)
    assert started.wait(30)
    queue.cancel(model.key)
    job = queue.wait(model.key, timeout=30)
    assert job is not None and job.status == "cancelled"
    assert list(models.iterdir()) == []
    assert DownloadQueue(models).jobs() == []


def test_a_stop_request_raises_paused_and_keeps_the_part(hub: FakeHub, models: Path) -> None:
    stop = threading.Event()
    hub.throttle = 0.02

    with pytest.raises(DownloadPaused):  # the first progress report asks it to stop
        download_model(tiny_model(), models, on_progress=lambda _: stop.set(), stop=stop)
    assert part_path(models / "tester__Tiny-GGUF" / NAME).stat().st_size > 0


def test_deleting_a_downloaded_model_removes_its_file_but_never_the_bundled_one(
    hub: FakeHub, models: Path
) -> None:
    path = download_model(tiny_model(), models)
    [bundled, downloaded] = list_library(models)
    assert downloaded.path == path and bundled.bundled
    with pytest.raises(HubError, match="cannot be deleted"):
        delete_model(bundled, models)
    assert bundled.path.exists()
    assert delete_model(downloaded, models) == [path]
    assert not path.exists() and not path.parent.exists()
    assert [model.path for model in list_library(models)] == [bundled.path]
