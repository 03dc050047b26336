"""A slim vertical rail of page buttons (Chat, Training, Modules…), shown once there are two pages."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QButtonGroup, QFrame, QToolButton, QVBoxLayout, QWidget

from nexus_desktop.ui import icons
from nexus_desktop.ui.theme import COLORS, NAV_RAIL_WIDTH


class NavRail(QFrame):
    page_chosen = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("NavRail")
        self.setFixedWidth(NAV_RAIL_WIDTH)
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(8, 14, 8, 14)
        self._layout.setSpacing(8)
        self._layout.addStretch(1)
        self._group = QButtonGroup(self)
        self._group.setExclusive(True)
        self.buttons: dict[str, QToolButton] = {}
        self.hide()

    def add_page(self, key: str, title: str, icon_name: str) -> QToolButton:
        button = QToolButton()
        button.setObjectName("NavButton")
        button.setCheckable(True)
        button.setIcon(self._icon(icon_name))
        button.setIconSize(QSize(22, 22))
        button.setFixedSize(44, 44)
        button.setToolTip(title)
        button.setAccessibleName(title)
        button.setCursor(Qt.CursorShape.PointingHandCursor)
        button.clicked.connect(lambda: self.page_chosen.emit(key))
        self._group.addButton(button)
        self._layout.insertWidget(self._layout.count() - 1, button, 0, Qt.AlignmentFlag.AlignHCenter)
        self.buttons[key] = button
        self.setVisible(len(self.buttons) > 1)
        return button

    @staticmethod
    def _icon(name: str) -> QIcon:
        return icons.icon(name, COLORS.muted, COLORS.text, 22, checked=COLORS.accent_hover)

    def select(self, key: str) -> None:
        button = self.buttons.get(key)
        if button is not None:
            button.setChecked(True)
