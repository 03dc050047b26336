"""Harness for the kernel-containment tests: install hostile modules the way a user does, aim them
at canaries, and check afterwards that nothing was touched.

The real flow, as in the app: a module folder (``write_module``) is installed into the user's
modules folder (``ModuleHost.install``), validated (``validate_and_record``: its checks and its
own tests, contained with nothing granted), approved as the approval dialog shows it, and called
through a ``ModuleSupervisor``.

Canaries are things a module must never reach:
- ``FileCanary``: a folder outside every module folder holding a file of known content; its
  listing, content, size, times, mode and extended attributes must be unchanged;
- ``LoopbackCanary``: TCP (127.0.0.1 and ::1, one port) and UDP listeners that count every
  connection and datagram; the counts must stay 0;
- another module's data file and the app's own database (``store``), unchanged and never quoted.

Hostile code reports what each attempt did with ``attempts_module``: one tool whose result maps
each attempt to ``DONE <value>`` or ``refused <type> <errno>: <message>``; most first run
``SUBVERT``, which takes the audit hook's explanations apart, so that what refuses is the kernel.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import http.server
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

from nexus_desktop.db.store import Store
from nexus_desktop.modules.lifecycle import ModuleState
from nexus_desktop.modules.manifest import load_manifest
from nexus_desktop.modules.registry import ModuleHost
from nexus_desktop.modules.runtime import containment
from nexus_desktop.modules.runtime.supervisor import ModuleSupervisor
from nexus_desktop.modules.runtime.validate import validate_and_record
from nexus_desktop.sandbox import bubblewrap, landlock, support
from nexus_desktop.secrets import SecretStore
from tests.hostile.modules import write_module
from tests.hostile.runtime_modules import Heartbeat, make_supervisor, tool_module

NAMESPACES = "namespaces"
LANDLOCK_SECCOMP = "landlock+seccomp"
MODES = [NAMESPACES, LANDLOCK_SECCOMP]
MAX_STALL_SECONDS = 0.25
VALIDATION_TIMEOUT = 30.0


# Containment modes ------------------------------------------------------------------------------


def clear_detection() -> None:
    bubblewrap.usable.cache_clear()
    support.detect.cache_clear()


def use_mode(monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    """Contain every child of this test as ``mode`` says; skips where the kernel cannot.

    ``landlock+seccomp`` is what Ubuntu 23.10+ gives (AppArmor forbids unprivileged user
    namespaces): NEXUS_NO_NAMESPACES=1 makes the probe answer as it does there.
    """
    if mode == NAMESPACES:
        monkeypatch.delenv("NEXUS_NO_NAMESPACES", raising=False)
    else:
        monkeypatch.setenv("NEXUS_NO_NAMESPACES", "1")
    clear_detection()
    found = support.detect()
    if found.platform != "linux":
        pytest.skip(f"kernel containment is built for Linux only, not {found.platform}")
    if found.landlock_abi < 1:
        pytest.skip("this kernel has no Landlock")
    if not found.seccomp:
        pytest.skip("seccomp filters are not available on this architecture")
    if mode == NAMESPACES and not found.namespaces:
        pytest.skip("bwrap is missing or may not create user namespaces here")
    if mode == LANDLOCK_SECCOMP:
        assert not found.namespaces


def require_landlock(abi: int, feature: str) -> None:
    if landlock.abi() < abi:
        pytest.skip(f"this kernel's Landlock ABI {landlock.abi()} lacks {feature} (needs ABI {abi})")


# Installing the way a user does -------------------------------------------------------------------


def user_host(store: Store, tmp_path: Path) -> ModuleHost:
    """A host with no built-in, bundled or developer modules: only what the test installs."""
    host = ModuleHost(
        store.engine,
        bundled_dir=tmp_path / "no-bundled",
        user_dir=tmp_path / "user-modules",
        builtins=False,
        environ={},
    )
    host.refresh()
    return host


def write_source(
    tmp_path: Path,
    name: str,
    source: str,
    fields: dict[str, Any] | None = None,
    *,
    tests: str | None = None,
) -> Path:
    """The module folder as its author ships it; ``tests`` becomes its ``test_file``."""
    fields = dict(fields or {})
    if tests is not None:
        fields["test_file"] = "tests/test_module.py"
    folder = write_module(tmp_path / "sources" / name, name, code=source, **fields)
    if tests is not None:
        (folder / "tests").mkdir()
        (folder / "tests" / "test_module.py").write_text(textwrap.dedent(tests))
    return folder


def approve(host: ModuleHost, name: str) -> None:
    """Approve what the dialog shows, accepting every gap this PC's kernel leaves (a user who
    approves on a machine without user namespaces sees and accepts them)."""
    request = host.review(name)
    manifest = load_manifest(Path(host.lifecycle.get(name).path))
    accepted = [containment.ACCEPTED + gap for gap in containment.gaps(manifest)]
    host.approve(dataclasses.replace(request, access=[*request.access, *accepted]))


async def install(
    host: ModuleHost,
    tmp_path: Path,
    name: str,
    source: str,
    fields: dict[str, Any] | None = None,
    *,
    tests: str | None = None,
    approved: bool = True,
) -> dict[str, Any]:
    """Install, validate and (``approved``) approve a module; returns the validation report."""
    folder = write_source(tmp_path, name, source, fields, tests=tests)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, host.install, folder)
    report = await validate_and_record(host, name, timeout=VALIDATION_TIMEOUT)
    if approved:
        assert report["ok"], f"{name} did not pass validation: {report}"
        await loop.run_in_executor(None, approve, host, name)
    return report


# Hostile code that reports what each attempt did ---------------------------------------------------

_ATTEMPT = """
import json as _json
results = {}

