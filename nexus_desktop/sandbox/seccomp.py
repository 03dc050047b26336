"""seccomp: a small BPF filter that takes away system calls a contained program never needs.

What it refuses (``EPERM`` unless said otherwise):
- reaching other processes: ptrace, process_vm_*, kcmp, pidfd_open/getfd/send_signal;
- leaving the sandbox: unshare, setns, clone with namespace flags, mount and friends, chroot;
- kernel attack surface a desktop module has no use for: bpf, perf_event_open, userfaultfd,
  io_uring (its socket and file operations bypass seccomp), keyrings, modules, kexec, handles;
- leaving its process group, so the host can always end everything it started: setsid, setpgid;
- typing into the terminal: ioctl TIOCSTI / TIOCLINUX;
- sockets other than what the profile allows (``EACCES``): no AF_UNIX sockets (D-Bus, the
  keyring, X11), no netlink or raw sockets; plain TCP streams (protocol 0 or 6) only when the
  profile has network: MPTCP (262) would fall back to TCP where Landlock's port rules do not look;
- with ``metadata`` (where no read-only mount protects the file system): changing permissions,
  owners, times and extended attributes by path, which Landlock does not cover;
- without subprocess permission: fork, vfork and clone without CLONE_THREAD (threads still work);
- clone3 answers ENOSYS, so the C library falls back to clone, whose flags the filter can see.

Only the standard library is used: ``enter`` calls this just before the contained program runs.
Architectures: x86_64 and aarch64; elsewhere ``supported()`` is False and nothing is applied.
"""

from __future__ import annotations

import ctypes
import errno
import platform
import struct

_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
_DENIED = {
    # name: (x86_64, aarch64), from the kernel's unistd headers
    "ptrace": (101, 117),
    "process_vm_readv": (310, 270),
    "process_vm_writev": (311, 271),
    "kcmp": (312, 272),
    "pidfd_open": (434, 434),
    "pidfd_getfd": (438, 438),
    "pidfd_send_signal": (424, 424),
    "unshare": (272, 97),
    "setns": (308, 268),
    "mount": (165, 40),
    "umount2": (166, 39),
    "pivot_root": (155, 41),
    "chroot": (161, 51),
    "open_tree": (428, 428),
    "move_mount": (429, 429),
    "fsopen": (430, 430),
    "fsconfig": (431, 431),
    "fsmount": (432, 432),
    "fspick": (433, 433),
    "mount_setattr": (442, 442),
    "bpf": (321, 280),
    "perf_event_open": (298, 241),
    "userfaultfd": (323, 282),
    "kexec_load": (246, 104),
    "kexec_file_load": (320, 294),
    "init_module": (175, 105),
    "finit_module": (313, 273),
    "delete_module": (176, 106),
    "keyctl": (250, 219),
    "add_key": (248, 217),
    "request_key": (249, 218),
    "swapon": (167, 224),
    "swapoff": (168, 225),
    "reboot": (169, 142),
    "acct": (163, 89),
    "quotactl": (179, 60),
    "io_uring_setup": (425, 425),
    "io_uring_enter": (426, 426),
    "io_uring_register": (427, 427),
    "name_to_handle_at": (303, 264),
    "open_by_handle_at": (304, 265),
    "lookup_dcookie": (212, 18),
    "syslog": (103, 116),
    "vhangup": (153, 58),
    "setsid": (112, 157),
    "setpgid": (109, 154),
}
_X86_ONLY_DENIED = {"iopl": 172, "ioperm": 173, "uselib": 134}
# Changing a file's metadata by path; the fd-based calls need a file opened for writing first.
_METADATA: dict[str, tuple[int | None, int | None]] = {
    "chmod": (90, None),
    "fchmodat": (268, 53),
    "fchmodat2": (452, 452),  # Linux 6.6
    "chown": (92, None),
    "lchown": (94, None),
    "fchownat": (260, 54),
    "utime": (132, None),
    "utimes": (235, None),
    "futimesat": (261, None),
    "setxattr": (188, 5),
    "lsetxattr": (189, 6),
    "removexattr": (197, 14),
    "lremovexattr": (198, 15),
    "setxattrat": (463, 463),  # Linux 6.13
    "removexattrat": (466, 466),
}
_UTIMENSAT = (280, 88)  # by path unless its path argument is NULL (then it is futimens)
_CALLS = {
    "x86_64": {"socket": 41, "clone": 56, "clone3": 435, "ioctl": 16, "fork": 57, "vfork": 58},
    "aarch64": {"socket": 198, "clone": 220, "clone3": 435, "ioctl": 29},
}
_X32_BIT = 0x40000000

_AF_INET, _AF_INET6, _SOCK_STREAM, _SOCK_TYPE_MASK = 2, 10, 1, 0xF
_IPPROTO_IP, _IPPROTO_TCP = 0, 6
_CLONE_THREAD = 0x00010000
_CLONE_NAMESPACES = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000
_TIOCSTI, _TIOCLINUX = 0x5412, 0x541C

# BPF: load word, jump if equal / if any bit set, AND, return.
_LD_W_ABS, _JEQ_K, _JSET_K, _JGE_K, _AND_K, _RET_K = 0x20, 0x15, 0x45, 0x35, 0x54, 0x06
_RET_ALLOW = 0x7FFF0000
_RET_KILL_PROCESS = 0x80000000
_OFFSET_NR, _OFFSET_ARCH = 0, 4
_PR_SET_NO_NEW_PRIVS, _PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 38, 22, 2


