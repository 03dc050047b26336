"""Settings → Game mode: the switch, detection, what happens while a game runs, and keep-alive.

``load(settings)`` shows the saved values and what each probe saw at its last look;
``values()`` gives the fields for ``Settings``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtWidgets import QCheckBox, QComboBox, QFormLayout, QSpinBox, QWidget

from nexus_desktop.ui.widgets import help_label

if TYPE_CHECKING:
    from nexus_desktop.gaming.controller import GameMode
    from nexus_desktop.settings import Settings

ACTIONS = (
    ("unload", "Unload the model (chat waits until you stop)"),
    ("cpu", "Keep chatting, with the model on the CPU"),
)
NEVER = -1


class GameModeSection(QWidget):
    def __init__(self, game_mode: GameMode | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._game_mode = game_mode
        form = QFormLayout(self)
        form.setContentsMargins(20, 20, 20, 20)
        form.setHorizontalSpacing(18)
        form.setVerticalSpacing(10)

        self.manual = QCheckBox("Game mode now")
        self.manual.setAccessibleName("Game mode now")
        self.manual.setToolTip("The same switch as the tray's Game mode and nexus game-mode on|off")
        form.addRow("Switch", self.manual)
        self.detect = QCheckBox("Notice games by themselves")
        self.detect.setAccessibleName("Notice games by themselves")
        form.addRow("Detect", self.detect)
        self.probes = help_label("")
        self.probes.setAccessibleName("What the game detectors see")
        form.addRow("", self.probes)

        self.action = QComboBox()
        self.action.setAccessibleName("While a game runs")
        for key, caption in ACTIONS:
            self.action.addItem(caption, key)
        form.addRow("While a game runs", self.action)
        form.addRow(
            "",
            help_label(
                "Either way training and heavy scheduled tasks pause, and a reply being written "
                "finishes first. CPU chat is slower but leaves the GPU to the game."
            ),
        )

        self.keep_alive = QSpinBox()
        self.keep_alive.setAccessibleName("Unload an unused model after, in minutes")
        self.keep_alive.setRange(NEVER, 1440)
        self.keep_alive.setSuffix(" min")
        self.keep_alive.setSpecialValueText("Never")  # shown at the minimum, -1
        form.addRow("Unload when unused for", self.keep_alive)
        form.addRow(
            "",
            help_label(
                "As Ollama's keep_alive: 0 unloads after every reply, Never keeps it loaded. "
                "The next message loads it again."
            ),
        )

    def load(self, settings: Settings) -> None:
        self.manual.setChecked(settings.game_mode_manual)
        self.detect.setChecked(settings.game_mode_detect)
        self.action.setCurrentIndex(max(0, self.action.findData(settings.game_mode_action)))
        self.keep_alive.setValue(settings.keep_alive_minutes)
        self.probes.setText(self._probe_lines())

    def values(self) -> dict[str, object]:
        """The fields for ``Settings``."""
        return {
            "game_mode_manual": self.manual.isChecked(),
            "game_mode_detect": self.detect.isChecked(),
            "game_mode_action": self.action.currentData(),
            "keep_alive_minutes": self.keep_alive.value(),
        }

    def _probe_lines(self) -> str:
        """The detectors' last answers (game mode asks them every few seconds: no probe runs here)."""
        from nexus_desktop.gaming.probes import ManualSwitch, describe

        if self._game_mode is None or not self._game_mode.answers:
            return "The detectors have not looked yet."
        answers = [pair for pair in self._game_mode.answers if not isinstance(pair[0], ManualSwitch)]
        return "\n".join(describe(answers))
