"""The system tray icon (Show/Hide, Quit), where the desktop has a tray; offscreen it does not."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMainWindow, QMenu, QSystemTrayIcon

from nexus_desktop.ui.theme import app_icon


class Tray:
    def __init__(self, window: QMainWindow, on_quit: Callable[[], object]) -> None:
        self.window = window
        self._told_hidden = False
        self.icon = QSystemTrayIcon(app_icon(), window)
        self.icon.setToolTip("NEXUS Desktop")
        self.menu = QMenu()
        self.toggle_action = QAction("Hide", self.menu)
        self.toggle_action.triggered.connect(self.toggle_window)
        self.quit_action = QAction("Quit", self.menu)
        self.quit_action.triggered.connect(lambda: on_quit())
        self.menu.addAction(self.toggle_action)
        self.menu.addSeparator()
        self.menu.addAction(self.quit_action)
        self.menu.aboutToShow.connect(self._update_label)
        self.icon.setContextMenu(self.menu)
        self.icon.activated.connect(self._activated)
        self.icon.show()

    @staticmethod
    def available() -> bool:
        return QSystemTrayIcon.isSystemTrayAvailable()

    @classmethod
    def create(cls, window: QMainWindow, on_quit: Callable[[], object]) -> Tray | None:
        """A tray icon, or None where the desktop has no tray (then closing the window quits)."""
        return cls(window, on_quit) if cls.available() else None

    def toggle_window(self) -> None:
        if self.window.isVisible() and not self.window.isMinimized():
            self.window.hide()
        else:
            self.window.showNormal()
            self.window.raise_()
            self.window.activateWindow()

    def notify_hidden(self) -> None:
        if not self._told_hidden and self.icon.supportsMessages():
            self.icon.showMessage(
                "NEXUS Desktop is still running",
                "It is in the tray; choose Quit there to close it.",
                app_icon(),
            )
        self._told_hidden = True

    def _update_label(self) -> None:
        self.toggle_action.setText("Hide" if self.window.isVisible() else "Show")

    def _activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason in (QSystemTrayIcon.ActivationReason.Trigger, QSystemTrayIcon.ActivationReason.DoubleClick):
            self.toggle_window()

    def hide(self) -> None:
        self.icon.hide()
