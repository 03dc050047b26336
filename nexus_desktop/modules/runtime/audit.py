"""The PEP 578 audit hook that holds a module to its manifest, inside the module's own process.

``install(policy)`` adds one hook with ``sys.addaudithook``; from then on every audited action
the interpreter takes (opening files, connecting sockets, starting programs, loading native
code) is checked against ``AccessPolicy`` and refused with ``PermissionError`` when the manifest
did not declare it.  Hooks cannot be removed, and this one refuses new hooks, the ``gc``
introspection that could reach its closure, and raising the memory limit.

This hook is not the wall: it runs inside the module's own interpreter, which the module can
tamper with.  The wall is the kernel (``sandbox``: Landlock, seccomp, namespaces and the network
gatekeeper), set up before the module's first line runs.  The hook's job is to turn what the
kernel would refuse into a sentence that says what was refused and how to ask for it.  Its
entry point is bound when it is installed, so patching the policy's helpers afterwards loses
the explanation, never the enforcement.
"""

from __future__ import annotations

import fnmatch
import os
import socket
import sys
import threading
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_SUBPROCESS_EVENTS = frozenset(
    {
        "subprocess.Popen",
        "os.system",
        "os.exec",
        "os.posix_spawn",
        "os.spawn",
        "os.fork",
        "os.forkpty",
        "os.startfile",
        "pty.spawn",
    }
)
_NETWORK_EVENTS = frozenset(
    {
        "socket.getaddrinfo",
        "socket.gethostbyname",
        "socket.gethostbyname_ex",
        "socket.gethostbyaddr",
        "socket.getnameinfo",
    }
)
_ADDRESS_EVENTS = frozenset({"socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg"})
_READ_PATH_EVENTS = frozenset({"os.listdir", "os.scandir"})
# event -> indexes of the path arguments it changes.
_WRITE_PATH_EVENTS: dict[str, tuple[int, ...]] = {
    "os.remove": (0,),
    "os.rmdir": (0,),
    "os.mkdir": (0,),
    "os.rename": (0, 1),
    "os.link": (0, 1),
    "os.symlink": (1,),
    "os.chmod": (0,),
    "os.chown": (0,),
    "os.chflags": (0,),
    "os.lchflags": (0,),
    "os.truncate": (0,),
    "os.utime": (0,),
    "os.mkfifo": (0,),
    "os.mknod": (0,),
    "os.setxattr": (0,),
    "os.removexattr": (0,),
    "shutil.copyfile": (1,),
    "shutil.copymode": (1,),
    "shutil.copystat": (1,),
    "shutil.copytree": (1,),
    "shutil.move": (0, 1),
    "shutil.rmtree": (0,),
    "shutil.chown": (0,),
}
# Always refused: ways to remove or outflank the hook, or to leave the folder the process runs in.
_ALWAYS_REFUSED: dict[str, str] = {
    "sys.addaudithook": "add audit hooks",
    "setopencodehook": "replace the code-opening hook",
    "gc.get_referrers": "inspect the garbage collector",
    "gc.get_referents": "inspect the garbage collector",
    "gc.get_objects": "inspect the garbage collector",
    "resource.setrlimit": "change its resource limits",
    "resource.prlimit": "change its resource limits",
    "os.chroot": "change its root folder",
    "sys.remote_exec": "run code in other processes",
    "sys._current_frames": "inspect other threads",
    "sys._current_exceptions": "inspect other threads",
}


# Re-importing these would bring back what ``disarm`` took away, or start an interpreter without
# this hook; the first import happens before the hook is installed.
_REFUSED_IMPORTS = frozenset(
    {"posix", "nt", "_signal", "_xxsubinterpreters", "_xxinterpchannels", "_testcapi", "_testinternalcapi"}
)
# Functions that can reach other processes without raising an audit event (CPython 3.11).
_UNAUDITED = {
    "os": ("pidfd_open",),
    "posix": ("pidfd_open",),
    "signal": ("pidfd_send_signal",),
    "_signal": ("pidfd_send_signal",),
}


_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})
_ANY_ADDRESS = frozenset({"", "0.0.0.0", "::"})


class AccessRefused(PermissionError):
    """An action the module's manifest does not allow; ``str()`` says what and how to allow it."""