def attempt(name, action):
    try:
        value = action()
    except BaseException as error:
        results[name] = (
            f"refused {type(error).__name__} {getattr(error, 'errno', None)}: {str(error)[:300]}"
        )
    else:
        results[name] = f"DONE {str(value)[:300]}"
"""


def attempts_body(attempts: dict[str, str], *, setup: str = "") -> str:
    """A tool body that runs ``setup`` and then each attempt (a function body that may
    ``return`` a value) in order, and returns the outcomes as JSON."""
    parts = [_ATTEMPT, textwrap.dedent(setup)]
    for index, (name, code) in enumerate(attempts.items()):
        function = f"_attempt_{index}"
        parts.append(f"def {function}():\n{textwrap.indent(textwrap.dedent(code).strip(), '    ')}\n")
        parts.append(f"attempt({name!r}, {function})\n")
    parts.append("return _json.dumps(results)\n")
    return "\n".join(parts)


def attempts_module(prefix: str, attempts: dict[str, str], *, setup: str = "") -> str:
    """Module source whose one tool, ``<prefix>.run``, makes ``attempts`` (see ``attempts_body``)."""
    return tool_module(prefix, attempts_body(attempts, setup=setup))


def constants(**values: Any) -> str:
    """Module-side assignments of the test's paths and numbers."""
    return "\n".join(f"{name} = {value!r}" for name, value in values.items()) + "\n"


SUBVERT = """
import builtins, io, sys, types
audit = sys.modules["nexus_desktop.modules.runtime.audit"]
audit._real_path = lambda path: None
audit._inside = lambda path, roots: True
audit._REFUSED_IMPORTS = frozenset()
audit._ALWAYS_REFUSED.clear()
audit._WRITE_PATH_EVENTS.clear()
audit._SUBPROCESS_EVENTS = frozenset()
audit.AccessPolicy.refusal = lambda self, event, args: None
for _check in ("open", "read", "write", "new_socket", "host", "address"):
    setattr(audit.AccessPolicy, "_check_" + _check, lambda self, *args, **kwargs: None)
sys.modules["nexus_desktop.modules.runtime.audit"] = types.ModuleType("audit")
_real_open = io.open
builtins.open = lambda *args, **kwargs: _real_open(*args, **kwargs)
"""
"""The explanation layer taken apart from inside: its path checks answer "inside" for every path,
its file and network checks allow everything, its lists of refused events and imports are
emptied, and its module and ``open`` are replaced.  (Its hook keeps the bound ``refusal`` of the
policy it was installed with, which calls the patched helpers.)"""


