"""Hostile modules against the kernel's containment: an installed, validated and approved module
tries to escape, and the canaries it aims at (a file outside its folders, the app's database,
another module's data, loopback listeners, the app's own process) are untouched afterwards.

The audit hook inside a module's process only explains refusals; these tests subvert it or go
where it cannot see (C code, ``ctypes`` system calls, paths that change between check and use),
so that what holds is the kernel: Landlock, seccomp and, where allowed, namespaces.  Each test
also shows the module doing what it may (a positive control), so no test passes because the
module could do nothing at all.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nexus_desktop.db.store import Store
from nexus_desktop.modules.runtime.validate import module_data_dir
from tests.hostile.containment import (
    LANDLOCK_SECCOMP,
    MODES,
    NAMESPACES,
    SUBVERT,
    FileCanary,
    FileSnapshot,
    attempts_module,
    clear_detection,
    constants,
    local_http_server,
    loopback_canary,
    require_landlock,
    running_app,
    use_mode,
)

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="kernel containment is built for Linux")
OTHER = "other-module"
OTHER_SECRET = "sk-other-module-secret-0123456789"


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Each test with this fixture runs with namespaces and with Landlock and seccomp only."""
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
def other_secret() -> Path:
    """Another module's data file holding its secret."""
    folder = module_data_dir(OTHER)
    folder.mkdir(parents=True)
    path = folder / "token.txt"
    path.write_text(OTHER_SECRET)
    return path


def code(*lines: str) -> str:
    """The lines of one attempt's body."""
    return "\n".join(lines)


def assert_not_quoted(outcomes: dict[str, str], *secrets: str) -> None:
    text = repr(outcomes)
    for secret in secrets:
        assert secret not in text, f"ESCAPE: {secret!r} came back to the module"


def database_tables(path: Path) -> list[str]:
    with sqlite3.connect(path) as connection:
        return sorted(row[0] for row in connection.execute("select name from sqlite_master"))


# 1. The explanation layer patched from inside -----------------------------------------------------


def policy_attempts() -> dict[str, str]:
    return {
        "before: the hook explains a read of the canary": "return open(CANARY).read()",
        "allowed: subvert the audit hook's policy": SUBVERT + "return 'subverted'",
        "allowed: the hook no longer explains (reads /etc/passwd, which the kernel allows)": (
            "passwd = '/etc/' + 'passwd'\nreturn len(open(passwd).read()) > 0"
        ),
        "allowed: write and read its own data folder": (
            "open('own.txt', 'w').write('mine')\nreturn open('own.txt').read()"
        ),
        "allowed: read its own code": "return open(__file__).read(20)",
        "read the canary": "return open(CANARY).read()",
        "overwrite the canary": "return open(CANARY, 'w').write('owned')",
        "append to the canary with os.open": (
            "import os\nfd = os.open(CANARY, os.O_WRONLY | os.O_APPEND)\nreturn os.write(fd, b'owned')"
        ),
        "truncate the canary by path": "import os\nreturn os.truncate(CANARY, 0)",
        "rename the canary into its data folder": "import os\nreturn os.rename(CANARY, 'stolen.txt')",
        "delete the canary": "import os\nreturn os.unlink(CANARY)",
        "hard-link the canary into its data folder": (
            "import os\nos.link(CANARY, 'hard.txt')\nreturn open('hard.txt').read()"
        ),
        "symlink to the canary from its data folder": (
            "import os\nos.symlink(CANARY, 'soft.txt')\nreturn open('soft.txt').read()"
        ),
        "read the canary through /proc/self/root": "return open('/proc/self/root' + CANARY).read()",
        "create a file beside the canary": "return open(CANARY_DIR + '/planted.txt', 'w').write('x')",
        "make a folder beside the canary": "import os\nreturn os.mkdir(CANARY_DIR + '/planted')",
        "list the canary's folder": "import os\nreturn os.listdir(CANARY_DIR)",
        "read the app's database": "return open(DATABASE, 'rb').read(200)",
        "write the app's database": "return open(DATABASE, 'r+b').write(b'owned')",
        "read another module's data": "return open(OTHER_DATA).read()",
        "append to another module's data": "return open(OTHER_DATA, 'a').write('owned')",
    }


