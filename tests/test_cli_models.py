"""``nexus models``: search, download with a live progress line (Ctrl+C pauses, running it again
resumes), list and info, against a fake hub on loopback; failures are one line and exit 1."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

from tests.hub_server import FakeHub, running_hub, tiny_gguf

MIB = 1024 * 1024
REPO = "tester/Tiny-GGUF"
NAME = "Tiny-Q8_0.gguf"


@cache
def tiny() -> bytes:
    return tiny_gguf(name="Tiny Downloaded", licence="apache-2.0", n_layers=6, payload_bytes=3 * MIB)


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    with running_hub() as served:
        served.add_repo(REPO, {NAME: tiny(), "README.md": b"# Tiny"}, downloads=70)
        served.add_repo("tester/Two-GGUF", {"two-Q4_0.gguf": tiny(), "two-Q8_0.gguf": tiny()})
        served.add_repo("tester/Weights-only", {"model.safetensors": b"weights"})
        yield served


def environment(hub: FakeHub, data_dir: Path) -> dict[str, str]:
    env = {**os.environ, "NEXUS_DATA_DIR": str(data_dir), "HF_ENDPOINT": hub.url}
    env.pop("NEXUS_DEBUG", None)
    env.pop("HF_HUB_OFFLINE", None)
    return env


def nexus(hub: FakeHub, data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nexus_desktop.cli", "models", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment(hub, data_dir),
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_search_lists_repos_and_a_repo_lists_its_files(hub: FakeHub, private_data_dir: Path) -> None:
    found = nexus(hub, private_data_dir, "search", "gguf")
    assert found.returncode == 0, found.stderr
    repos = [line.split()[0] for line in found.stdout.splitlines() if line.startswith("tester/")]
    assert repos == ["tester/Tiny-GGUF", "tester/Two-GGUF"]

    files = nexus(hub, private_data_dir, "search", f"https://huggingface.co/{REPO}")
    assert files.returncode == 0, files.stderr
    [row] = [line for line in files.stdout.splitlines() if NAME in line]
    assert "Q8_0" in row and "3 MB" in row


def test_download_shows_progress_and_the_model_appears_in_list_and_info(
    hub: FakeHub, private_data_dir: Path
) -> None:
    result = nexus(hub, private_data_dir, "download", REPO)
    assert result.returncode == 0, result.stderr
    target = private_data_dir / "models" / "tester__Tiny-GGUF" / NAME
    assert result.stdout.strip() == f"Downloaded {NAME} to {target}"
    assert "/s" in result.stderr and "of 3 MB" in result.stderr  # the live line: bytes and speed
    assert target.read_bytes() == tiny()

    listed = nexus(hub, private_data_dir, "list")
    [row] = [line for line in listed.stdout.splitlines() if NAME in line]
    assert "Q8_0" in row and REPO in row

    info = nexus(hub, private_data_dir, "info", NAME)
    assert info.returncode == 0, info.stderr
    rows = dict(line.split(":", 1) for line in info.stdout.splitlines())
    assert rows["Licence"].strip() == "apache-2.0"
    assert rows["Layers"].strip() == "6" and rows["Quantisation"].strip() == "Q8_0"
    assert rows["Source"].strip() == REPO and rows["Chat template"].strip() == "ChatML"


def test_ctrl_c_pauses_and_running_it_again_resumes(hub: FakeHub, private_data_dir: Path) -> None:
    hub.throttle = 0.2  # about 1.3 MB/s: the download is still running when Ctrl+C comes
    part = private_data_dir / "models" / "tester__Tiny-GGUF" / f"{NAME}.part"
    running = subprocess.Popen(
        [sys.executable, "-m", "nexus_desktop.cli", "models", "download", REPO, "Q8_0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment(hub, private_data_dir),
    )
    deadline = time.monotonic() + 60
    while not (part.exists() and part.stat().st_size > 0) and time.monotonic() < deadline:
        time.sleep(0.05)
    running.send_signal(signal.SIGINT)
    out, err = running.communicate(timeout=60)
    assert running.returncode == 130, err
    assert "Paused at" in out and "run the same command again to resume" in out
    kept = part.stat().st_size
    assert 0 < kept < len(tiny())

    hub.throttle = None
    again = nexus(hub, private_data_dir, "download", REPO, "Q8_0")
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith(f"Resuming {NAME} at")
    assert (part.parent / NAME).read_bytes() == tiny() and not part.exists()
    assert hub.ranges[-1] == f"bytes={kept}-"


def test_a_repo_without_gguf_files_is_one_line(hub: FakeHub, private_data_dir: Path) -> None:
    assert_one_line_error(
        nexus(hub, private_data_dir, "download", "tester/Weights-only"), "has no GGUF model files"
    )


def test_a_repo_with_several_models_asks_which_one(hub: FakeHub, private_data_dir: Path) -> None:
    result = nexus(hub, private_data_dir, "download", "tester/Two-GGUF")
    assert_one_line_error(result, "has 2 models; name one as FILE")
    assert "two-Q4_0.gguf" in result.stdout and "two-Q8_0.gguf" in result.stdout
    assert not (private_data_dir / "models" / "tester__Two-GGUF").exists()


def test_a_server_error_is_one_line_and_nothing_is_added(hub: FakeHub, private_data_dir: Path) -> None:
    hub.fail_status = 500
    assert_one_line_error(nexus(hub, private_data_dir, "download", REPO), "answered 500", "resumes")
    assert not (private_data_dir / "models" / "tester__Tiny-GGUF" / NAME).exists()


def test_info_on_a_missing_model_is_one_line(hub: FakeHub, private_data_dir: Path) -> None:
    assert_one_line_error(
        nexus(hub, private_data_dir, "info", "nothing.gguf"), "not found", "nexus models list"
    )
