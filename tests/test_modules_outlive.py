"""A module never outlives the app: when the app is killed (SIGKILL, a crash) while a module is
stuck in a call, the module's process and the programs it started end within seconds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from tests.hostile.runtime_modules import install_modules, tool_module

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX process groups")
REPO = Path(__file__).resolve().parent.parent

# The app side, in a process of its own so the test can SIGKILL it: start the module, report its
# pid, then call its tool, which never returns.
APP = textwrap.dedent(
    """
    import asyncio, json, sys, uuid
    from pathlib import Path
    from nexus_desktop.db.store import Store
    from nexus_desktop.secrets import SecretStore
    from tests.hostile.runtime_modules import approve_all, developer_host, make_supervisor

    root = Path(sys.argv[1])
    host = developer_host(Store(root / "nexus.db"), root, {})  # the test installed the module
    approve_all(host)

    async def main():
        secrets = SecretStore(f"nexus-test-{uuid.uuid4().hex[:8]}", timeout=5)
        supervisor = make_supervisor(host, secrets, call_timeout=3600)
        await supervisor.start()
        print(json.dumps({"pid": supervisor.status()["stuck"].pid}), flush=True)
        await supervisor.call_tool("stuck.run", {})

    asyncio.run(main())
    """
)
STUCK_TOOL = """
import subprocess, time
helper = subprocess.Popen(["sleep", "MARKER"])
open("helper.pid", "w").write(str(helper.pid))
time.sleep(3600)
"""


def _gone(pid: int) -> bool:
    """Not running: no such process, or a zombie waiting for whoever adopted it to reap it."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    except OSError:  # no /proc (macOS): ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False
    return any(line.startswith("State:") and "Z" in line.split()[1] for line in status.splitlines())


def _wait_for(condition: Callable[[], object], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_a_module_stuck_in_a_call_ends_with_its_programs_when_the_app_is_killed(
    tmp_path: Path,
) -> None:
    fields = {"permissions": {"subprocess": True}}
    # Inside its sandbox the module sees its own PID namespace, so the helper is found here by
    # a command line no other process has, not by the pid the module wrote.
    marker = f"3600.{os.getpid()}{time.monotonic_ns() % 10**6}"
    source = tool_module("stuck", STUCK_TOOL.replace("MARKER", marker))
    install_modules(tmp_path / "dev", {"stuck": (source, fields)})
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    app = subprocess.Popen(
        [sys.executable, "-c", APP, str(tmp_path)], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert app.stdout is not None
        module_pid = int(json.loads(app.stdout.readline())["pid"])
        helper_file = Path(os.environ["NEXUS_DATA_DIR"]) / "module-data" / "stuck" / "helper.pid"
        assert _wait_for(lambda: helper_file.exists() and helper_file.read_text(), 30), (
            "the module's tool never started its helper program"
        )
        [helper] = [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", marker]]
        helper_pid = helper.pid
        assert not _gone(module_pid) and not _gone(helper_pid)

        app.send_signal(signal.SIGKILL)
        app.wait(10)

        assert _wait_for(lambda: _gone(module_pid), 10), "the module process outlived the app"
        assert _wait_for(lambda: _gone(helper_pid), 10), "a program the module started outlived the app"
    finally:
        app.kill()
        app.wait(10)
