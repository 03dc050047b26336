"""Game mode in the status line: ``● Game mode: model unloaded while you play``.

A badge beside the model's state, shown only in game mode; it follows ``GameMode.listeners``.
Its tooltip says what started game mode and how to turn it off.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import shiboken6
from PySide6.QtWidgets import QHBoxLayout, QLabel, QWidget

from nexus_desktop.ui.widgets import set_style_property

if TYPE_CHECKING:
    from nexus_desktop.gaming.controller import GameMode, GameState
    from nexus_desktop.ui.model_bar import StatusLine

TURN_OFF = "Turn it off from the tray, in Settings → Game mode, or with: nexus game-mode off"


def game_status_text(state: GameState) -> str:
    """The status line's words for game mode; empty when it is off."""
    if state.phase == "entering":
        return "Game mode: finishing the reply, then freeing the GPU…"
    if state.phase == "on":
        if state.action == "cpu":
            return "Game mode: chatting on the CPU"
        return "Game mode: model unloaded while you play"
    return ""


class GameModeBadge(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 8, 0)
        row.setSpacing(6)
        self.dot = QLabel("●")
        self.dot.setObjectName("StatusDot")
        set_style_property(self.dot, "state", "loading")  # the theme's warning colour
        self.label = QLabel()
        self.label.setAccessibleName("Game mode status")
        row.addWidget(self.dot)
        row.addWidget(self.label)
        self.setAccessibleName("Game mode")
        self.hide()

    @classmethod
    def attach(cls, status_line: StatusLine, game_mode: GameMode) -> GameModeBadge:
        """A badge in ``status_line``, after the model's state, following ``game_mode``."""
        badge = cls(status_line)
        layout = status_line.layout()
        assert isinstance(layout, QHBoxLayout)
        layout.insertWidget(layout.indexOf(status_line.state_label) + 1, badge)

        def follow(state: GameState) -> None:
            if shiboken6.isValid(badge):  # the window may have closed first
                badge.show_state(state)

        game_mode.listeners.subscribe(follow)
        badge.show_state(game_mode.state)
        return badge

    def show_state(self, state: GameState) -> None:
        text = game_status_text(state)
        self.label.setText(text)
        self.setToolTip(f"{state.reason}. {TURN_OFF}" if state.reason else TURN_OFF)
        self.setVisible(bool(text))