@dataclass
class Outcomes:
    """What each attempt did, from an attempts tool's result."""

    results: dict[str, str]

    @classmethod
    def parse(cls, content: str) -> Outcomes:
        return cls(json.loads(content))

    def done(self, name: str) -> str:
        outcome = self.results[name]
        assert outcome.startswith("DONE "), f"{name} should have worked: {outcome}"
        return outcome.removeprefix("DONE ")

    def refused(self, name: str, *, by_kernel: bool = False) -> str:
        """``by_kernel``: refused by the operating system, not by the (subverted) audit hook."""
        outcome = self.results[name]
        assert outcome.startswith("refused "), f"ESCAPE: {name} was not refused: {outcome}"
        if by_kernel:
            assert not outcome.startswith("refused AccessRefused"), f"{name}: {outcome}"
        return outcome

    def all_refused(self, names: list[str] | None = None, *, by_kernel: bool = False) -> None:
        names = names if names is not None else [n for n in self.results if not n.startswith("allowed")]
        escaped = {n: self.results[n] for n in names if not self.results[n].startswith("refused ")}
        assert not escaped, f"ESCAPE: these attempts were not refused: {escaped}"
        for name in names:
            self.refused(name, by_kernel=by_kernel)


# Canaries -------------------------------------------------------------------------------------------


Fingerprint = tuple[str, int, int, int, int, tuple[str, ...]]


def _fingerprint(path: Path) -> Fingerprint:
    """Content, size, times (a metadata change moves ctime), mode and extended attributes."""
    stat = path.stat()
    xattrs = tuple(sorted(os.listxattr(path))) if hasattr(os, "listxattr") else ()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return digest, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_mode, xattrs


