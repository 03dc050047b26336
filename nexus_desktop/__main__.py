"""``python -m nexus_desktop`` starts the desktop app."""

from __future__ import annotations

import sys


def main() -> int:
    # Imported here so that importing the package never pulls in Qt.
    from nexus_desktop.ui.app import main as run_app

    return run_app()


if __name__ == "__main__":
    sys.exit(main())