def test_a_module_that_patches_its_audit_policy_is_still_held_by_the_kernel(
    mode: str, tmp_path: Path, store: Store, other_secret: Path
) -> None:
    canary = FileCanary.make(tmp_path)
    other = FileSnapshot(other_secret)
    tables = database_tables(store.path)
    setup = constants(
        CANARY=str(canary.path),
        CANARY_DIR=str(canary.folder),
        DATABASE=str(store.path),
        OTHER_DATA=str(other_secret),
        APP_PID=os.getpid(),
    )

    async def main() -> None:
        async with running_app(store, tmp_path) as app:
            await app.install("policy-patcher", attempts_module("patcher", policy_attempts(), setup=setup))
            outcomes = await app.attempts("patcher.run")
            results = outcomes.results
            assert results["before: the hook explains a read of the canary"].startswith(
                "refused AccessRefused"
            ), results
            outcomes.done("allowed: subvert the audit hook's policy")
            assert outcomes.done(
                "allowed: the hook no longer explains (reads /etc/passwd, which the kernel allows)"
            )
            assert outcomes.done("allowed: write and read its own data folder") == "mine"
            assert outcomes.done("allowed: read its own code").startswith("\nfrom nexus_desktop")
            escapes = [name for name in results if not name.startswith(("allowed", "before"))]
            outcomes.all_refused(escapes, by_kernel=True)
            assert_not_quoted(results, canary.content, OTHER_SECRET, "SQLite format 3")
            # The module's process still works after all that: it answers again.
            assert (await app.supervisor.call_tool("patcher.run", {})).ok

    asyncio.run(main())
    canary.assert_intact()
    other.assert_intact()
    assert database_tables(store.path) == tables
    assert (module_data_dir("policy-patcher") / "own.txt").read_text() == "mine"


# File metadata: chmod, utime, extended attributes ---------------------------------------------------

METADATA_ATTEMPTS = {
    # Through a file it opened for writing: without namespaces, seccomp refuses these calls by
    # path everywhere, its own folder included (docs/security.md).
    "allowed: change the times of its own file": code(
        "import os",
        "fd = os.open('own.txt', os.O_WRONLY | os.O_CREAT)",
        "os.utime(fd, (1, 1))",
        "os.close(fd)",
        "return os.stat('own.txt').st_mtime",
    ),
    "chmod the canary": "import os\nreturn os.chmod(CANARY, 0o777)",
    "set the canary's times": "import os\nreturn os.utime(CANARY, (1, 1))",
    "set an extended attribute on the canary": "import os\nreturn os.setxattr(CANARY, 'user.owned', b'1')",
    "chown the canary (to its own owner)": code(
        "import os", "st = os.stat(CANARY)", "return os.chown(CANARY, st.st_uid, st.st_gid)"
    ),
    "chmod the app's database": "import os\nreturn os.chmod(DATABASE, 0)",
}


@pytest.mark.parametrize("metadata_mode", [NAMESPACES, LANDLOCK_SECCOMP])
def test_a_module_cannot_change_the_permissions_or_times_of_files_outside_its_folder(
    metadata_mode: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, store: Store
) -> None:
    use_mode(monkeypatch, metadata_mode)
    canary = FileCanary.make(tmp_path)
    mode_before = store.path.stat().st_mode
    setup = SUBVERT + constants(CANARY=str(canary.path), DATABASE=str(store.path))

    async def main() -> None:
        async with running_app(store, tmp_path) as app:
            await app.install("toucher", attempts_module("toucher", METADATA_ATTEMPTS, setup=setup))
            outcomes = await app.attempts("toucher.run")
            assert outcomes.done("allowed: change the times of its own file") == "1.0"
            outcomes.all_refused(by_kernel=True)

    try:
        asyncio.run(main())
        canary.assert_intact()
        assert store.path.stat().st_mode == mode_before
    finally:
        os.chmod(store.path, mode_before)
        clear_detection()  # the next test probes its own environment


# Other processes through /proc ------------------------------------------------------------------

