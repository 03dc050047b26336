"""Nothing a module starts outlives it: daemons that double-fork and try to leave their session
end within a second of the module being stopped or quarantined, or of the app being killed.

The daemons are found from the outside, by a marker in their command line, since inside a PID
namespace a module only knows its own numbering of them.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from nexus_desktop.db.store import Store
from nexus_desktop.modules.lifecycle import ModuleState
from nexus_desktop.modules.runtime.validate import module_data_dir
from tests.hostile.containment import (
    MODES,
    NAMESPACES,
    async_wait_until,
    clear_detection,
    constants,
    gone,
    install,
    processes_with,
    running_app,
    use_mode,
    user_host,
    wait_until,
)
from tests.hostile.runtime_modules import tool_module

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="kernel containment is built for Linux")
REPO = Path(__file__).resolve().parent.parent
GONE_WITHIN_SECONDS = 1.0
SUBPROCESS: dict[str, Any] = {"permissions": {"subprocess": True}}


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    use_mode(monkeypatch, request.param)
    yield str(request.param)
    clear_detection()


@pytest.fixture
def default_mode(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Whatever this machine gives (namespaces where allowed), as the app runs by default."""
    monkeypatch.delenv("NEXUS_NO_NAMESPACES", raising=False)
    clear_detection()
    yield NAMESPACES
    clear_detection()


