"""A scrolling column of cards under a banner area, with a note shown while it is empty.

My models and Downloads (the Models page) are both this: they add their cards to ``card_layout``
(whose last item is a stretch) and show or hide ``empty``.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QScrollArea, QVBoxLayout, QWidget

from nexus_desktop.ui.widgets import BannerArea


class CardList(QWidget):
    def __init__(self, empty_text: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        self.scroll_area = QScrollArea()
        self.scroll_area.setObjectName("LibraryScroll")
        self.scroll_area.setWidgetResizable(True)
        self.scroll_area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        content = QWidget()
        self.card_layout = QVBoxLayout(content)
        self.card_layout.setContentsMargins(20, 14, 20, 20)
        self.card_layout.setSpacing(10)
        self.banners = BannerArea()
        self.card_layout.addWidget(self.banners)
        self.empty = QLabel(empty_text)
        self.empty.setObjectName("EmptyState")
        self.empty.setWordWrap(True)
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.card_layout.addWidget(self.empty)
        self.card_layout.addStretch(1)
        self.scroll_area.setWidget(content)
        outer.addWidget(self.scroll_area)