PROC_ATTEMPTS = {
    "allowed: read its own environment": "return 'HOME=' in open('/proc/' + 'self/environ').read()",
    "the app's environment": "return open(f'/proc/{APP_PID}/environ').read()",
    "another program's environment": "return open(f'/proc/{VICTIM_PID}/environ').read()",
    "the app's open files": "import os\nreturn os.listdir(f'/proc/{APP_PID}/fd')",
    "the app's database through its descriptors": (
        "import os\nfor fd in range(64):\n"
        "    try:\n        return open(f'/proc/{APP_PID}/fd/{fd}', 'rb').read(16)\n"
        "    except FileNotFoundError:\n        continue\nraise PermissionError('none readable')"
    ),
    "the canary through the app's root": "return open(f'/proc/{APP_PID}/root' + CANARY).read()",
    "the app's working folder": "import os\nreturn os.listdir(f'/proc/{APP_PID}/cwd')",
    "the app's memory map": "return open(f'/proc/{APP_PID}/maps').read(200)",
}


def test_a_module_cannot_read_other_processes_environments_or_files_through_proc(
    mode: str, tmp_path: Path, store: Store
) -> None:
    canary = FileCanary.make(tmp_path)
    secret = "sk-environment-secret-0123456789"
    victim = subprocess.Popen(["sleep", "600"], env={"PATH": os.defpath, "API_TOKEN": secret})
    setup = SUBVERT + constants(CANARY=str(canary.path), APP_PID=os.getpid(), VICTIM_PID=victim.pid)

    async def main() -> None:
        async with running_app(store, tmp_path) as app:
            await app.install("proc-reader", attempts_module("proc", PROC_ATTEMPTS, setup=setup))
            outcomes = await app.attempts("proc.run")
            assert outcomes.done("allowed: read its own environment") == "True"
            attempts = [name for name in PROC_ATTEMPTS if not name.startswith("allowed")]
            if mode == LANDLOCK_SECCOMP:
                # Without a PID namespace the numbers of a same-user process's open files can be
                # listed (not opened or read); docs/security.md names this limit.
                attempts.remove("the app's open files")
            outcomes.all_refused(attempts, by_kernel=True)
            assert_not_quoted(outcomes.results, secret, canary.content, "SQLite format 3")

    try:
        asyncio.run(main())
    finally:
        victim.kill()
        victim.wait()
    canary.assert_intact()


# 2. Native paths that raise no audit event ----------------------------------------------------------

NATIVE_SETUP = """
import ctypes, os, signal, sys, types
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long

def syscall(number, *args):
    result = libc.syscall(number, *[ctypes.c_long(arg) for arg in args])
    if result < 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))
    return result

def fresh(name):
    import _imp, importlib.machinery
    return _imp.create_builtin(importlib.machinery.ModuleSpec(name, None, origin="built-in"))
"""
# x86_64 and aarch64 numbers (seccomp.py supports these two).
_SYSCALLS = {
    "x86_64": {
        "getpid": 39,
        "ptrace": 101,
        "kill": 62,
        "tgkill": 234,
        "process_vm_readv": 310,
        "unshare": 272,
        "io_uring_setup": 425,
    },
    "aarch64": {
        "getpid": 172,
        "ptrace": 117,
        "kill": 129,
        "tgkill": 131,
        "process_vm_readv": 270,
        "unshare": 97,
        "io_uring_setup": 425,
    },
}


