"""How a module's process is started: its command line and its bare environment.

The process itself is a ``children.supervised.ChildProcess`` under the profile of
``containment``; this file only knows what is particular to modules.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from nexus_desktop.modules.runtime.child import BOOTSTRAP
from nexus_desktop.sandbox.profile import import_root


def child_command(mode: str, python: str = sys.executable) -> list[str]:
    # -B: no byte-code written (it would change the module's hash); -I: no user site, no PYTHON* env.
    return [python, "-B", "-I", "-c", BOOTSTRAP, import_root(), mode]


def child_environment(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """A bare environment: no D-Bus address, no display, no tokens from the user's shell."""
    env = {
        "PATH": os.defpath,
        "HOME": str(home),
        "PYTHONIOENCODING": "utf-8",
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        **(extra or {}),
    }
    if sys.platform == "win32":
        env["SYSTEMROOT"] = os.environ.get("SYSTEMROOT", "")
    return env
