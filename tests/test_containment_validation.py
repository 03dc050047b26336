"""Validation runs a module's own code and tests before anyone approved it, so it grants nothing:
no network but a private loopback, no programs, no secrets, writes only to a scratch folder, and
nothing it starts outlives the check.  A module's tests are its own code: here they attack.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from nexus_desktop.db.store import Store
from nexus_desktop.modules.lifecycle import ModuleState
from nexus_desktop.modules.runtime.supervisor import credential_key
from nexus_desktop.modules.runtime.validate import module_data_dir
from nexus_desktop.secrets import SecretStore
from tests.conftest_keyring import secret_service_problem
from tests.hostile.containment import (
    MODES,
    SUBVERT,
    FileCanary,
    FileSnapshot,
    approve,
    clear_detection,
    constants,
    loopback_canary,
    processes_with,
    running_app,
    use_mode,
)
from tests.hostile.runtime_modules import tool_module

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="kernel containment is built for Linux")
SECRET = "sk-validation-secret-0123456789"
OTHER = "other-module"


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    use_mode(monkeypatch, request.param)
    yield str(request.param)
    clear_detection()


# The module's tests are the attack: each one passes only if its attack worked, so a validation
# report that says anything but "13 failed, 2 passed" names an escape.  The two that pass are the
# positive controls: its tests run, may write their scratch folder and (with namespaces) use a
# loopback of their own.
HOSTILE_TESTS = """
import os, socket, subprocess, sys, threading, time


def subvert():
{subvert}


subvert()  # the audit hook explains nothing from here on: what refuses is the kernel


def test_it_may_write_its_scratch_folder(tmp_path):
    (tmp_path / "scratch.txt").write_text("mine")
    assert (tmp_path / "scratch.txt").read_text() == "mine"


def test_it_may_use_a_loopback_of_its_own_and_nothing_else():
    try:
        server = socket.create_server(("127.0.0.1", 0))
    except OSError:
        assert MODE != "namespaces"  # without a network namespace of its own: no network at all
        return
    with server, socket.create_connection(server.getsockname(), timeout=2):
        pass
    assert MODE == "namespaces"


def test_write_the_canary():
    open(CANARY, "w").write("owned")


def test_plant_a_file_beside_the_canary():
    open(CANARY_DIR + "/planted.txt", "w").write("owned")


def test_read_another_modules_data():
    assert open(OTHER_DATA).read()


def test_read_the_apps_database():
    assert open(DATABASE, "rb").read(200)


def test_find_the_credential_in_the_environment():
    found = {{name: value for name, value in os.environ.items() if "sk-" in value or name == TOKEN_NAME}}
    for pid in ("1", str(os.getppid())):
        try:
            found[pid] = open(f"/proc/{{pid}}/environ").read()
        except OSError:
            pass
    assert any(TOKEN_NAME in str(value) or "sk-" in str(value) for value in found.values())


def test_read_the_keyring():
    import keyring
    assert keyring.get_password(KEYRING_SERVICE, KEYRING_NAME) is not None


def test_talk_to_the_session_bus():
    family_path = BUS.split("path=", 1)[-1].split(",")[0]
    with socket.socket(socket.AF_UNIX) as bus:
        bus.connect(family_path if "path=" in BUS else "\\0" + BUS.split("abstract=", 1)[-1].split(",")[0])


def test_connect_to_the_apps_listener():
    socket.create_connection(("127.0.0.1", TCP_PORT), timeout=2).close()


def test_send_a_datagram_to_the_app():
    socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"owned", ("127.0.0.1", UDP_PORT))


def test_start_a_program():
    subprocess.run(["/bin/sh", "-c", f"echo owned > {{CANARY}}", MARKER], check=True)


def test_spawn_a_program_without_subprocess():
    os.posix_spawn("/bin/sh", ["sh", "-c", f"sleep 1; echo owned > {{CANARY}}", MARKER], dict(os.environ))


def test_start_a_daemon_that_writes_the_canary_later():
    if os.fork() == 0:  # the child: leave the session, fork again, and let the parent go
        try:
            os.setsid()
        except OSError:
            pass
        if os.fork() == 0:
            time.sleep(1.5)
            open(CANARY, "w").write("owned by a daemon")
            os.execv("/bin/sh", ["sh", "-c", "sleep 600", MARKER])
        os._exit(0)


def test_leave_a_thread_that_writes_the_canary_later():
    def later():
        time.sleep(1.5)
        open(CANARY, "w").write("owned by a thread")

    threading.Thread(target=later).start()
    raise PermissionError("started; whether it wrote, the canary tells")
