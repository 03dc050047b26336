"""The entry point of the PyInstaller bundle's executables (installers/bundle/).

In a bundle ``sys.executable`` is the bundle's own program, not a Python interpreter, yet every
child NEXUS starts runs ``sys.executable -I -S -c CODE ARGS`` or ``sys.executable -m MODULE ARGS``
(children/launch.py, the model worker, modules, the trainer's own checks).  So each executable
behaves like the interpreter for those command lines, as multiprocessing's ``freeze_support``
does for its own, and otherwise runs the app it is named after::

    nexus-desktop [ARGS]          the window            (nexus_desktop.ui.app:main)
    nexus [ARGS]                  the command line      (nexus_desktop.cli:main)
    nexus-trainer -m training.train JOB.json            (only the interpreter part)

Only the standard library is imported before the choice: a child pays for nothing it does not run.
"""

from __future__ import annotations

import importlib
import os
import runpy
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# Interpreter options without a value that the children's command lines use.  Here they change
# nothing: a bundle has no site-packages, no PYTHON* variables are read, no bytecode is written,
# and its executables are built unbuffered.
_PLAIN_OPTIONS = frozenset("BEIOSsuq")

APPS = {
    "nexus-desktop": "nexus_desktop.ui.app:main",
    "nexus": "nexus_desktop.cli:main",
}


@dataclass(frozen=True)
class Interpreted:
    """A Python-style command line: run ``code`` (``-c``) or the module ``module`` (``-m``)."""

    code: str | None
    module: str | None
    args: list[str]


def interpreter_command(argv: Sequence[str]) -> Interpreted | None:
    """``argv[1:]`` read as Python reads it, when it starts like ``[-I -S ...] -c CODE`` or
    ``-m MODULE``; None for anything else (the app's own arguments, ``-h``, ``--version``)."""
    words = list(argv[1:])
    while words and words[0].startswith("-") and len(words[0]) > 1:
        flags = words.pop(0)[1:]
        if flags in ("c", "m"):
            if not words:
                return None
            target = words.pop(0)
            return Interpreted(target if flags == "c" else None, target if flags == "m" else None, words)
        if not set(flags) <= _PLAIN_OPTIONS:
            return None
    return None


def run_interpreted(command: Interpreted) -> None:
    """Run it as ``python -c`` or ``python -m`` would, ``sys.argv`` included."""
    if command.code is not None:
        sys.argv = ["-c", *command.args]
        namespace = {"__name__": "__main__", "__builtins__": __builtins__}
        exec(compile(command.code, "<string>", "exec"), namespace)
    else:
        assert command.module is not None
        sys.argv = [command.module, *command.args]  # runpy puts the module's file in argv[0]
        # What `python -m` itself calls: a module that cannot be found is one line and exit 1.
        runpy._run_module_as_main(command.module, alter_argv=True)  # type: ignore[attr-defined]


def app_for(executable: str, apps: Mapping[str, str] = APPS) -> Callable[[], int | None] | None:
    """The ``main`` of the app ``executable`` is named after, or None."""
    target = apps.get(Path(executable).stem)
    if target is None:
        return None
    module, _, function = target.partition(":")
    main: Callable[[], int | None] = getattr(importlib.import_module(module), function)
    return main


def restore_library_path() -> None:
    """The bootloader points LD_LIBRARY_PATH at the bundle's libraries; programs this process starts
    (bwrap, nvidia-smi, a browser) must load the system's own, as PyInstaller's docs advise.
    Already-loaded libraries are not affected: the dynamic loader reads the variable at start only."""
    original = os.environ.pop("LD_LIBRARY_PATH_ORIG", None)
    if original is not None:
        os.environ["LD_LIBRARY_PATH"] = original
    else:
        os.environ.pop("LD_LIBRARY_PATH", None)


def main() -> None:
    if getattr(sys, "frozen", False) and sys.platform.startswith("linux"):
        restore_library_path()
    if "--multiprocessing-fork" in sys.argv:  # a spawned multiprocessing child (Windows, macOS)
        import multiprocessing

        multiprocessing.freeze_support()
    command = interpreter_command(sys.argv)
    if command is not None:
        run_interpreted(command)
        return
    app = app_for(sys.executable)
    if app is None:
        name = Path(sys.executable).name
        sys.exit(f"{name} runs Python command lines only: {name} -m MODULE [ARGS] or -c CODE [ARGS]")
    sys.exit(app())
