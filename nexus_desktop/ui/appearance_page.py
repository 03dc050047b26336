"""Settings → Appearance: the theme and the text size, shown on the whole app as they are changed.

A change is a preview: the dialog's Save keeps it (``values()`` go into the settings), and
Cancel puts back what was in use when the dialog opened (``revert()``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QComboBox, QFormLayout, QHBoxLayout, QLabel, QSlider, QWidget

from nexus_desktop.ui import theme
from nexus_desktop.ui.widgets import help_label

if TYPE_CHECKING:
    from nexus_desktop.settings import Settings

THEME_CHOICES = (
    ("system", "Follow the system"),
    ("dark", "Dark"),
    ("light", "Light"),
)
SCALE_STEP = 5


class AppearancePage(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._saved = (theme.chosen_theme(), theme.font_scale())
        form = QFormLayout(self)
        form.setContentsMargins(20, 20, 20, 20)
        form.setHorizontalSpacing(18)
        form.setVerticalSpacing(10)

        self.theme_box = QComboBox()
        self.theme_box.setAccessibleName("Theme")
        for key, caption in THEME_CHOICES:
            self.theme_box.addItem(caption, key)
        self.theme_box.currentIndexChanged.connect(lambda _index: self._preview_soon())
        form.addRow("Theme", self.theme_box)
        form.addRow("", help_label("Follow the system switches between light and dark with your desktop."))

        low, high = theme.FONT_SCALE_RANGE
        self.scale_slider = QSlider(Qt.Orientation.Horizontal)
        self.scale_slider.setAccessibleName("Text size")
        self.scale_slider.setToolTip(f"Text size, {low}% to {high}%")
        self.scale_slider.setRange(low, high)
        self.scale_slider.setSingleStep(SCALE_STEP)
        self.scale_slider.setPageStep(2 * SCALE_STEP)
        self.scale_slider.setTickInterval(10)
        self.scale_slider.setTickPosition(QSlider.TickPosition.TicksBelow)
        self.scale_label = QLabel()
        self.scale_label.setMinimumWidth(self.scale_label.fontMetrics().horizontalAdvance("150 %") + 8)
        self.scale_slider.valueChanged.connect(self._scale_moved)
        row = QHBoxLayout()
        row.addWidget(self.scale_slider, 1)
        row.addWidget(self.scale_label)
        form.addRow("Text size", row)
        form.addRow("", help_label("Every text in the app grows or shrinks with it, the chat included."))

        # Dragging the slider re-styles the whole app once it rests, not at every step.
        self._preview_timer = QTimer(self)
        self._preview_timer.setSingleShot(True)
        self._preview_timer.setInterval(150)
        self._preview_timer.timeout.connect(self.preview)
        self._show(*self._saved)

    def load(self, settings: Settings) -> None:
        """Show the saved appearance; Cancel returns to it."""
        self._saved = (settings.theme, settings.font_scale)
        self._show(*self._saved)

    def values(self) -> dict[str, object]:
        """The fields for ``Settings``: theme and font_scale."""
        return {"theme": self.theme_box.currentData(), "font_scale": self.scale_slider.value()}

    def preview(self) -> None:
        """Show the chosen appearance on the whole app now."""
        self._preview_timer.stop()
        theme.set_appearance(str(self.theme_box.currentData()), self.scale_slider.value())

    def revert(self) -> None:
        """Back to the appearance that was saved (the dialog was cancelled)."""
        self._preview_timer.stop()
        theme.set_appearance(*self._saved)

    def _show(self, chosen: str, scale: int) -> None:
        for widget in (self.theme_box, self.scale_slider):
            widget.blockSignals(True)
        index = self.theme_box.findData(chosen)
        self.theme_box.setCurrentIndex(max(0, index))
        self.scale_slider.setValue(scale)
        self.scale_label.setText(f"{scale} %")
        for widget in (self.theme_box, self.scale_slider):
            widget.blockSignals(False)

    def _scale_moved(self, value: int) -> None:
        self.scale_label.setText(f"{value} %")
        self._preview_soon()

    def _preview_soon(self) -> None:
        self._preview_timer.start()
