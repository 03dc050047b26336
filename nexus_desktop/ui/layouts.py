"""Box layouts whose parts touch edge to edge: no margins, no spacing (panels, page frames)."""

from __future__ import annotations

from typing import TypeVar

from PySide6.QtWidgets import QBoxLayout

Layout = TypeVar("Layout", bound=QBoxLayout)


def tight(layout: Layout) -> Layout:
    layout.setContentsMargins(0, 0, 0, 0)
    layout.setSpacing(0)
    return layout