@pytest.fixture
def namespaces(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Namespaces, or a skip where the system forbids them."""
    use_mode(monkeypatch, NAMESPACES)
    yield NAMESPACES
    clear_detection()


# A Python daemon: fork, try to leave the session, fork again, write its pid and sleep; and a shell
# one: ``(sleep &)``, whose sleep has the marker as its (unique) number of seconds.
DAEMON = """
import os, sys, time
if os.fork() == 0:
    try:
        os.setsid()
    except OSError:
        pass
    if os.fork() == 0:
        open(sys.argv[2], "w").write(str(os.getpid()))
        time.sleep(600)
    os._exit(0)
"""
SPAWN = """
import os, subprocess, sys, time
pid_file = os.path.abspath("daemon.pid")
if os.path.exists(pid_file):
    os.remove(pid_file)
subprocess.run([sys.executable, "-c", DAEMON, MARKER, pid_file], check=True)
subprocess.run(["/bin/sh", "-c", "(sleep " + SLEEP + " &) ; exit 0"], check=True)
for _ in range(250):
    if os.path.exists(pid_file) and open(pid_file).read():
        break
    time.sleep(0.02)
"""


@pytest.fixture
def markers() -> Iterator[tuple[str, str]]:
    """(Python daemon marker, shell daemon's sleep seconds); whatever is left is killed after."""
    found = (f"nexus-daemon-{uuid.uuid4().hex}", f"600.{uuid.uuid4().int % 10**12:012d}")
    yield found
    for marker in found:
        for process in processes_with(marker):
            process.kill()


def spawner(markers: tuple[str, str], *, then: str = "return open(pid_file).read()") -> str:
    setup = constants(DAEMON=DAEMON, MARKER=markers[0], SLEEP=markers[1])
    return tool_module("tree", setup + SPAWN + then)


def daemons(markers: tuple[str, str]) -> list[psutil.Process]:
    return [process for marker in markers for process in processes_with(marker)]


def both_running(markers: tuple[str, str]) -> list[psutil.Process]:
    found = [processes_with(marker) for marker in markers]
    return [process for group in found for process in group] if all(found) else []


def all_gone(processes: list[psutil.Process]) -> bool:
    return all(gone(process.pid) for process in processes)


def test_daemons_a_module_started_end_when_it_is_stopped(
    mode: str, tmp_path: Path, store: Store, markers: tuple[str, str]
) -> None:
    async def main() -> None:
        async with running_app(store, tmp_path) as app:
            await app.install("tree", spawner(markers), SUBPROCESS)
            result = await app.supervisor.call_tool("tree.run", {})
            assert result.ok and result.content.isdigit(), result
            # The positive control: it may start programs, and they run after its call.
            assert await async_wait_until(lambda: both_running(markers), 5), "the daemons never started"
            started = both_running(markers)
            if mode != NAMESPACES:  # outside a PID namespace the pid it wrote is the real one
                assert int(result.content) in {process.pid for process in started}

            await app.supervisor.stop_module("tree")
            assert await async_wait_until(lambda: all_gone(started), GONE_WITHIN_SECONDS), (
                f"ESCAPE: daemons outlived the stopped module: {daemons(markers)}"
            )

    asyncio.run(main())


def test_daemons_of_a_module_that_sees_all_processes_end_when_it_is_stopped(
    namespaces: str, tmp_path: Path, store: Store, markers: tuple[str, str]
) -> None:
    fields = {"permissions": {"subprocess": True, "filesystem": {"read": ["/proc"]}}}

    async def main() -> None:
        async with running_app(store, tmp_path) as app:
            await app.install("tree", spawner(markers), fields)
            assert (await app.supervisor.call_tool("tree.run", {})).ok
            assert await async_wait_until(lambda: both_running(markers), 5), "the daemons never started"
            started = both_running(markers)
            await app.supervisor.stop_module("tree")
            assert await async_wait_until(lambda: all_gone(started), GONE_WITHIN_SECONDS), (
                f"ESCAPE: daemons outlived the stopped module: {daemons(markers)}"
            )

    asyncio.run(main())


def test_daemons_a_module_started_end_when_it_is_quarantined(
    default_mode: str, tmp_path: Path, store: Store, markers: tuple[str, str]
) -> None:
    source = spawner(markers, then="raise RuntimeError('the dice fell off the table')")

    async def main() -> None:
        async with running_app(store, tmp_path) as app:
            await app.install("tree", source, SUBPROCESS)
            results = [await app.supervisor.call_tool("tree.run", {}) for _ in range(3)]
            assert not any(result.ok for result in results)
            assert app.state("tree") == ModuleState.QUARANTINED
            assert "quarantined" in str(results[-1].error)
            # Each call started daemons; the quarantine ended them all.
            assert await async_wait_until(lambda: not daemons(markers), GONE_WITHIN_SECONDS), (
                f"ESCAPE: daemons outlived the quarantined module: {daemons(markers)}"
            )

    asyncio.run(main())


# The app killed ------------------------------------------------------------------------------------

APP = textwrap.dedent(
    """
    import asyncio, json, sys, time
    from pathlib import Path
    from nexus_desktop.db.store import Store
    from tests.hostile.containment import user_host
    from tests.hostile.runtime_modules import make_supervisor, module_secrets

    root = Path(sys.argv[1])
    host = user_host(Store(root / "nexus.db"), root)  # the test installed and approved the module

    async def main():
        supervisor = make_supervisor(host, module_secrets("tree", "unused"))
        await supervisor.start()
        result = await supervisor.call_tool("tree.run", {})
        pid = supervisor.status()["tree"].pid
        print(json.dumps({"ok": result.ok, "error": result.error, "pid": pid}), flush=True)
        await asyncio.sleep(3600)

    asyncio.run(main())
    """
)


def test_daemons_a_module_started_end_when_the_app_is_killed(
    mode: str, tmp_path: Path, store: Store, markers: tuple[str, str]
) -> None:
    host = user_host(store, tmp_path)

    async def prepare() -> None:
        await install(host, tmp_path, "tree", spawner(markers), SUBPROCESS)

    asyncio.run(prepare())
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    app = subprocess.Popen(
        [sys.executable, "-c", APP, str(tmp_path)], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert app.stdout is not None
        started = json.loads(app.stdout.readline())
        assert started["ok"], started
        module = psutil.Process(started["pid"])
        assert wait_until(lambda: both_running(markers), 5), "the daemons never started"
        processes = [module, *both_running(markers), *module.children(recursive=True)]
        assert (module_data_dir("tree") / "daemon.pid").exists()

        app.send_signal(signal.SIGKILL)
        app.wait(10)

        assert wait_until(lambda: all_gone(processes), GONE_WITHIN_SECONDS), (
            "ESCAPE: the module or its daemons outlived the app: "
            f"{[process for process in processes if not gone(process.pid)]}"
        )
    finally:
        app.kill()
        app.wait(10)