def native_attempts() -> dict[str, str]:
    numbers = _SYSCALLS.get(os.uname().machine, _SYSCALLS["x86_64"])
    attempts = {
        "allowed: sqlite3 in its own data folder": code(
            "import sqlite3",
            "c = sqlite3.connect('own.db')",
            "c.execute('create table t(x)')",
            "c.execute('insert into t values (42)')",
            "c.commit()",
            "return c.execute('select x from t').fetchone()[0]",
        ),
        "allowed: readline history in its own data folder": code(
            "import readline",
            "readline.add_history('mine')",
            "readline.write_history_file('history')",
            "return 'written'",
        ),
        "allowed: a system call through ctypes": f"return syscall({numbers['getpid']}) == os.getpid()",
        "allowed: signal itself": "return os.kill(os.getpid(), 0)",
        "sqlite3 creates a database beside the canary": code(
            "import sqlite3",
            "c = sqlite3.connect(CANARY_DIR + '/x.db')",
            "c.execute('create table t(x)')",
            "c.commit()",
        ),
        "sqlite3 attaches the app's database and writes to it": code(
            "import sqlite3",
            "c = sqlite3.connect(':memory:')",
            "c.execute('attach database ? as app', (DATABASE,))",
            "c.execute('create table app.owned(x)')",
            "c.execute('insert into app.owned values (1)')",
            "c.commit()",
        ),
        "sqlite3 reads the app's database": (
            "import sqlite3\n"
            "c = sqlite3.connect(f'file:{DATABASE}?mode=ro&immutable=1', uri=True)\n"
            "return c.execute('select name from sqlite_master').fetchall()"
        ),
        "readline writes its history beside the canary": code(
            "import readline",
            "readline.add_history('owned')",
            "return readline.write_history_file(CANARY_DIR + '/history')",
        ),
        "readline appends its history to the canary": (
            "import readline\nreadline.add_history('owned')\nreturn readline.append_history_file(1, CANARY)"
        ),
        "libc open() of the canary for writing": (
            "fd = libc.open(CANARY.encode(), os.O_WRONLY | os.O_TRUNC)\n"
            "if fd < 0:\n    raise OSError(ctypes.get_errno(), 'open')\nreturn os.write(fd, b'owned')"
        ),
        "posix re-imported for pidfd_open(app)": (
            "del sys.modules['posix']\nimport posix\nreturn posix.pidfd_open(APP_PID)"
        ),
        "a fresh posix from _imp.create_builtin for pidfd_open(app)": (
            "return fresh('posix').pidfd_open(APP_PID)"
        ),
        "a fresh _signal's pidfd_send_signal(SIGTERM) to the app": code(
            "pidfd = fresh('posix').pidfd_open(APP_PID)",
            "return fresh('_signal').pidfd_send_signal(pidfd, signal.SIGTERM)",
        ),
        "os.kill(app, SIGTERM) with the hook told the app is itself": code(
            "real_os = audit.os",
            "audit.os = types.SimpleNamespace(getpid=lambda: APP_PID, getsid=real_os.getsid)",
            "try:",
            "    return fresh('posix').kill(APP_PID, signal.SIGTERM)",
            "finally:",
            "    audit.os = real_os",
        ),
        "kill(app, SIGTERM) through ctypes": f"return syscall({numbers['kill']}, APP_PID, signal.SIGTERM)",
        "tgkill(app, SIGTERM) through ctypes": (
            f"return syscall({numbers['tgkill']}, APP_PID, APP_PID, signal.SIGTERM)"
        ),
        "kill(victim, SIGKILL) through ctypes": (
            f"return syscall({numbers['kill']}, VICTIM_PID, signal.SIGKILL)"
        ),
        # SEIZE does not stop the app, and a successful attach is undone at once, so that a broken
        # sandbox fails this test instead of freezing the test run.
        "ptrace(PTRACE_SEIZE, app)": code(
            f"attached = syscall({numbers['ptrace']}, 0x4206, APP_PID, 0, 0)",
            f"syscall({numbers['ptrace']}, 17, APP_PID, 0, 0)",
            "return attached",
        ),
        "ptrace(PTRACE_ATTACH, victim)": code(
            f"attached = syscall({numbers['ptrace']}, 16, VICTIM_PID, 0, 0)",
            "import time; time.sleep(0.1)",
            f"syscall({numbers['ptrace']}, 17, VICTIM_PID, 0, 0)",
            "return attached",
        ),
        "pidfd_open(app) through ctypes": "return syscall(434, APP_PID, 0)",
        "process_vm_readv(app)": (
            "buffer = ctypes.create_string_buffer(64)\n"
            "local = (ctypes.c_void_p * 2)(ctypes.addressof(buffer), 64)\n"
            "remote = (ctypes.c_void_p * 2)(id(None), 64)\n"
            f"return syscall({numbers['process_vm_readv']}, APP_PID, ctypes.addressof(local), 1, "
            "ctypes.addressof(remote), 1, 0)"
        ),
        "read the app's memory in /proc": "return open(f'/proc/{APP_PID}/mem', 'rb').read(1)",
        "unshare a user namespace": f"return syscall({numbers['unshare']}, 0x10000000)",
        "io_uring_setup (its requests bypass seccomp)": (
            "params = ctypes.create_string_buffer(120)\n"
            f"return syscall({numbers['io_uring_setup']}, 4, ctypes.addressof(params))"
        ),
    }
    if importlib.util.find_spec("readline") is None:  # a Python built without it
        attempts = {name: body for name, body in attempts.items() if "readline" not in name}
    return attempts


