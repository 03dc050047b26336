"""The project's build backend: setuptools', with one step added to building the package.

A wheel carries ``resources/`` and ``plugins/`` inside the ``nexus_desktop`` package, where
``paths.resources_dir()`` and ``modules.discovery`` look when the app is installed (in a checkout
they sit beside the package).  pyproject.toml names this module as the backend (``backend-path``)
and ``BuildWithAppData`` as setuptools' ``build_py``, so the top level of the project keeps only
pyproject.toml.  Build from a checkout: an sdist does not carry the two folders.
"""

import shutil
from pathlib import Path

from setuptools.build_meta import *  # noqa: F403  (the PEP 517 hooks, unchanged)
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parents[2]
DATA_FOLDERS = ("resources", "plugins")


class BuildWithAppData(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install runs from the checkout, which has them already
        for folder in DATA_FOLDERS:
            source = ROOT / folder
            if not source.is_dir():
                raise SystemExit(f"{source} is missing: build NEXUS Desktop from a checkout of the project.")
            target = Path(self.build_lib) / "nexus_desktop" / folder
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
