"""A token count set with a slider for quick moves and a number box for exact values."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QSlider, QSpinBox, QWidget


class SliderField(QWidget):
    """A slider for quick moves and a number box for exact values, kept in step.  The box holds
    the value, so a value past the slider's end is kept, not cut."""

    def __init__(self, name: str, low: int, high: int, step: int) -> None:
        super().__init__()
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setAccessibleName(f"{name} slider")
        self.slider.setRange(low, high)
        self.slider.setSingleStep(step)
        self.slider.setPageStep(step * 4)
        self.box = QSpinBox()
        self.box.setAccessibleName(name)
        self.box.setRange(low, high)
        self.box.setSingleStep(step)
        self.box.setSuffix(" tokens")
        self.slider.valueChanged.connect(self.box.setValue)
        self.box.valueChanged.connect(lambda _value: self._follow_box())
        row.addWidget(self.slider, 1)
        row.addWidget(self.box)

    def value(self) -> int:
        return self.box.value()

    def set_value(self, value: int) -> None:
        self.box.setValue(value)

    def set_slider_end(self, high: int) -> None:
        self.slider.blockSignals(True)  # a shorter slider must not shorten the value
        self.slider.setMaximum(max(self.slider.minimum(), high))
        self.slider.blockSignals(False)
        self._follow_box()

    def _follow_box(self) -> None:
        self.slider.blockSignals(True)
        self.slider.setValue(self.box.value())
        self.slider.blockSignals(False)
