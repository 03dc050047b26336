"""Settings → Generation's sampler number boxes: what each is, and boxes whose ranges come from
the ``Samplers`` model, so the form and the validation agree."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtWidgets import QDoubleSpinBox, QGridLayout, QLabel, QSpinBox, QWidget

from nexus_desktop.settings import Samplers

Row = tuple[str, str, int, float, str]
"""(field, label, decimals, step, what it does) of one number box."""
SAMPLING: tuple[Row, ...] = (
    ("temperature", "Temperature", 2, 0.05, "Higher is more creative, lower more focused; 0 is greedy"),
    ("top_p", "Top-p", 2, 0.01, "Keep the likeliest words that together reach this probability; 1 is off"),
    ("min_p", "Min-p", 2, 0.01, "Drop words less likely than this share of the likeliest one; 0 is off"),
    ("top_k", "Top-k", 0, 1, "Keep only this many of the likeliest words; 0 is off, 1 picks the likeliest"),
    ("typical_p", "Typical-p", 2, 0.01, "Prefer words about as surprising as usual; 1 is off"),
)
REPETITION: tuple[Row, ...] = (
    ("repeat_penalty", "Repetition penalty", 2, 0.05, "Make words already used less likely; 1 is off"),
    ("presence_penalty", "Presence penalty", 2, 0.05, "Make any word already used less likely; 0 is off"),
    (
        "frequency_penalty",
        "Frequency penalty",
        2,
        0.05,
        "The more a word was used, the less likely; 0 is off",
    ),
    ("dry_multiplier", "DRY multiplier", 2, 0.1, "How hard DRY pushes against repeated phrases; 0 is off"),
    ("dry_base", "DRY base", 2, 0.05, "How fast DRY's push grows with the length of the repeat"),
    ("dry_allowed_length", "DRY allowed length", 0, 1, "Repeats up to this many tokens are left alone"),
)
MIROSTAT: tuple[Row, ...] = (
    ("mirostat_tau", "Mirostat tau", 2, 0.1, "The surprise Mirostat aims for; lower is more focused"),
    ("mirostat_eta", "Mirostat eta", 2, 0.01, "How fast Mirostat adapts"),
)
MIROSTAT_MODES = (("Off", 0), ("Mirostat", 1), ("Mirostat 2.0", 2))
DRY_FIELDS = ("dry_multiplier", "dry_base", "dry_allowed_length")


def bounds(field: str) -> tuple[float, float]:
    """The ``ge``/``le`` limits ``Samplers`` puts on ``field``."""
    low, high = -1e9, 1e9
    for rule in Samplers.model_fields[field].metadata:
        low, high = getattr(rule, "ge", low), getattr(rule, "le", high)
    return low, high


def number_box(row: Row) -> QDoubleSpinBox | QSpinBox:
    """The number box for one ``Row``, limited to what ``Samplers`` accepts for its field."""
    field, label, decimals, step, tip = row
    low, high = bounds(field)
    box: QDoubleSpinBox | QSpinBox
    if decimals == 0:
        box = QSpinBox()
        box.setRange(int(low), int(high))
        box.setSingleStep(int(step))
        box.setSpecialValueText("Off" if low == 0 else "")
    else:
        box = QDoubleSpinBox()
        box.setDecimals(decimals)
        box.setRange(low, high)
        box.setSingleStep(step)
    box.setToolTip(tip)
    box.setAccessibleName(label)
    return box


def two_columns(grid: QGridLayout, pairs: Sequence[tuple[str, QWidget]]) -> None:
    """Lay ``(label, field)`` pairs out two to a line, labels tied to their fields."""
    for index, (text, field) in enumerate(pairs):
        label = QLabel(text)
        label.setBuddy(field)
        row, column = divmod(index, 2)
        grid.addWidget(label, row, column * 2)
        grid.addWidget(field, row, column * 2 + 1)
    grid.setColumnStretch(1, 1)
    grid.setColumnStretch(3, 1)
