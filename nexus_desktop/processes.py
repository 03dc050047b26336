"""Small facts about child processes that the model worker, modules and the trainer all need."""

from __future__ import annotations

import signal
import subprocess
import sys
from typing import Any


def exit_signal(returncode: int) -> str | None:
    """The name of the signal that ended a child (``SIGSEGV``...), or None for a normal exit."""
    if returncode >= 0:
        return None
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def separate_session() -> dict[str, Any]:
    """Popen arguments that start a child in its own process group / session.

    Ctrl+C in a terminal must reach the app only, which then stops its children in order, and a
    child's whole tree can be killed at once.
    """
    if sys.platform == "win32":
        return {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP | subprocess.CREATE_NO_WINDOW}
    return {"start_new_session": True}
