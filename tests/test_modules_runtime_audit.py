"""The audit policy decides from the approved manifest alone: what a module may read, change,
connect to and start.  (The hook itself is exercised for real in test_modules_hostile.py.)"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from nexus_desktop.modules.runtime.audit import AccessPolicy


@pytest.fixture
def folders(tmp_path: Path) -> dict[str, Path]:
    names = ("code", "data", "shared", "elsewhere")
    found = {name: (tmp_path / name) for name in names}
    for path in found.values():
        path.mkdir()
    return {name: path.resolve() for name, path in found.items()}


def policy(folders: dict[str, Path], **fields: object) -> AccessPolicy:
    settings: dict[str, object] = {
        "module": "dice",
        "read_roots": (str(folders["code"]), str(folders["shared"])),
        "write_roots": (str(folders["data"]),),
        **fields,
    }
    return AccessPolicy(**settings)  # type: ignore[arg-type]


def test_reads_are_allowed_in_its_folders_and_refused_elsewhere(folders: dict[str, Path]) -> None:
    rules = policy(folders)
    assert rules.refusal("open", (str(folders["code"] / "main.py"), "r", 0)) is None
    assert rules.refusal("open", (str(folders["data"] / "notes.txt"), "r", 0)) is None
    refusal = rules.refusal("open", (str(folders["elsewhere"] / "diary.txt"), "r", 0))
    assert refusal == (
        f"dice may not read {folders['elsewhere'] / 'diary.txt'}, outside its folder; "
        "its manifest must list it under permissions.filesystem.read"
    )


def test_writes_are_allowed_only_in_its_data_folder(folders: dict[str, Path]) -> None:
    rules = policy(folders)
    assert rules.refusal("open", (str(folders["data"] / "cache.json"), "w", 0)) is None
    assert "may not change" in str(rules.refusal("open", (str(folders["code"] / "main.py"), "a", 0)))
    flags = os.O_WRONLY | os.O_CREAT
    assert "may not change" in str(rules.refusal("open", (str(folders["shared"] / "x"), None, flags)))
    assert "may not change" in str(rules.refusal("os.remove", (str(folders["code"] / "main.py"), -1)))
    assert "may not change" in str(
        rules.refusal("os.rename", (str(folders["data"] / "a"), str(folders["elsewhere"] / "a"), -1, -1))
    )


def test_a_link_inside_its_folder_cannot_lead_out(folders: dict[str, Path]) -> None:
    (folders["elsewhere"] / "diary.txt").write_text("private")
    link = folders["data"] / "innocent.txt"
    link.symlink_to(folders["elsewhere"] / "diary.txt")
    assert "may not read" in str(policy(folders).refusal("open", (str(link), "r", 0)))


def test_relative_dot_dot_paths_are_resolved_before_checking(
    folders: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(folders["data"])
    assert "may not read" in str(policy(folders).refusal("open", ("../elsewhere/diary.txt", "r", 0)))


def test_local_sockets_are_always_refused_even_with_network_access(folders: dict[str, Path]) -> None:
    rules = policy(folders, network=("*",))
    sock = socket.socket(socket.AF_UNIX)
    try:
        refusal = rules.refusal("socket.connect", (sock, "/run/user/1000/bus"))
    finally:
        sock.close()
    assert refusal == "dice may not use local sockets such as D-Bus or the keyring"


@pytest.mark.parametrize(
    ("allowed", "host", "port", "ok"),
    [
        (("api.example.com",), "api.example.com", 443, True),
        (("api.example.com",), "evil.example.com", 443, False),
        (("*.example.com",), "api.example.com", 443, True),
        (("*.example.com",), "example.com.evil.org", 443, False),
        (("api.example.com:8443",), "api.example.com", 443, False),
        (("api.example.com:8443",), "api.example.com", 8443, True),
        (("*",), "anything.org", 80, True),
        ((), "localhost", 80, False),
    ],
)
def test_host_names_are_matched_against_the_network_permission(
    folders: dict[str, Path], allowed: tuple[str, ...], host: str, port: int, ok: bool
) -> None:
    refusal = policy(folders, network=allowed)._check_host(host, port)
    assert (refusal is None) == ok, refusal


def test_starting_programs_and_native_code_need_their_permissions(folders: dict[str, Path]) -> None:
    strict = policy(folders)
    assert "permissions.subprocess" in str(strict.refusal("subprocess.Popen", ("ls", ["ls"], None, None)))
    assert "permissions.subprocess" in str(strict.refusal("os.system", (b"ls",)))
    assert "permissions.native_code" in str(strict.refusal("ctypes.dlopen", (None,)))
    trusted = policy(folders, subprocess=True, native_code=True)
    assert trusted.refusal("subprocess.Popen", ("ls", ["ls"], None, None)) is None
    assert trusted.refusal("ctypes.dlopen", (None,)) is None


def test_signals_may_only_go_to_its_own_process(folders: dict[str, Path]) -> None:
    rules = policy(folders)
    assert rules.refusal("os.kill", (os.getpid(), 15)) is None
    assert rules.refusal("os.kill", (os.getppid(), 9)) == "dice may not signal other processes"
    assert rules.refusal("os.killpg", (os.getpgid(0), 9)) == "dice may not signal other processes"


def test_with_the_subprocess_permission_it_may_signal_programs_in_its_own_session(
    folders: dict[str, Path],
) -> None:
    process = subprocess.Popen(["sleep", "30"])  # same session as this test
    try:
        assert policy(folders, subprocess=True).refusal("os.kill", (process.pid, 15)) is None
        assert policy(folders).refusal("os.kill", (process.pid, 15)) is not None
    finally:
        process.kill()
        process.wait()
