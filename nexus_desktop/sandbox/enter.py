"""The first code every contained child runs: apply its profile, then become the real program.

::

    [bwrap ...] python -I -S -c ENTER <package parent> <profile json> <program> <args...>

Limits, Landlock and seccomp are set here, in a process that has run nothing but this file, and
then ``execve`` replaces it with the program.  All three survive the exec and are inherited by
everything the program starts, so nothing the program does later can lift them.  A layer the
launcher asked for that the kernel refuses ends the child (exit 77): never run less contained
than the approval said.  Only the standard library, the two sibling modules and
``children.exits`` are imported.
"""

from __future__ import annotations

import glob
import json
import os
import sys
from typing import Any

from nexus_desktop.children.exits import CONTAINMENT_REFUSED

ENTER = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from nexus_desktop.sandbox.enter import main; main(sys.argv[2:])"
)
REFUSED_EXIT_CODE = CONTAINMENT_REFUSED


def _fail(message: str) -> None:
    os.write(2, f"nexus containment: {message}\n".encode())
    os._exit(REFUSED_EXIT_CODE)


def _limits(profile: dict[str, Any]) -> None:
    try:
        import resource
    except ImportError:  # not POSIX: nothing to set here
        return

    memory = int(profile.get("memory_limit_mb") or 0)
    if memory > 0:
        resource.setrlimit(resource.RLIMIT_AS, (memory * 2**20, memory * 2**20))
    cpu = int(profile.get("cpu_seconds") or 0)
    if cpu > 0:
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))


_PR_CAPBSET_DROP, _PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL = 24, 47, 4
_LAST_CAPABILITY = 63


def drop_capabilities() -> None:
    """No capabilities now or after exec, even when NEXUS runs as root (in a container, say):
    root's CAP_SYS_PTRACE would otherwise read other processes' memory and environment, and
    CAP_DAC_OVERRIDE ignore file permissions.  Emptying the bounding set keeps an exec from
    granting them again."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    for capability in range(_LAST_CAPABILITY + 1):
        libc.prctl(_PR_CAPBSET_DROP, capability, 0, 0, 0)  # EINVAL past the last one this kernel has

    class _Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class _Data(ctypes.Structure):
        _fields_ = [
            ("effective", ctypes.c_uint32),
            ("permitted", ctypes.c_uint32),
            ("inheritable", ctypes.c_uint32),
        ]

    header = _Header(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3: two data structs
    data = (_Data * 2)()
    if libc.capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capset")


def _loaders() -> list[str]:
    """The ELF interpreter(s): executing any program opens it with exec rights too."""
    found = glob.glob("/lib*/ld-linux*.so*") + glob.glob("/lib/*/ld-linux*.so*") + glob.glob("/lib*/ld-musl*")
    return sorted({os.path.realpath(path) for path in found})


def landlock_rules(profile: dict[str, Any], program: str) -> list[tuple[str, int]]:
    from nexus_desktop.sandbox import landlock as ll

    rules = [(path, ll.READ) for path in profile.get("read", ())]
    rules += [(path, ll.WRITE) for path in profile.get("write", ())]
    rules += [(path, ll.DEVICE) for path in profile.get("devices", ())]
    runnable = [os.path.realpath(program), *_loaders(), *profile.get("execute", ())]
    rules += [(path, ll.RUN) for path in runnable]
    return rules


def apply(profile: dict[str, Any], program: str) -> None:
    """Apply ``profile`` to this process; exits with 77 when a required layer fails."""
    from nexus_desktop.sandbox import landlock, seccomp

    required = set(profile.get("required", ()))
    try:
        _limits(profile)
    except (OSError, ValueError) as error:
        _fail(f"could not set resource limits ({error})")
    if required:
        try:
            drop_capabilities()
        except OSError as error:
            _fail(f"could not drop capabilities ({error})")
    if "landlock" in required:
        network = bool(profile.get("network"))
        # In its own network namespace a child without network reaches nothing; without one,
        # an empty port list means no TCP at all.
        isolated = "netns" in required and not network
        ports = None if isolated else [int(port) for port in profile.get("connect_ports", ())]
        try:
            landlock.restrict(landlock_rules(profile, program), connect_ports=ports)
        except OSError as error:
            _fail(f"Landlock could not be applied ({error})")
    if "seccomp" in required:
        try:
            namespaces = "netns" in required
            inet = bool(profile.get("network")) or namespaces  # a private loopback is harmless
            # Without bwrap's read-only root, metadata changes by path need refusing here.
            seccomp.apply(network=inet, subprocess=bool(profile.get("subprocess")), metadata=not namespaces)
        except OSError as error:
            _fail(f"the seccomp filter could not be applied ({error})")


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        _fail("usage: <profile json> <program> [args...]")
    profile = json.loads(argv[0])
    command = argv[1:]
    apply(profile, command[0])
    try:
        os.execv(command[0], command)
    except OSError as error:
        _fail(f"could not start {command[0]} ({error})")
    sys.exit(REFUSED_EXIT_CODE)  # not reached