def _arg(index: int) -> int:
    return 16 + 8 * index  # the low 32 bits of argument ``index`` (little-endian)


def _errno(number: int) -> int:
    return 0x00050000 | number


def architecture() -> str:
    return platform.machine().lower()


def supported() -> bool:
    return architecture() in _AUDIT_ARCH and platform.system() == "Linux"


Instruction = tuple[int, int, int, int]


def program(*, network: bool, subprocess: bool, metadata: bool = False) -> list[Instruction]:
    """The filter as BPF instructions (code, jump-if-true, jump-if-false, constant)."""
    arch = architecture()
    column = 0 if arch == "x86_64" else 1
    calls = _CALLS[arch]
    denied = {name: numbers[column] for name, numbers in _DENIED.items()}
    if metadata:
        for name, numbers in _METADATA.items():
            number = numbers[column]
            if number is not None:  # aarch64 has only the *at forms
                denied[name] = number
    if arch == "x86_64":
        denied.update(_X86_ONLY_DENIED)
        if not subprocess:
            denied["fork"], denied["vfork"] = calls["fork"], calls["vfork"]
    eperm = _errno(errno.EPERM)
    eacces = _errno(errno.EACCES)

    code: list[Instruction] = [
        (_LD_W_ABS, 0, 0, _OFFSET_ARCH),
        (_JEQ_K, 1, 0, _AUDIT_ARCH[arch]),
        (_RET_K, 0, 0, _RET_KILL_PROCESS),  # a foreign ABI would read different numbers
        (_LD_W_ABS, 0, 0, _OFFSET_NR),
    ]
    if arch == "x86_64":
        code += [(_JGE_K, 0, 1, _X32_BIT), (_RET_K, 0, 0, eperm)]
    for number in sorted(set(denied.values())):
        code += [(_JEQ_K, 0, 1, number), (_RET_K, 0, 0, eperm)]
    code += [(_JEQ_K, 0, 1, calls["clone3"]), (_RET_K, 0, 0, _errno(errno.ENOSYS))]

    # Each block below ends in a return, so falling past it means "not this call".
    socket_block: list[Instruction] = [(_LD_W_ABS, 0, 0, _arg(0))]
    if network:
        socket_block += [
            (_JEQ_K, 1, 0, _AF_INET),
            (_JEQ_K, 0, 7, _AF_INET6),
            (_LD_W_ABS, 0, 0, _arg(1)),
            (_AND_K, 0, 0, _SOCK_TYPE_MASK),
            (_JEQ_K, 0, 4, _SOCK_STREAM),
            (_LD_W_ABS, 0, 0, _arg(2)),
            (_JEQ_K, 1, 0, _IPPROTO_IP),
            (_JEQ_K, 0, 1, _IPPROTO_TCP),
            (_RET_K, 0, 0, _RET_ALLOW),
        ]
    socket_block.append((_RET_K, 0, 0, eacces))
    code += [(_JEQ_K, 0, len(socket_block), calls["socket"]), *socket_block]

    clone_block: list[Instruction] = [
        (_LD_W_ABS, 0, 0, _arg(0)),
        (_JSET_K, 0, 1, _CLONE_NAMESPACES),
        (_RET_K, 0, 0, eperm),
    ]
    if not subprocess:
        clone_block += [(_JSET_K, 1, 0, _CLONE_THREAD), (_RET_K, 0, 0, eperm)]
    clone_block.append((_RET_K, 0, 0, _RET_ALLOW))
    code += [(_JEQ_K, 0, len(clone_block), calls["clone"]), *clone_block]

    ioctl_block: list[Instruction] = [
        (_LD_W_ABS, 0, 0, _arg(1)),
        (_JEQ_K, 1, 0, _TIOCSTI),
        (_JEQ_K, 0, 1, _TIOCLINUX),
        (_RET_K, 0, 0, eperm),
        (_RET_K, 0, 0, _RET_ALLOW),
    ]
    code += [(_JEQ_K, 0, len(ioctl_block), calls["ioctl"]), *ioctl_block]
    if metadata:
        utimensat_block: list[Instruction] = [
            (_LD_W_ABS, 0, 0, _arg(1)),
            (_JEQ_K, 0, 2, 0),  # low half NULL ...
            (_LD_W_ABS, 0, 0, _arg(1) + 4),
            (_JEQ_K, 1, 0, 0),  # ... and high half NULL: futimens on an open file
            (_RET_K, 0, 0, eperm),
            (_RET_K, 0, 0, _RET_ALLOW),
        ]
        code += [(_JEQ_K, 0, len(utimensat_block), _UTIMENSAT[column]), *utimensat_block]
    code.append((_RET_K, 0, 0, _RET_ALLOW))
    return code


def apply(*, network: bool, subprocess: bool, metadata: bool = False) -> None:
    """Install the filter on this thread for good (it survives exec).  Raises OSError."""
    code = program(network=network, subprocess=subprocess, metadata=metadata)
    raw = b"".join(struct.pack("=HBBI", *instruction) for instruction in code)
    filters = ctypes.create_string_buffer(raw, len(raw))

    class _Program(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    prog = _Program(len(code), ctypes.addressof(filters))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
    if libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP)")