@dataclass
class FileCanary:
    """A file of known content in a folder outside every module's reach."""

    folder: Path
    content: str
    path: Path = field(init=False)
    _before: Fingerprint = field(init=False)
    _listing: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / "canary.txt"
        self.path.write_text(self.content)
        os.utime(self.path, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
        self._before = _fingerprint(self.path)
        self._listing = sorted(os.listdir(self.folder))

    @classmethod
    def make(cls, tmp_path: Path, name: str = "canary") -> FileCanary:
        return cls(tmp_path / name, f"canary {uuid.uuid4().hex}: the user's diary")

    def assert_intact(self) -> None:
        assert sorted(os.listdir(self.folder)) == self._listing, "something was created in the canary folder"
        assert self.path.read_text() == self.content, "the canary file was changed"
        assert _fingerprint(self.path) == self._before, "the canary file was touched"


@dataclass
class FileSnapshot:
    """Any existing file (the app's database, another module's data) to check afterwards."""

    path: Path
    _before: Fingerprint = field(init=False)

    def __post_init__(self) -> None:
        self._before = _fingerprint(self.path)

    def assert_intact(self) -> None:
        assert _fingerprint(self.path) == self._before, f"{self.path} was changed"


class LoopbackCanary:
    """Listeners on this PC's loopback that count whatever reaches them.

    TCP on 127.0.0.1 and ::1 (the same port) and UDP on 127.0.0.1 and ::1 (another port).
    """

    def __init__(self) -> None:
        self.accepted: list[str] = []
        self.datagrams: list[bytes] = []
        self._stop = threading.Event()
        self._sockets: list[socket.socket] = []
        tcp4 = socket.create_server(("127.0.0.1", 0))
        self.tcp_port: int = tcp4.getsockname()[1]
        tcp6 = self._bound(socket.AF_INET6, socket.SOCK_STREAM, ("::1", self.tcp_port))
        udp4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp4.bind(("127.0.0.1", 0))
        self.udp_port: int = udp4.getsockname()[1]
        udp6 = self._bound(socket.AF_INET6, socket.SOCK_DGRAM, ("::1", self.udp_port))
        self._threads: list[threading.Thread] = []
        for server in (tcp4, tcp6):
            if server is not None:
                server.listen()
                self._start(self._accept, server)
        for receiver in (udp4, udp6):
            if receiver is not None:
                self._start(self._receive, receiver)

    def _bound(self, family: int, kind: int, address: tuple[str, int]) -> socket.socket | None:
        try:
            sock = socket.socket(family, kind)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
        except OSError:
            return None  # no IPv6 loopback here: the IPv4 listeners still count
        return sock

    def _start(self, target: Callable[[socket.socket], None], sock: socket.socket) -> None:
        sock.settimeout(0.1)
        self._sockets.append(sock)
        thread = threading.Thread(target=target, args=(sock,), daemon=True)
        thread.start()
        self._threads.append(thread)

    def _accept(self, server: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                connection, address = server.accept()
            except OSError:
                continue
            self.accepted.append(str(address))
            connection.close()

    def _receive(self, receiver: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                data, _ = receiver.recvfrom(65536)
            except OSError:
                continue
            self.datagrams.append(data)

    def assert_untouched(self) -> None:
        time.sleep(0.2)  # a connection in flight is counted before the check
        assert self.accepted == [], f"ESCAPE: the loopback listener accepted {self.accepted}"
        assert self.datagrams == [], f"ESCAPE: the UDP listener received {self.datagrams}"

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()
        for sock in self._sockets:
            sock.close()


@contextmanager
def loopback_canary() -> Iterator[LoopbackCanary]:
    canary = LoopbackCanary()
    try:
        yield canary
    finally:
        canary.close()


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"hello from the local server: {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def local_http_server() -> Iterator[tuple[int, list[str]]]:
    """An HTTP server on 127.0.0.1 answering ``hello from the local server: <path>``; the list
    collects the paths asked for."""
    paths: list[str] = []

    class Handler(_Hello):
        def do_GET(self) -> None:
            paths.append(self.path)
            super().do_GET()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], paths
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# Processes --------------------------------------------------------------------------------------------


def processes_with(marker: str) -> list[psutil.Process]:
    """Running (not zombie) processes whose command line mentions ``marker``, except this one."""
    found = []
    for process in psutil.process_iter(["pid", "cmdline", "status"]):
        try:
            if process.pid == os.getpid() or process.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if any(marker in part for part in process.info["cmdline"] or ()):
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_until(condition: Callable[[], object], seconds: float, step: float = 0.02) -> bool:
    deadline = time.monotonic() + seconds
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(step)


async def async_wait_until(condition: Callable[[], object], seconds: float, step: float = 0.02) -> bool:
    deadline = time.monotonic() + seconds
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(step)


# One app: a host, a supervisor and a heartbeat on its event loop ------------------------------------


@dataclass
class App:
    """The app side of one test: install modules through the real flow and call their tools."""

    host: ModuleHost
    supervisor: ModuleSupervisor
    beat: Heartbeat
    tmp_path: Path

    async def install(
        self,
        name: str,
        source: str,
        fields: dict[str, Any] | None = None,
        *,
        tests: str | None = None,
        approved: bool = True,
    ) -> dict[str, Any]:
        """Install, validate and, when ``approved``, approve and start the module."""
        report = await install(self.host, self.tmp_path, name, source, fields, tests=tests, approved=approved)
        if approved:
            await self.supervisor.start_module(name)
        return report

    async def attempts(self, tool: str) -> Outcomes:
        """Call an ``attempts_module`` tool; it must answer (the attempts are its result)."""
        result = await self.supervisor.call_tool(tool, {})
        assert result.ok, f"{tool} did not answer: {result.error}"
        return Outcomes.parse(result.content)

    def state(self, name: str) -> ModuleState:
        return ModuleState(self.host.lifecycle.get(name).state)


@asynccontextmanager
async def running_app(
    store: Store, tmp_path: Path, secrets: SecretStore | None = None, **options: Any
) -> AsyncIterator[App]:
    """A user host and a supervisor; on a clean exit, the event loop never stalled 250 ms."""
    host = user_host(store, tmp_path)
    secrets = secrets or SecretStore(f"nexus-test-{uuid.uuid4().hex[:8]}", timeout=5)
    supervisor = make_supervisor(host, secrets, **options)
    try:
        async with Heartbeat() as beat:
            yield App(host, supervisor, beat, tmp_path)
        assert beat.max_gap < MAX_STALL_SECONDS, f"the app's event loop stalled {beat.max_gap:.3f} s"
    finally:
        await supervisor.aclose()


# What this kernel lets through -------------------------------------------------------------------

_PROBE = """
import os, socket, sys
from nexus_desktop.sandbox import landlock, seccomp
from nexus_desktop.sandbox.profile import python_read_paths, system_read_paths
landlock.restrict([(path, landlock.RUN) for path in [*python_read_paths(), *system_read_paths()]],
                  connect_ports=[])
seccomp.apply(network=True, subprocess=False)
try:
{snippet}
except OSError:
    sys.exit(1)
"""


def kernel_lets_through(snippet: str) -> bool:
    """Whether ``snippet`` runs without an OSError in a child held as a module with network is
    without namespaces (Landlock: read the system and /proc, no TCP port; the seccomp filter).

    For the tests of escapes that depend on the kernel: they are expected to fail exactly where
    the kernel lets the escape through, so a fixed product or another kernel shows up.
    """
    program = _PROBE.format(snippet=textwrap.indent(textwrap.dedent(snippet).strip(), "    "))
    root = Path(__file__).resolve().parent.parent.parent
    result = subprocess.run([sys.executable, "-c", program], cwd=root, capture_output=True, timeout=30)
    return result.returncode == 0