"""


def hostile_tests(**values: object) -> str:
    subvert = "\n".join("    " + line for line in SUBVERT.strip().splitlines())
    return constants(**values) + HOSTILE_TESTS.format(subvert=subvert)


@pytest.fixture
def keyring_secret(keyring_service_name: str) -> Iterator[tuple[str, str]]:
    """(service, name) of a secret in the real keyring when there is one, else in this process."""
    name = credential_key("test-attacker", "api_key")
    store = SecretStore(keyring_service_name, timeout=10)
    store.set(name, SECRET, session_only=secret_service_problem() is not None)
    yield keyring_service_name, name


def test_a_modules_hostile_tests_reach_nothing_and_leave_nothing_behind(
    mode: str,
    tmp_path: Path,
    store: Store,
    monkeypatch: pytest.MonkeyPatch,
    keyring_secret: tuple[str, str],
    private_data_dir: Path,
) -> None:
    canary = FileCanary.make(tmp_path)
    other_file = module_data_dir(OTHER) / "token.txt"
    other_file.parent.mkdir(parents=True)
    other_file.write_text(SECRET)
    other = FileSnapshot(other_file)
    monkeypatch.setenv("NEXUS_CANARY_TOKEN", SECRET)  # in the app's environment, never the module's
    marker = f"nexus-validation-daemon-{uuid.uuid4().hex}"
    bus = os.environ.get("DBUS_SESSION_BUS_ADDRESS", "unix:path=/run/user/0/bus")
    with loopback_canary() as listener:
        tests = hostile_tests(
            CANARY=str(canary.path),
            CANARY_DIR=str(canary.folder),
            OTHER_DATA=str(other_file),
            DATABASE=str(store.path),
            TOKEN_NAME="NEXUS_CANARY_TOKEN",
            KEYRING_SERVICE=keyring_secret[0],
            KEYRING_NAME=keyring_secret[1],
            BUS=bus,
            TCP_PORT=listener.tcp_port,
            UDP_PORT=listener.udp_port,
            MARKER=marker,
            MODE=mode,
        )
        source = tool_module("attacker", "return 'benign'")

        async def main() -> None:
            async with running_app(store, tmp_path) as app:
                report = await app.install("test-attacker", source, tests=tests, approved=False)
                await asyncio.sleep(3)  # the daemon and the thread would have written by now
                tests_check = report["checks"][-1]
                assert tests_check["name"] == "tests"
                summary = tests_check["message"]
                assert summary.startswith("Its tests failed: 13 failed, 2 passed"), (
                    f"ESCAPE: some attacks worked during validation: {tests_check}"
                )
                text = json.dumps(report) + str(app.host.lifecycle.get("test-attacker").last_report)
                assert SECRET not in text, text
                assert app.state("test-attacker") != ModuleState.ENABLED

        asyncio.run(main())
        listener.assert_untouched()
    canary.assert_intact()
    other.assert_intact()
    survivors = processes_with(marker) + processes_with(str(private_data_dir))
    assert survivors == [], f"ESCAPE: validation left processes behind: {survivors}"


# Declared is not granted: before approval only the declared reads (its tests may exercise them, and
# nothing could carry what they read away); writes, programs and the network only after ---------

DECLARING_TESTS = """
import os, socket, subprocess

import pytest


def subvert():
{subvert}


subvert()


def refused_by_the_kernel(action):
    with pytest.raises(OSError) as caught:
        action()
    assert type(caught.value).__name__ != "AccessRefused", caught.value


def test_it_cannot_write_its_declared_folder_yet():
    refused_by_the_kernel(lambda: open(DECLARED + "/during-validation.txt", "w"))


def test_it_may_read_its_declared_folder_for_its_tests():
    assert open(DECLARED + "/notes.txt").read() == "the user's notes"


def test_it_cannot_start_programs_yet():
    refused_by_the_kernel(lambda: subprocess.run(["/bin/true"], check=True))
    refused_by_the_kernel(lambda: os.fork())


def test_it_cannot_reach_its_declared_host_yet():
    refused_by_the_kernel(lambda: socket.create_connection(("127.0.0.1", TCP_PORT), timeout=2))
"""
DECLARING_TOOL = """
import subprocess
open(DECLARED + "/while-serving.txt", "w").write("written after approval")
notes = open(DECLARED + "/notes.txt").read()
ran = subprocess.run(["/bin/echo", "a program"], capture_output=True, text=True, check=True).stdout.strip()
return f"{notes}; {ran}"
"""


def test_declared_writes_programs_and_network_are_granted_only_after_approval(
    mode: str, tmp_path: Path, store: Store
) -> None:
    declared = tmp_path / "declared"
    declared.mkdir()
    (declared / "notes.txt").write_text("the user's notes")
    fields = {
        "permissions": {
            "filesystem": {"read": [str(declared)], "write": [str(declared)]},
            "subprocess": True,
        }
    }
    with loopback_canary() as listener:
        fields["permissions"]["network"] = [f"localhost:{listener.tcp_port}"]  # type: ignore[index]
        subvert = "\n".join("    " + line for line in SUBVERT.strip().splitlines())
        setup = constants(DECLARED=str(declared), TCP_PORT=listener.tcp_port)
        tests = setup + DECLARING_TESTS.format(subvert=subvert)
        source = tool_module("declaring", setup + DECLARING_TOOL)

        async def main() -> None:
            async with running_app(store, tmp_path) as app:
                report = await app.install("declaring", source, fields, tests=tests, approved=False)
                assert sorted(os.listdir(declared)) == ["notes.txt"], (
                    "ESCAPE: validation wrote a declared folder"
                )
                assert report["ok"], f"declared permissions were granted during validation: {report}"
                # Approved and serving: now it may do what it declared.
                await asyncio.get_running_loop().run_in_executor(None, approve, app.host, "declaring")
                await app.supervisor.start_module("declaring")
                result = await app.supervisor.call_tool("declaring.run", {})
                assert result.ok, result.error
                assert result.content == "the user's notes; a program"

        asyncio.run(main())
        listener.assert_untouched()
    assert (declared / "while-serving.txt").read_text() == "written after approval"
    assert not (declared / "during-validation.txt").exists()