@pytest.fixture
def victim() -> Iterator[subprocess.Popen[bytes]]:
    """A process of the user's, beside the app, that no module may signal."""
    process = subprocess.Popen(["sleep", "600"])
    yield process
    process.kill()
    process.wait()


@pytest.fixture
def app_signals() -> Iterator[list[int]]:
    """Signals the app (this test process) receives while the test runs."""
    received: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda number, frame: received.append(number))
    yield received
    signal.signal(signal.SIGTERM, previous)


def test_native_paths_without_audit_events_reach_neither_files_nor_other_processes(
    mode: str,
    tmp_path: Path,
    store: Store,
    victim: subprocess.Popen[bytes],
    app_signals: list[int],
) -> None:
    canary = FileCanary.make(tmp_path)
    tables = database_tables(store.path)
    setup = (
        SUBVERT
        + NATIVE_SETUP
        + constants(
            CANARY=str(canary.path),
            CANARY_DIR=str(canary.folder),
            DATABASE=str(store.path),
            APP_PID=os.getpid(),
            VICTIM_PID=victim.pid,
        )
    )
    fields = {"permissions": {"native_code": True}}

    async def main() -> None:
        async with running_app(store, tmp_path) as app:
            await app.install(
                "native-prober", attempts_module("native", native_attempts(), setup=setup), fields
            )
            outcomes = await app.attempts("native.run")
            assert outcomes.done("allowed: sqlite3 in its own data folder") == "42"
            if "allowed: readline history in its own data folder" in outcomes.results:
                assert outcomes.done("allowed: readline history in its own data folder") == "written"
            assert outcomes.done("allowed: a system call through ctypes") == "True"
            outcomes.done("allowed: signal itself")
            outcomes.all_refused(by_kernel=True)
            assert_not_quoted(outcomes.results, canary.content, "modulerecord")

    asyncio.run(main())
    assert app_signals == [], "ESCAPE: the app received a signal from the module"
    assert victim.poll() is None, "ESCAPE: the module killed another program of the user's"
    canary.assert_intact()
    assert database_tables(store.path) == tables


# 3. The path checked is not the path used --------------------------------------------------------

TOCTOU_SETUP = """
import io, os, pathlib

class Flip:
    \"\"\"A path that is the module's own file except on the calls listed in ``canary_on``.\"\"\"

    def __init__(self, canary_on, own="own.txt"):
        self.calls, self.canary_on, self.own = 0, canary_on, os.path.abspath(own)

    def __fspath__(self):
        self.calls += 1
        return CANARY if self.calls in self.canary_on or "all" in self.canary_on else self.own

class FlipBytes(bytes):
    \"\"\"The canary's path, which claims to be the module's own file when decoded for a check.\"\"\"

    def decode(self, *args, **kwargs):
        return os.path.abspath("own.txt")

class Sneaky(str):
    \"\"\"The canary's path, with every comparison a check could make answering "inside".\"\"\"

    def startswith(self, *args, **kwargs):
        return True

    def __eq__(self, other):
        return True

    __hash__ = str.__hash__

    def __str__(self):
        return os.path.abspath("own.txt")

    def __fspath__(self):
        return os.path.abspath("own.txt")
"""


