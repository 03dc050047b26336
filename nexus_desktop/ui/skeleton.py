"""The first frame: the chat screen's panels, shown before its widgets exist.

Building the real widgets costs about 100 ms, most of it PySide6 creating Python enums (the
``Qt`` namespace alone has 93) and Qt loading the font database.  These empty panels need
neither, so the window appears in its final shape and colours as fast as a bare Qt window,
and the widgets replace them in the same second, before the user can act.  The panels take
their look from the real stylesheet through the same object names.
"""

from __future__ import annotations

from PySide6.QtWidgets import QFrame, QHBoxLayout, QVBoxLayout, QWidget

from nexus_desktop.ui.layouts import tight
from nexus_desktop.ui.theme import (
    CHAT_MAX_COLUMN_WIDTH,
    CHAT_SIDE_MARGIN,
    NAV_RAIL_WIDTH,
    SIDEBAR_WIDTH,
    STATUS_LINE_HEIGHT,
    TOP_BAR_HEIGHT,
)

COMPOSER_HEIGHT = 58  # one line of text in the composer, with its padding


def _panel(name: str) -> QFrame:
    frame = QFrame()
    frame.setObjectName(name)
    return frame


def startup_skeleton(window_width: int, *, rail: bool = False) -> QWidget:
    """Page rail, sidebar, top bar, composer and status line as empty panels, for this width."""
    skeleton = QWidget()
    outer = tight(QVBoxLayout(skeleton))
    row = tight(QHBoxLayout())
    left = 0
    if rail:
        nav_rail = _panel("NavRail")
        nav_rail.setFixedWidth(NAV_RAIL_WIDTH)
        row.addWidget(nav_rail)
        left = NAV_RAIL_WIDTH
    sidebar = _panel("Sidebar")
    sidebar.setFixedWidth(SIDEBAR_WIDTH)
    row.addWidget(sidebar)

    chat = tight(QVBoxLayout())
    top_bar = _panel("TopBar")
    top_bar.setFixedHeight(TOP_BAR_HEIGHT)
    chat.addWidget(top_bar)
    chat.addStretch(1)
    side = max(CHAT_SIDE_MARGIN, (window_width - left - SIDEBAR_WIDTH - CHAT_MAX_COLUMN_WIDTH) // 2)
    bottom = QHBoxLayout()
    bottom.setContentsMargins(side, 6, side, 16)
    composer = _panel("Composer")
    composer.setFixedHeight(COMPOSER_HEIGHT)
    bottom.addWidget(composer)
    chat.addLayout(bottom)
    row.addLayout(chat, 1)
    outer.addLayout(row, 1)

    status_line = _panel("StatusLine")
    status_line.setFixedHeight(STATUS_LINE_HEIGHT)
    outer.addWidget(status_line)
    return skeleton
