"""The model worker is contained: llama.cpp parses files from the internet, so a crafted GGUF that
took over the worker must find nothing of the user's to read, nowhere to write and no network.

The real worker process is asked to open files through its own protocol: a valid model the
profile names loads (the positive control), the same bytes copied into the user's home do not.
Code that stands in for an exploit then runs under the worker's exact profile.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from nexus_desktop.children.launch import launch
from nexus_desktop.llm.local import LocalLlamaSource
from nexus_desktop.llm.worker_process import worker_profile
from nexus_desktop.sandbox.support import detect

pytestmark = pytest.mark.skipif(detect().landlock_abi < 1, reason="this kernel has no Landlock")


def load_event(source: LocalLlamaSource, path: Path) -> dict[str, object]:
    """What the running worker answers when asked to load ``path``."""

    async def ask() -> dict[str, object]:
        worker = source._worker
        assert worker is not None
        worker.send(cmd="load", path=str(path), n_ctx=256, n_threads=1, n_gpu_layers=0, lora=None)
        event = await asyncio.wait_for(worker.control.get(), timeout=60)
        assert isinstance(event, dict)
        return event

    async def main() -> dict[str, object]:
        await source.start()
        try:
            return await ask()
        finally:
            await source.aclose()

    return asyncio.run(main())


def test_the_running_worker_loads_its_own_model_but_not_a_file_in_the_users_home(
    smollm2_path: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    stolen = home / "private-copy.gguf"
    shutil.copyfile(smollm2_path, stolen)  # the same valid bytes, in a place the profile does not name

    allowed = load_event(LocalLlamaSource(smollm2_path, context_size=256, threads=1), smollm2_path)
    assert allowed["event"] == "loaded", allowed

    refused = load_event(LocalLlamaSource(smollm2_path, context_size=256, threads=1), stolen)
    assert refused["event"] == "error" and refused["kind"] == "load", refused


ESCAPE = r"""
import os, socket, sys
canary, model, listener_port = sys.argv[1], sys.argv[2], int(sys.argv[3])
results = {}
def attempt(name, action):
    try:
        action()
        results[name] = "done"
    except OSError as error:
        results[name] = type(error).__name__
attempt("read model", lambda: open(model, "rb").read(16))
attempt("read canary", lambda: open(canary).read())
attempt("write beside canary", lambda: open(canary + ".stolen", "w").write("x"))
attempt("write home", lambda: open(os.path.expanduser("~/../exfil.txt"), "w").write("x"))
attempt("connect", lambda: socket.create_connection(("127.0.0.1", listener_port), timeout=2))
attempt("unix socket", lambda: socket.socket(socket.AF_UNIX))
print(results)
"""


def test_code_running_as_the_worker_reads_the_model_and_nothing_of_the_users(
    smollm2_path: Path, tmp_path: Path
) -> None:
    canary = tmp_path / "home" / "diary.txt"
    canary.parent.mkdir()
    canary.write_text("the user's diary")
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(0.5)
        port = listener.getsockname()[1]
        process = launch(
            [sys.executable, "-I", "-c", ESCAPE, str(canary), str(smollm2_path), str(port)],
            worker_profile(sys.executable, smollm2_path, None),
            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path / "home")},
            stdin=subprocess.DEVNULL,
        )
        output, errors = process.communicate(timeout=60)
        with pytest.raises(TimeoutError):
            listener.accept()  # nobody connected
    results = eval(output.decode())
    assert results["read model"] == "done", (results, errors)
    assert results["read canary"] == "PermissionError"
    assert results["write beside canary"] != "done" and not (tmp_path / "home" / "diary.txt.stolen").exists()
    assert results["write home"] != "done" and not (tmp_path / "exfil.txt").exists()
    assert results["connect"] != "done"
    assert results["unix socket"] == "PermissionError"
    assert canary.read_text() == "the user's diary"


READ_EACH = r"""
import sys
for path in sys.argv[1:]:
    try:
        open(path, "rb").read(4)
        print(path, "read")
    except OSError as error:
        print(path, type(error).__name__)
"""


def test_the_worker_reads_every_part_of_a_split_model_and_not_the_model_beside_it(tmp_path: Path) -> None:
    parts = [tmp_path / f"big-model-{index:05d}-of-00003.gguf" for index in (1, 2, 3)]
    other = tmp_path / "another-model.gguf"
    for path in [*parts, other]:
        path.write_bytes(b"GGUF")
    process = launch(
        [sys.executable, "-I", "-c", READ_EACH, *map(str, [*parts, other])],
        worker_profile(sys.executable, parts[0], None),  # llama.cpp is given the first part
        env={"PATH": "/usr/bin:/bin"},
        stdin=subprocess.DEVNULL,
    )
    output, errors = process.communicate(timeout=60)
    lines = dict(line.rsplit(" ", 1) for line in output.decode().splitlines())
    assert [lines[str(path)] for path in parts] == ["read", "read", "read"], errors
    assert lines[str(other)] == "PermissionError"