def toctou_attempts() -> dict[str, str]:
    attempts = {
        "allowed: write its own file through a path object": (
            "open(Flip([]), 'w').write('mine')\nreturn open('own.txt').read()"
        ),
    }
    for calls in ([1], [2], [3], [2, 4], [1, 3]):
        attempts[f"open(.., 'w') of a path that is the canary on call {calls}"] = (
            f"return open(Flip({calls}), 'w').write('owned')"
        )
        attempts[f"os.open(O_WRONLY|O_TRUNC) of a path that is the canary on call {calls}"] = (
            f"return os.write(os.open(Flip({calls}), os.O_WRONLY | os.O_TRUNC), b'owned')"
        )
    attempts.update(
        {
            "io.FileIO of a path that is the canary on call 2": (
                "return io.FileIO(Flip([2]), 'w').write(b'owned')"
            ),
            "pathlib.Path.write_text of a path that is the canary on call 1": (
                "return pathlib.Path(Flip([1])).write_text('owned')"
            ),
            "os.truncate of a path that is the canary on call 1": "return os.truncate(Flip([1]), 0)",
            "os.rename of a path that is the canary on call 2": "return os.rename(Flip([2]), 'stolen.txt')",
            "bytes that decode to its own file": (
                "return open(FlipBytes(CANARY.encode()), 'w').write('owned')"
            ),
            "str subclass whose checks all answer inside": "return open(Sneaky(CANARY), 'w').write('owned')",
            "str subclass read": "return open(Sneaky(CANARY)).read()",
            "os.open of bytes that decode to its own file": (
                "fd = os.open(FlipBytes(CANARY.encode()), os.O_WRONLY | os.O_APPEND)\n"
                "return os.write(fd, b'owned')"
            ),
        }
    )
    return attempts


def test_a_path_that_changes_between_the_check_and_the_use_never_reaches_the_canary(
    mode: str, tmp_path: Path, store: Store
) -> None:
    canary = FileCanary.make(tmp_path)
    setup = TOCTOU_SETUP + constants(CANARY=str(canary.path))

    async def main() -> None:
        async with running_app(store, tmp_path) as app:
            await app.install("path-flipper", attempts_module("flipper", toctou_attempts(), setup=setup))
            outcomes = await app.attempts("flipper.run")
            assert outcomes.done("allowed: write its own file through a path object") == "mine"
            results = outcomes.results
            # A variant that the kernel saw as the module's own file may have written it, which
            # is allowed; every variant the kernel saw as the canary was refused.
            reached = {name: result for name, result in results.items() if "owned" in result}
            assert not reached, reached
            # The hook was fooled by at least one of them, and the kernel refused it anyway.
            by_kernel = [
                name
                for name, result in results.items()
                if result.startswith("refused") and not result.startswith("refused AccessRefused")
            ]
            assert by_kernel, f"no variant got past the audit hook: {results}"
            assert_not_quoted(results, canary.content)

    asyncio.run(main())
    canary.assert_intact()


# 4. The network: only declared hosts, only through the gatekeeper ----------------------------------

PROXY_SETUP = """
import base64, os, socket, urllib.error, urllib.parse, urllib.request

PROXY = urllib.parse.urlsplit(os.environ["HTTPS_PROXY"])

def through_gatekeeper(target):
    \"\"\"The gatekeeper's answer to ``CONNECT target``: its status line and reason.\"\"\"
    auth = base64.b64encode(f"{PROXY.username}:{PROXY.password}".encode()).decode()
    with socket.create_connection((PROXY.hostname, PROXY.port), timeout=5) as gate:
        gate.sendall(f"CONNECT {target} HTTP/1.1\\r\\nProxy-Authorization: Basic {auth}\\r\\n\\r\\n".encode())
        answer = b""
        while chunk := gate.recv(4096):
            answer += chunk
            if answer.startswith(b"HTTP/1.1 200"):
                break
        return answer.decode(errors="replace").replace("\\r\\n", " ")

def tcp(family, host, port):
    with socket.socket(family) as connection:
        connection.settimeout(2)
        return connection.connect((host, port))

def udp(family, host, port):
    with socket.socket(family, socket.SOCK_DGRAM) as sender:
        return sender.sendto(b"owned", (host, port))

def fetch(url):
    try:
        return urllib.request.urlopen(url, timeout=5).read().decode()
    except urllib.error.HTTPError as error:
        return f"{error.code} {error.read().decode(errors='replace')}"
"""


