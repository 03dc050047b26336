"""Landlock: the kernel's unprivileged file, TCP-port and scope rules, applied to this process.

Rules only ever tighten: once ``restrict`` returns, this process and everything it starts or
executes keep them, whatever the code that runs next does.  Only the standard library is used,
because ``enter`` calls this before the contained program runs.

ABI versions (``abi()``): 1 files, 2 renames across folders, 3 truncate, 4 TCP bind/connect
ports, 5 device ioctls, 6 signal and abstract-unix-socket scoping.
"""

from __future__ import annotations

import ctypes
import os
import struct
from collections.abc import Iterable

_CREATE_RULESET, _ADD_RULE, _RESTRICT_SELF = 444, 445, 446  # the same numbers on every architecture
_CREATE_RULESET_VERSION = 1 << 0
_RULE_PATH_BENEATH, _RULE_NET_PORT = 1, 2
_PR_SET_NO_NEW_PRIVS = 38

EXECUTE = 1 << 0
WRITE_FILE = 1 << 1
READ_FILE = 1 << 2
READ_DIR = 1 << 3
REMOVE_DIR = 1 << 4
REMOVE_FILE = 1 << 5
MAKE_CHAR = 1 << 6
MAKE_DIR = 1 << 7
MAKE_REG = 1 << 8
MAKE_SOCK = 1 << 9
MAKE_FIFO = 1 << 10
MAKE_BLOCK = 1 << 11
MAKE_SYM = 1 << 12
REFER = 1 << 13  # ABI 2
TRUNCATE = 1 << 14  # ABI 3
IOCTL_DEV = 1 << 15  # ABI 5
_FILE_ONLY = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV

NET_BIND_TCP = 1 << 0  # ABI 4
NET_CONNECT_TCP = 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0  # ABI 6
SCOPE_SIGNAL = 1 << 1

READ = READ_FILE | READ_DIR
RUN = READ | EXECUTE
DEVICE = READ_FILE | WRITE_FILE | IOCTL_DEV
WRITE = (
    READ
    | WRITE_FILE
    | REMOVE_DIR
    | REMOVE_FILE
    | MAKE_DIR
    | MAKE_REG
    | MAKE_FIFO
    | MAKE_SYM
    | REFER
    | TRUNCATE
)


class LandlockError(OSError):
    """The kernel refused to set up a rule set (or has no Landlock)."""


def _failed(what: str) -> LandlockError:
    number = ctypes.get_errno()
    return LandlockError(number, f"{what}: {os.strerror(number)}")


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


def abi() -> int:
    """The Landlock ABI this kernel offers; 0 when it has none (or it is switched off)."""
    if not hasattr(os, "uname") or os.uname().sysname != "Linux":
        return 0
    try:
        version = _libc().syscall(_CREATE_RULESET, None, ctypes.c_size_t(0), _CREATE_RULESET_VERSION)
    except (OSError, AttributeError):
        return 0
    return max(int(version), 0)


def _handled_fs(version: int) -> int:
    handled = (1 << 13) - 1  # EXECUTE .. MAKE_SYM
    if version >= 2:
        handled |= REFER
    if version >= 3:
        handled |= TRUNCATE
    if version >= 5:
        handled |= IOCTL_DEV
    return handled


def restrict(
    rules: Iterable[tuple[str, int]],
    *,
    connect_ports: Iterable[int] | None = None,
    scope: bool = True,
) -> int:
    """Allow only ``rules`` (path, access bits) from now on; returns the ABI used.

    ``connect_ports``: None leaves TCP alone (a network namespace already isolates it); a list,
    even an empty one, allows TCP connects to those ports only and no listening at all.
    ``scope``: no signals to, and no abstract unix sockets of, processes outside this sandbox.
    Paths that do not exist are skipped.  Raises ``LandlockError`` when the kernel refuses.
    """
    version = abi()
    if version < 1:
        raise LandlockError("this kernel has no Landlock")
    libc = _libc()
    handled_fs = _handled_fs(version)
    handled_net = NET_BIND_TCP | NET_CONNECT_TCP if connect_ports is not None and version >= 4 else 0
    scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if scope and version >= 6 else 0
    attr = struct.pack("=QQQ", handled_fs, handled_net, scoped)
    size = 24 if version >= 6 else 16 if version >= 4 else 8  # the struct grew with the ABI
    buffer = ctypes.create_string_buffer(attr[:size], size)
    ruleset = libc.syscall(_CREATE_RULESET, buffer, ctypes.c_size_t(size), 0)
    if ruleset < 0:
        raise _failed("landlock_create_ruleset")
    try:
        for path, access in rules:
            _add_path(libc, ruleset, path, access & handled_fs)
        for port in connect_ports or ():
            rule = ctypes.create_string_buffer(struct.pack("=QQ", NET_CONNECT_TCP, port), 16)
            if libc.syscall(_ADD_RULE, ruleset, _RULE_NET_PORT, rule, 0) < 0:
                raise _failed(f"landlock port rule {port}")
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise _failed("prctl(PR_SET_NO_NEW_PRIVS)")
        if libc.syscall(_RESTRICT_SELF, ruleset, 0) < 0:
            raise _failed("landlock_restrict_self")
    finally:
        os.close(ruleset)
    return version


def _add_path(libc: ctypes.CDLL, ruleset: int, path: str, access: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # nothing there to allow
    try:
        if not os.path.isdir(path):
            access &= _FILE_ONLY  # directory rights on a file are invalid
        if not access:
            return
        rule = ctypes.create_string_buffer(struct.pack("=Qi", access, fd), 12)
        if libc.syscall(_ADD_RULE, ruleset, _RULE_PATH_BENEATH, rule, 0) < 0:
            raise _failed(f"landlock rule for {path}")
    finally:
        os.close(fd)
