"""The one launcher: every child NEXUS starts (model worker, modules, validation, trainer) starts
here, in its own session, under the containment its ``Profile`` describes.

::

    [bwrap <namespaces>] <python> -I -S -c ENTER <package parent> <profile> <command...>

``sandbox.enter`` applies resource limits, Landlock and seccomp and then executes the command;
``sandbox.support`` says which layers this machine can give; there is no way to start a child
outside this launcher's containment.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

from nexus_desktop.sandbox import bubblewrap
from nexus_desktop.sandbox.enter import ENTER
from nexus_desktop.sandbox.profile import Profile, package_dir
from nexus_desktop.sandbox.support import Support, detect

Pipe = int | IO[Any] | None


def interpreter() -> str:
    """The program that runs Python for the children: the app's own interpreter, or in a bundle
    (``sys.frozen``) its console executable ``nexus``, which behaves like one (nexus_desktop/frozen.py).
    Not the windowed ``nexus-desktop``: on Windows that one has no standard streams to talk over."""
    if not getattr(sys, "frozen", False):
        return sys.executable
    console = Path(sys.executable).with_name("nexus.exe" if sys.platform == "win32" else "nexus")
    return str(console) if console.is_file() else sys.executable


def contained_command(
    command: list[str], profile: Profile, *, support: Support | None = None, cwd: str | None = None
) -> list[str]:
    """``command`` wrapped in the layers ``profile`` needs and this machine offers."""
    if sys.platform == "win32":
        return command  # no exec there to hand over with; docs/security.md has the design
    support = support or detect()
    decided = {**profile.to_json(), "required": support.layers()}
    # The enter step runs from the app's own interpreter: only it is sure to have this package.
    inner = [
        interpreter(),
        "-I",
        "-S",
        "-c",
        ENTER,
        str(Path(package_dir()).parent),
        json.dumps(decided, separators=(",", ":")),
        *command,
    ]
    if support.namespaces:
        return bubblewrap.wrap(profile, inner, cwd=cwd)
    return inner


def launch(
    command: list[str],
    profile: Profile,
    *,
    env: dict[str, str],
    cwd: str | os.PathLike[str] | None = None,
    stdin: Pipe = subprocess.PIPE,
    stdout: Pipe = subprocess.PIPE,
    stderr: Pipe = subprocess.PIPE,
) -> subprocess.Popen[bytes]:
    """Start ``command`` contained by ``profile``, leading a session of its own.

    Its own session: Ctrl+C in a terminal reaches the app only, which stops its children in
    order, and ``kill_tree`` ends the child with everything it started.
    """
    where = os.fspath(cwd) if cwd is not None else None
    if command[0] == sys.executable:  # a Python child: in a bundle, the console executable runs it
        command = [interpreter(), *command[1:]]
    program = shutil.which(command[0], path=env.get("PATH", os.defpath))
    if program is None:
        # As Popen would: a missing program is an error here, not an exit code later.
        raise FileNotFoundError(errno.ENOENT, "No such program", command[0])
    full = contained_command([program, *command[1:]], profile, cwd=where)
    extra: dict[str, Any] = {}
    if sys.platform == "win32":
        extra["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP | subprocess.CREATE_NO_WINDOW
    else:
        extra["start_new_session"] = True
    return subprocess.Popen(full, stdin=stdin, stdout=stdout, stderr=stderr, env=env, cwd=where, **extra)


def exit_code(process: subprocess.Popen[bytes]) -> int | None:
    """The child's return code as if it had run unwrapped: a signal is a negative number.

    bwrap reports a command killed by signal N as exit status 128 + N.
    """
    code = process.returncode
    wrapped = isinstance(process.args, list) and process.args[:1] == [bubblewrap.binary()]
    if code is not None and wrapped and 128 < code <= 128 + 64:
        return -(code - 128)
    return code


def kill_tree(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the child and everything in its session.

    Under bwrap the child is the sandbox's outer process: its death ends the PID namespace, and
    the kernel kills every process inside.  Without namespaces the seccomp filter keeps every
    descendant in the child's process group, which this kills.
    """
    if sys.platform == "win32":
        process.kill()
        return
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # all gone already