@dataclass(frozen=True)
class AccessPolicy:
    """What one module may do, from its approved manifest.  Paths are absolute and resolved."""

    module: str
    read_roots: tuple[str, ...] = ()
    write_roots: tuple[str, ...] = ()
    listable: tuple[str, ...] = ()
    """Folders that may be listed but not read below (sys.path entries the import system scans)."""
    network: tuple[str, ...] = ()
    subprocess: bool = False
    native_code: bool = False
    fixed_working_folder: bool = True
    """Refuse ``os.chdir``, so relative paths always mean what the check assumes (False for pytest)."""
    loopback_to_own_servers: bool = False
    """Allow loopback connections to servers this process opened itself (a module's tests)."""
    gatekeeper: str | None = None
    """``127.0.0.1:port`` of NEXUS's network gatekeeper, the only address it may connect to."""
    own_servers: weakref.WeakSet[socket.socket] = field(default_factory=weakref.WeakSet, compare=False)

    def refusal(self, event: str, args: tuple[Any, ...]) -> str | None:
        """Why ``event`` is refused, or None when it is allowed."""
        if event in _ALWAYS_REFUSED:
            return f"{self.module} may not {_ALWAYS_REFUSED[event]}"
        if event == "open":
            return self._check_open(args)
        if event == "import":
            name = args[0] if args else None
            if name in _REFUSED_IMPORTS or (name == "_posixsubprocess" and not self.subprocess):
                return f"{self.module} may not import {name}"
            return None
        if event in ("os.chdir", "os.fchdir"):
            if self.fixed_working_folder or event == "os.fchdir":
                return f"{self.module} may not change its working folder"
            return self._check_read(args[0] if args else None)
        if event in _READ_PATH_EVENTS:
            return self._check_read(args[0] if args else None, listing=True)
        if event in _WRITE_PATH_EVENTS:
            for index in _WRITE_PATH_EVENTS[event]:
                problem = self._check_write(args[index] if index < len(args) else None)
                if problem:
                    return problem
            return None
        if event in _SUBPROCESS_EVENTS:
            if self.subprocess:
                return None
            return (
                f"{self.module} may not start other programs ({event}); "
                "its manifest must ask for permissions.subprocess"
            )
        if event.startswith("ctypes."):
            if self.native_code:
                return None
            return (
                f"{self.module} may not load native code ({event}); "
                "its manifest must ask for permissions.native_code"
            )
        if event in ("os.kill", "os.killpg"):
            target = args[0] if args else None
            if target == os.getpid() or (self.subprocess and _in_own_session(target)):
                return None  # itself, or programs it started (the host is in another session)
            return f"{self.module} may not signal other processes"
        if event == "socket.__new__":
            return self._check_new_socket(args[1] if len(args) > 1 else None)
        if event in _NETWORK_EVENTS:
            return self._check_host(args[0] if args else None, args[1] if len(args) > 1 else None)
        if event in _ADDRESS_EVENTS:
            return self._check_address(event, args)
        return None

    # Files --------------------------------------------------------------------------------

    def _check_open(self, args: tuple[Any, ...]) -> str | None:
        path = args[0] if args else None
        mode = args[1] if len(args) > 1 else None
        flags = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or bool(flags & _WRITE_FLAGS)
        return self._check_write(path) if writing else self._check_read(path)

    def _check_read(self, path: Any, *, listing: bool = False) -> str | None:
        real = _real_path(path)
        if real is None:
            return None
        if _inside(real, self.read_roots) or _inside(real, self.write_roots):
            return None
        if listing and real in self.listable:
            return None
        return (
            f"{self.module} may not read {real}, outside its folder; "
            "its manifest must list it under permissions.filesystem.read"
        )

    def _check_write(self, path: Any) -> str | None:
        real = _real_path(path)
        if real is None or _inside(real, self.write_roots):
            return None
        return (
            f"{self.module} may not change {real}, outside its data folder; "
            "its manifest must list it under permissions.filesystem.write"
        )

    # Network ------------------------------------------------------------------------------

    def _host_allowed(self, host: str, port: Any) -> bool:
        host = host.lower().rstrip(".")
        for entry in self.network:
            pattern, _, wanted_port = entry.partition(":")
            if wanted_port and port is not None and str(port) != wanted_port:
                continue
            if pattern == "*" or host == pattern:
                return True
            if pattern.startswith("*.") and fnmatch.fnmatchcase(host, pattern):
                return True
        return False

    def _check_new_socket(self, family: Any) -> str | None:
        if family == getattr(socket, "AF_UNIX", None):
            return f"{self.module} may not use local sockets such as D-Bus or the keyring"
        if family in (socket.AF_INET, socket.AF_INET6) and (self.network or self.loopback_to_own_servers):
            return None
        if family in (socket.AF_INET, socket.AF_INET6):
            return f"{self.module} may not use the network; its manifest must ask for permissions.network"
        return f"{self.module} may not use this kind of socket"

    def _is_gatekeeper(self, host: str, port: Any) -> bool:
        if self.gatekeeper is None:
            return False
        gate_host, _, gate_port = self.gatekeeper.rpartition(":")
        return host == gate_host and (port is None or str(port) == gate_port)

    def _check_host(self, host: Any, port: Any) -> str | None:
        if isinstance(host, bytes):
            host = host.decode("idna", "replace")
        if not isinstance(host, str) or not host:
            host = "localhost"
        if self.loopback_to_own_servers and host in _LOOPBACK:
            return None
        if self._is_gatekeeper(host, port) or self._host_allowed(host, port):
            return None  # naming an allowed host is harmless: connecting goes through the gatekeeper
        if not self.network:
            return f"{self.module} may not use the network; its manifest must ask for permissions.network"
        return f"{self.module} may not connect to {host}; its manifest must list it under permissions.network"

    def _check_address(self, event: str, args: tuple[Any, ...]) -> str | None:
        address = args[1] if len(args) > 1 else None
        if isinstance(address, str | bytes) or address is None:
            # AF_UNIX: D-Bus (and with it the keyring), the X server, other apps' sockets.
            return f"{self.module} may not use local sockets such as D-Bus or the keyring"
        if not isinstance(address, tuple) or not address:
            return f"{self.module} may not use this kind of socket"
        host, port = str(address[0]), address[1] if len(address) > 1 else None
        if self.loopback_to_own_servers and host in _LOOPBACK and self._own_server(event, args[0], port):
            return None
        if self._is_gatekeeper(host, port):
            return None
        if event == "socket.bind" and host in _ANY_ADDRESS and port == 0 and self.network:
            return None  # binding a client socket before connecting
        if not self.network:
            return f"{self.module} may not use the network; its manifest must ask for permissions.network"
        return (
            f"{self.module} may reach the network only through NEXUS's gatekeeper (the HTTPS_PROXY "
            f"it is given), which allows {', '.join(self.network)}; not {host}:{port} directly"
        )

    def _own_server(self, event: str, sock: Any, port: Any) -> bool:
        if event == "socket.bind":
            self.own_servers.add(sock)
            return True
        ports = set()
        for server in list(self.own_servers):
            try:
                ports.add(server.getsockname()[1])
            except OSError:
                continue  # closed
        return port in ports


