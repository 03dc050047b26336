"""Prints the Qt platform in use as one JSON line; run by ``nexus doctor`` in a child process."""

from __future__ import annotations

import json

from PySide6 import __version__ as pyside_version
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication, QSystemTrayIcon


def main() -> None:
    app = QApplication([])
    print(
        json.dumps(
            {
                "platform": QGuiApplication.platformName(),
                "qt_version": pyside_version,
                "tray": QSystemTrayIcon.isSystemTrayAvailable(),
            }
        )
    )
    app.quit()


if __name__ == "__main__":
    main()