def direct_attempts() -> dict[str, str]:
    return {
        "allowed: urllib reaches the declared local server through the gatekeeper": (
            "return fetch(f'http://localhost:{HTTP_PORT}/declared')"
        ),
        "allowed: the gatekeeper answers 403 for an undeclared port": (
            "return fetch(f'http://localhost:{TCP_PORT}/undeclared')"
        ),
        "allowed: CONNECT to an undeclared port is 403": (
            "return through_gatekeeper(f'localhost:{TCP_PORT}')"
        ),
        "allowed: CONNECT to the declared port by another name is 403": (
            "return through_gatekeeper(f'127.0.0.1:{HTTP_PORT}')"
        ),
        "connect to 127.0.0.1 directly": "return tcp(socket.AF_INET, '127.0.0.1', TCP_PORT)",
        "connect to localhost directly": "return socket.create_connection(('localhost', TCP_PORT), 2)",
        "connect to 0.0.0.0": "return tcp(socket.AF_INET, '0.0.0.0', TCP_PORT)",
        "connect to ::1": "return tcp(socket.AF_INET6, '::1', TCP_PORT)",
        "connect to ::ffff:127.0.0.1": "return tcp(socket.AF_INET6, '::ffff:127.0.0.1', TCP_PORT)",
        "connect to the declared host directly, not through the gatekeeper": (
            "return socket.create_connection(('127.0.0.1', HTTP_PORT), timeout=2)"
        ),
        "TCP fast open (sendto with MSG_FASTOPEN)": (
            "s = socket.socket()\nreturn s.sendto(b'owned', socket.MSG_FASTOPEN, ('127.0.0.1', TCP_PORT))"
        ),
        "UDP to 127.0.0.1": "return udp(socket.AF_INET, '127.0.0.1', UDP_PORT)",
        "UDP to ::1": "return udp(socket.AF_INET6, '::1', UDP_PORT)",
        "a raw socket": "return socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)",
        "a local (unix) socket": "return socket.socket(socket.AF_UNIX)",
        "listen for connections": "s = socket.socket()\ns.bind(('127.0.0.1', 0))\nreturn s.listen()",
    }


def wildcard_attempts() -> dict[str, str]:
    targets = {
        "127.0.0.1": "127.0.0.1:{TCP_PORT}",
        "localhost": "localhost:{TCP_PORT}",
        "localhost.": "localhost.:{TCP_PORT}",
        "::1": "[::1]:{TCP_PORT}",
        "::ffff:127.0.0.1": "[::ffff:127.0.0.1]:{TCP_PORT}",
        "0.0.0.0": "0.0.0.0:{TCP_PORT}",
        "127.1": "127.1:{TCP_PORT}",
        "the decimal 2130706433": "2130706433:{TCP_PORT}",
    }
    attempts = {
        f"CONNECT {name}": f"return through_gatekeeper(f'{target}')" for name, target in targets.items()
    }
    attempts["GET http://127.0.0.1 through the gatekeeper"] = "return fetch(f'http://127.0.0.1:{TCP_PORT}/')"
    attempts["CONNECT 127.0.0.1 on a web port"] = "return through_gatekeeper('127.0.0.1:443')"
    return attempts


