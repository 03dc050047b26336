"""Small shared widgets: round avatars, buttons, help lines, title blocks and the non-modal banner."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import ClassVar

from PySide6.QtCore import QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QGuiApplication, QImage, QPainter, QPainterPath, QPixmap
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from nexus_desktop.ui import icons
from nexus_desktop.ui.theme import COLORS, avatar_colour, logo_pixmap


def set_style_property(widget: QWidget, name: str, value: object) -> None:
    """Set a property the stylesheet selects on and make Qt re-apply the style."""
    widget.setProperty(name, value)
    # A widget not polished yet picks the property up when it is.  A polished one is re-polished by
    # setting its own (blank) stylesheet: style().unpolish/polish would do the same, but PySide6
    # builds QStyle's enums (~7 ms) on first use, and the composer's focus ring does this before
    # the window's first paint.
    if widget.testAttribute(Qt.WidgetAttribute.WA_WState_Polished):
        widget.setStyleSheet(widget.styleSheet() or " ")
    widget.update()


def fit_to_screen(window: QWidget, width: int, height: int) -> None:
    """Size a window ``width`` x ``height``, or as large as the screen's free area where that is
    smaller (an 800x500 screen), so no part of it opens off the screen."""
    screen = window.screen() or QGuiApplication.primaryScreen()
    if screen is not None:
        area = screen.availableGeometry()
        width, height = min(width, area.width()), min(height, area.height())
    window.resize(width, height)


def initials(name: str) -> str:
    words = [w for w in name.replace("_", " ").split() if w[:1].isalnum()]
    if not words:
        return "?"
    if len(words) == 1:
        return words[0][0].upper()
    return (words[0][0] + words[1][0]).upper()


def round_avatar(image_bytes: bytes | None, name: str, size: int) -> QPixmap:
    """The character's picture cropped to a circle, or their initials on a coloured circle."""
    screen = QGuiApplication.primaryScreen()
    ratio = screen.devicePixelRatio() if screen is not None else 1.0
    return _round_avatar(image_bytes, name, size, ratio)


@lru_cache(maxsize=256)
def _round_avatar(image_bytes: bytes | None, name: str, size: int, ratio: float) -> QPixmap:
    # Cached: every message shows its sender's avatar, and decoding a PNG each time adds up.
    side = int(size * ratio)
    result = QPixmap(side, side)
    result.fill(Qt.GlobalColor.transparent)
    painter = QPainter(result)
    painter.setRenderHints(QPainter.RenderHint.Antialiasing | QPainter.RenderHint.SmoothPixmapTransform)
    clip = QPainterPath()
    clip.addEllipse(QRectF(0, 0, side, side))
    painter.setClipPath(clip)

    image = QImage.fromData(image_bytes) if image_bytes else QImage()
    if not image.isNull():
        # Cards are usually portrait: keep the top (the face), crop the rest.
        scaled = image.scaled(
            side,
            side,
            Qt.AspectRatioMode.KeepAspectRatioByExpanding,
            Qt.TransformationMode.SmoothTransformation,
        )
        x = (scaled.width() - side) // 2
        painter.drawImage(0, 0, scaled, x, 0, side, side)
    else:
        # A filled pixmap, not fillRect(colour): resolving fillRect's overloads makes PySide6 build
        # QGradient's enums (169 presets) before the window's first paint.
        disc = QPixmap(side, side)
        disc.fill(avatar_colour(name).darker(130))
        painter.drawPixmap(0, 0, disc)
        painter.setPen(QColor("#ffffff"))
        font = QFont(QGuiApplication.font())
        font.setPixelSize(max(8, int(side * 0.38)))
        font.setWeight(QFont.Weight.DemiBold)
        painter.setFont(font)
        painter.drawText(QRectF(0, 0, side, side), Qt.AlignmentFlag.AlignCenter, initials(name))
    painter.end()
    result.setDevicePixelRatio(ratio)
    return result


class ElidedLabel(QLabel):
    """A one-line label that ends in "…" when it does not fit, with the whole text as tooltip."""

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._full = ""
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.setText(text)

    def setText(self, text: str) -> None:
        self._full = text
        self.setToolTip(text)
        self._elide()

    def text(self) -> str:
        return self._full

    def minimumSizeHint(self) -> QSize:
        return QSize(24, super().minimumSizeHint().height())

    def sizeHint(self) -> QSize:
        return QSize(self.fontMetrics().horizontalAdvance(self._full) + 4, super().sizeHint().height())

    def resizeEvent(self, event: object) -> None:
        super().resizeEvent(event)  # type: ignore[arg-type]
        self._elide()

    def _elide(self) -> None:
        elided = self.fontMetrics().elidedText(self._full, Qt.TextElideMode.ElideRight, max(0, self.width()))
        QLabel.setText(self, elided)


