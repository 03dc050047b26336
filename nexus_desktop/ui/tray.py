"""The system tray icon (Show/Hide, Game mode, Quit), where the desktop has a tray; offscreen it
does not.  In game mode the icon carries a dot and its tooltip says so."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import shiboken6
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QAction, QColor, QIcon, QPainter, QPixmap
from PySide6.QtWidgets import QMainWindow, QMenu, QSystemTrayIcon

from nexus_desktop.ui.palettes import COLORS
from nexus_desktop.ui.theme import app_icon, draw_logo

if TYPE_CHECKING:
    from nexus_desktop.core import AppCore
    from nexus_desktop.gaming.controller import GameState

IDLE_TOOLTIP = "NEXUS Desktop"


def game_mode_icon(size: int = 64) -> QIcon:
    """The app logo with a warning-coloured dot in its corner: game mode is on."""
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    draw_logo(painter, size)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(QColor(COLORS.warning))
    dot = size * 0.42
    painter.drawEllipse(QRectF(size - dot, size - dot, dot, dot))
    painter.end()
    return QIcon(pixmap)


class Tray:
    def __init__(self, window: QMainWindow, on_quit: Callable[[], object]) -> None:
        self.window = window
        self._core: AppCore | None = None
        self._told_hidden = False
        self.icon = QSystemTrayIcon(app_icon(), window)
        self.icon.setToolTip(IDLE_TOOLTIP)
        self.menu = QMenu()
        self.toggle_action = QAction("Hide", self.menu)
        self.toggle_action.triggered.connect(self.toggle_window)
        self.game_action = QAction("Game mode", self.menu)
        self.game_action.setCheckable(True)
        self.game_action.setToolTip("Unload the model (or move it to the CPU) while you play")
        self.game_action.setEnabled(False)  # until bind_game_mode
        self.quit_action = QAction("Quit", self.menu)
        self.quit_action.triggered.connect(lambda: on_quit())
        self.menu.addAction(self.toggle_action)
        self.menu.addAction(self.game_action)
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

    def bind_game_mode(self, core: AppCore) -> None:
        """The Game mode switch turns ``core``'s game mode on and off; the icon follows its state."""
        from nexus_desktop.ui.ops import QueryOp

        self._core = core

        def switch(on: bool) -> None:
            def not_saved(_error: BaseException) -> None:
                self.show_game_state(core.game_mode.state)  # the switch shows what holds

            QueryOp[None](
                parent=self.window, op=core.set_game_mode_switch(on), success=lambda _: None
            ).failure(not_saved).run_in_background()

        self.game_action.toggled.connect(switch)
        self.game_action.setEnabled(True)
        core.game_mode.listeners.subscribe(self.show_game_state)
        self.show_game_state(core.game_mode.state)

    def show_game_state(self, state: GameState) -> None:
        if not shiboken6.isValid(self.icon):
            return
        from nexus_desktop.ui.game_mode_view import game_status_text

        core = self._core
        if core is not None:
            self.game_action.blockSignals(True)  # showing the switch is not flipping it
            self.game_action.setChecked(core.settings.game_mode_manual)
            self.game_action.blockSignals(False)
        text = game_status_text(state)
        self.icon.setIcon(game_mode_icon() if text else app_icon())
        self.icon.setToolTip(f"{IDLE_TOOLTIP}: {text}" if text else IDLE_TOOLTIP)

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
