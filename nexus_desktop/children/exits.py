"""One way to say how a child process ended, for every kind of child."""

from __future__ import annotations

import signal

CONTAINMENT_REFUSED = 77
"""``sandbox.enter`` could not apply a layer the launcher required, so the program never ran
(sysexits' EX_NOPERM; not 126, which shells use for "cannot execute")."""


def exit_signal(returncode: int) -> str | None:
    """The name of the signal that ended a child (``SIGSEGV``...), or None for a normal exit."""
    if returncode >= 0:
        return None
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def describe_exit(returncode: int) -> str:
    """Completes "The model process ..." / "The module weather ..." / "The trainer ..."."""
    name = exit_signal(returncode)
    if name is None:
        if returncode == CONTAINMENT_REFUSED:
            return "could not be contained as its approval requires, so it did not run"
        return f"exited with code {returncode}"
    if name == "SIGKILL":
        return "was killed (SIGKILL, often the system running out of memory)"
    if name == "SIGXCPU":
        return "used up its CPU time"
    if name == "SIGSYS":
        return "was stopped by the sandbox (SIGSYS: a forbidden system call)"
    return f"crashed ({name})"