class Avatar(QLabel):
    def __init__(self, size: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._size = size
        self.setFixedSize(size, size)
        self.setObjectName("Avatar")

    def set_avatar(self, image_bytes: bytes | None, name: str) -> None:
        self.setPixmap(round_avatar(image_bytes, name, self._size))
        self.setToolTip(name)


def icon_button(
    icon_name: str, tooltip: str, *, role: str = "ghost", text: str = "", size: int = 16
) -> QToolButton:
    button = QToolButton()
    button.setIcon(icons.icon(icon_name, size=size))
    button.setIconSize(QSize(size, size))
    button.setToolTip(tooltip)
    button.setAccessibleName(tooltip)
    button.setCursor(Qt.CursorShape.PointingHandCursor)
    button.setProperty("role", role)
    if text:
        button.setText(text)
        button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
    return button


def push_button(
    text: str, *, role: str = "", icon_name: str | None = None, icon_colour: str | None = None
) -> QPushButton:
    button = QPushButton(text)
    button.setCursor(Qt.CursorShape.PointingHandCursor)
    if role:
        button.setProperty("role", role)
    if icon_name:
        colour = icon_colour or ("#ffffff" if role in ("primary", "stop") else COLORS.text_dim)
        button.setIcon(icons.icon(icon_name, colour, colour))
    return button


def help_label(text: str) -> QLabel:
    """A small, wrapped line of muted text that explains the field above or beside it."""
    label = QLabel(text)
    label.setObjectName("FieldHelp")
    label.setWordWrap(True)
    return label


def title_block(
    title: str, subtitle: str, *, names: tuple[str, str] = ("PageTitle", "PageSubtitle")
) -> tuple[QVBoxLayout, QLabel, QLabel]:
    """A title over a subtitle, styled by the object ``names``; the labels are returned to update."""
    block = QVBoxLayout()
    block.setSpacing(0)
    labels = (QLabel(title), QLabel(subtitle))
    for label, name in zip(labels, names, strict=True):
        label.setObjectName(name)
        block.addWidget(label)
    return block, *labels


def brand_row(title: str, subtitle: str) -> QHBoxLayout:
    """The logo with two words beside it, as the chat sidebar and the Training pane open."""
    row = QHBoxLayout()
    row.setSpacing(10)
    logo = QLabel()
    logo.setPixmap(logo_pixmap(34))
    words, _, _ = title_block(title, subtitle, names=("Brand", "BrandSub"))
    row.addWidget(logo)
    row.addLayout(words, 1)
    return row


class Banner(QFrame):
    """A dismissable notice inside the window (never a modal dialog); errors say what to do."""

    closed = Signal()

    _ICONS: ClassVar[dict[str, tuple[str, str]]] = {
        "error": ("alert", COLORS.danger),
        "warning": ("alert", COLORS.warning),
        "info": ("info", COLORS.accent),
    }

    def __init__(
        self,
        kind: str,
        text: str,
        *,
        action: tuple[str, Callable[[], object]] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.kind = kind
        self.setObjectName("Banner")
        self.setProperty("kind", kind)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(12, 8, 8, 8)
        layout.setSpacing(10)

        icon_name, colour = self._ICONS.get(kind, self._ICONS["info"])
        badge = QLabel()
        badge.setPixmap(icons.pixmap(icon_name, colour, 18))
        badge.setAlignment(Qt.AlignmentFlag.AlignTop)
        layout.addWidget(badge, 0, Qt.AlignmentFlag.AlignTop)

        self.label = QLabel(text)
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.label, 1)

        self.action_button: QPushButton | None = None
        if action is not None:
            caption, callback = action
            self.action_button = push_button(caption)
            self.action_button.clicked.connect(lambda: callback())
            layout.addWidget(self.action_button, 0, Qt.AlignmentFlag.AlignVCenter)

        self.close_button = icon_button("close", "Dismiss")
        self.close_button.clicked.connect(self.dismiss)
        layout.addWidget(self.close_button, 0, Qt.AlignmentFlag.AlignTop)

    @property
    def text(self) -> str:
        return self.label.text()

    def dismiss(self) -> None:
        self.hide()
        self.closed.emit()
        self.deleteLater()


class BannerArea(QWidget):
    """A column of banners; showing the same notice twice keeps only one."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(6)
        self._banners: list[Banner] = []
        self.hide()

    def show_banner(
        self, kind: str, text: str, action: tuple[str, Callable[[], object]] | None = None
    ) -> Banner:
        for existing in list(self._banners):
            if existing.text == text or (kind == "error" and existing.kind == "error"):
                existing.dismiss()
        banner = Banner(kind, text, action=action)
        banner.closed.connect(lambda b=banner: self._forget(b))
        self._banners.append(banner)
        self._layout.addWidget(banner)
        self.show()
        return banner

    def banners(self) -> list[Banner]:
        return list(self._banners)

    def clear(self, kind: str | None = None) -> None:
        for banner in list(self._banners):
            if kind is None or banner.kind == kind:
                banner.dismiss()

    def _forget(self, banner: Banner) -> None:
        if banner in self._banners:
            self._banners.remove(banner)
        if not self._banners:
            self.hide()
