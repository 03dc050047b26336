"""What both bundle specs share: the standard library as hidden imports, and the interpreter options.

Loaded by the .spec files with ``exec`` (PyInstaller runs a spec as a script, not as a module).
"""

import importlib.util
import sys
import sysconfig
from pathlib import Path

# Not shipped: the test suites, the IDE, Tk (no Tcl/Tk in the bundle) and the packaging tools.
STDLIB_LEFT_OUT = {
    "test",
    "idlelib",
    "tkinter",
    "_tkinter",
    "turtle",
    "turtledemo",
    "lib2to3",
    "ensurepip",
    "distutils",
    "antigravity",
    "this",
    "__phello__",
    "__hello__",
}
# The children read JSON lines over pipes: the executables run unbuffered, like `python -u`.
PYTHON_OPTIONS = [("u", None, "OPTION")]


def stdlib_modules():
    """Every module of the standard library, packages' submodules included.  Modules run
    third-party plugin code, which may import any of it; a bundle has no other Python to ask."""
    root = Path(sysconfig.get_paths()["stdlib"])
    names = []
    for name in sorted(sys.stdlib_module_names):
        if name in STDLIB_LEFT_OUT or importlib.util.find_spec(name) is None:
            continue  # left out, or another platform's (winreg on Linux) or not built here (_gdbm)
        names.append(name)
        package = root / name
        if not (package / "__init__.py").is_file():
            continue
        for file in sorted(package.rglob("*.py")):
            parts = file.relative_to(root).with_suffix("").parts
            if {"test", "tests", "idle_test"} & set(parts):
                continue
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names