def test_a_module_reaches_its_declared_host_only_through_the_gatekeeper(
    mode: str, tmp_path: Path, store: Store
) -> None:
    require_landlock(4, "TCP port rules")
    with loopback_canary() as listener, local_http_server() as (http_port, served):
        setup = (
            SUBVERT
            + PROXY_SETUP
            + constants(TCP_PORT=listener.tcp_port, UDP_PORT=listener.udp_port, HTTP_PORT=http_port)
        )

        async def main() -> None:
            async with running_app(store, tmp_path) as app:
                declared = {"permissions": {"network": [f"localhost:{http_port}"]}}
                await app.install(
                    "net-direct", attempts_module("direct", direct_attempts(), setup=setup), declared
                )
                wildcard = {"permissions": {"network": ["*", f"*:{listener.tcp_port}"]}}
                await app.install(
                    "net-any", attempts_module("any", wildcard_attempts(), setup=setup), wildcard
                )

                direct = await app.attempts("direct.run")
                assert (
                    direct.done("allowed: urllib reaches the declared local server through the gatekeeper")
                    == "hello from the local server: /declared"
                )
                for name in (
                    "allowed: the gatekeeper answers 403 for an undeclared port",
                    "allowed: CONNECT to an undeclared port is 403",
                    "allowed: CONNECT to the declared port by another name is 403",
                ):
                    answer = direct.done(name)
                    assert "403" in answer and "NEXUS refused this connection" in answer, answer
                    assert "may not connect to" in answer and "permissions.network" in answer, answer
                direct.all_refused(by_kernel=True)

                wild = await app.attempts("any.run")
                for name, answer in wild.results.items():
                    assert answer.startswith("DONE "), f"{name}: {answer}"
                    assert "403" in answer and "200 Connection established" not in answer, f"{name}: {answer}"
                    assert "NEXUS refused this connection" in answer, f"{name}: {answer}"
                for name, answer in wild.results.items():
                    assert "is on this PC or your home network" in answer, f"{name}: {answer}"

        asyncio.run(main())
        listener.assert_untouched()
        assert served == ["/declared"], f"the local server was reached other than declared: {served}"


MPTCP_ATTEMPTS = {
    "allowed: its gatekeeper answers": code(
        "import os, urllib.parse",
        "proxy = urllib.parse.urlsplit(os.environ['HTTPS_PROXY'])",
        "socket.create_connection((proxy.hostname, proxy.port), 2).close()",
        "return 'reached'",
    ),
    "allowed: plain TCP to the listener is refused by the kernel": (
        "s = socket.socket()\ns.settimeout(2)\ntry:\n    s.connect(('127.0.0.1', TCP_PORT))\n"
        "except PermissionError as error:\n    return f'refused {error.errno}'\nreturn 'connected'"
    ),
    "MPTCP (a TCP stream Landlock's TCP rules do not cover)": (
        "s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)\ns.settimeout(2)\n"
        "return s.connect(('127.0.0.1', TCP_PORT))"
    ),
    "MPTCP over IPv6": (
        "s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM, 262)\ns.settimeout(2)\n"
        "return s.connect(('::1', TCP_PORT))"
    ),
    "SCTP stream": (
        "s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 132)\ns.settimeout(2)\n"
        "return s.connect(('127.0.0.1', TCP_PORT))"
    ),
}


def test_a_module_with_network_cannot_connect_directly_through_another_stream_protocol(
    default_mode: str, tmp_path: Path, store: Store
) -> None:
    require_landlock(4, "TCP port rules")
    with loopback_canary() as listener:
        setup = SUBVERT + "import socket\n" + constants(TCP_PORT=listener.tcp_port)

        async def main() -> None:
            async with running_app(store, tmp_path) as app:
                fields = {"permissions": {"network": ["example.org"]}}
                await app.install("net-mptcp", attempts_module("mptcp", MPTCP_ATTEMPTS, setup=setup), fields)
                outcomes = await app.attempts("mptcp.run")
                assert outcomes.done("allowed: its gatekeeper answers") == "reached"
                assert (
                    outcomes.done("allowed: plain TCP to the listener is refused by the kernel")
                    == "refused 13"
                )
                outcomes.all_refused(by_kernel=True)

        asyncio.run(main())
        listener.assert_untouched()


def test_a_declared_public_name_that_resolves_to_this_pc_is_refused() -> None:
    from nexus_desktop.sandbox.egress import Refused, Rule, resolve

    def rebound(host: str, port: int, **_: object) -> list[tuple[Any, ...]]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    rules = [Rule.parse("api.weather-example.com:11434")]
    with pytest.raises(Refused, match="on this PC or your home network"):
        resolve(rules, "weather", "api.weather-example.com", 11434, getaddrinfo=rebound)
    # What an exact local entry asks for is still let through.
    assert resolve([Rule.parse("localhost:11434")], "weather", "localhost", 11434, getaddrinfo=rebound)