def _in_own_session(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0 or not hasattr(os, "getsid"):
        return False
    try:
        return os.getsid(pid) == os.getsid(0)
    except OSError:
        return False


def _real_path(path: Any) -> str | None:
    if path is None or isinstance(path, int):
        return None  # an already open file descriptor: it was checked when it was opened
    try:
        text = os.fsdecode(path)
    except TypeError:
        return None
    return os.path.realpath(os.path.abspath(text))


def _inside(path: str, roots: Iterable[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip(os.sep) + os.sep) for root in roots)


def disarm(policy: AccessPolicy) -> None:
    """Replace what the audit hook cannot see: unaudited ways to signal or start processes.

    Call before ``install``; re-importing the originals is then refused by the hook.
    """
    import importlib

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AccessRefused(f"{policy.module} may not reach other processes.")

    for module_name, names in _UNAUDITED.items():
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        for name in names:
            if hasattr(module, name):
                setattr(module, name, refuse)
    if not policy.subprocess:
        try:
            import _posixsubprocess  # type: ignore[import-not-found]
        except ImportError:
            return
        _posixsubprocess.fork_exec = refuse


def install(policy: AccessPolicy, report: Callable[[str], None] | None = None) -> None:
    """Install the hook for good; ``report`` is told of each refusal (for the host's audit log).

    Keep no reference to ``policy`` after calling this: the hook holds it in default arguments it
    deletes before raising, so the refused frame (reachable from the traceback) holds nothing to
    tamper with, and the module cannot reach the function itself (``gc`` is refused).
    """

    def hook(
        event: str,
        args: tuple[Any, ...],
        _refusal: Callable[[str, tuple[Any, ...]], str | None] = policy.refusal,
        _report: Callable[[str], None] | None = report,
        _busy: threading.local = threading.local(),  # noqa: B008 - one per hook, on purpose
    ) -> None:
        if getattr(_busy, "on", False):
            return  # events caused by the check itself (resolving paths and names)
        _busy.on = True
        try:
            problem = _refusal(event, args)
            if problem is not None and _report is not None:
                try:
                    _report(problem)
                except Exception:
                    pass  # reporting must never turn a refusal into an allowance
        finally:
            _busy.on = False
        if problem is not None:
            del _refusal, _report, _busy
            raise AccessRefused(problem + ".")

    sys.addaudithook(hook)


def expand(path: str) -> str:
    return os.path.realpath(os.path.expanduser(path))
