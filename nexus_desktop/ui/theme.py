"""The look: the palette and stylesheet applied, fonts, shared sizes and the logo.

The colours are ``palettes``'s (a dark and a light palette with a single violet accent), the
rules ``stylesheet``'s.  Every colour the widgets use comes from ``COLORS`` (the palette in use)
so the app stays consistent; widgets pick their style through ``objectName`` / dynamic
properties rather than inline stylesheets.  The appearance (``system``, ``dark`` or ``light``,
and a font scale) can change while the app runs: ``set_appearance`` swaps the palette in place,
re-applies the app's palette, font and stylesheet, and tells ``appearance_changed()``'s
listeners (``set_style`` keeps a page's own stylesheet in step).  ``system`` follows the
desktop's colour scheme as it changes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QFont, QGuiApplication, QIcon, QPainter, QPixmap
from PySide6.QtWidgets import QApplication

# The colours and the stylesheet live in their own modules; the names below stay importable from
# here, where most of the app has always found them.
from nexus_desktop.ui.palettes import COLORS as COLORS
from nexus_desktop.ui.palettes import DARK as DARK
from nexus_desktop.ui.palettes import LIGHT as LIGHT
from nexus_desktop.ui.palettes import Colors as Colors
from nexus_desktop.ui.palettes import avatar_colour as avatar_colour
from nexus_desktop.ui.palettes import live_colour as live_colour
from nexus_desktop.ui.palettes import palette as palette
from nexus_desktop.ui.stylesheet import stylesheet as stylesheet

if TYPE_CHECKING:
    from PySide6.QtCore import SignalInstance
    from PySide6.QtWidgets import QWidget

# PySide6 builds the huge ``Qt`` namespace on first use (~35 ms); the functions drawing the logo
# import it themselves, so applying the theme before the window shows stays cheap.


THEMES = ("system", "dark", "light")
FONT_SCALE_RANGE = (80, 150)

FONT_FAMILIES = [
    "Inter",
    "Segoe UI",
    "SF Pro Text",
    "Helvetica Neue",
    "Noto Sans",
    "Cantarell",
    "DejaVu Sans",
]
BASE_POINT_SIZE = 10

# Sizes the first frame (ui/skeleton.py) shares with the widgets that later replace it.
NAV_RAIL_WIDTH = 60
SIDEBAR_WIDTH = 284
SIDEBAR_COMPACT_WIDTH = 216
SIDEBAR_COMPACT_BELOW = 1000
"""Window width under which the sidebar takes its compact width."""
TOP_BAR_HEIGHT = 68
STATUS_LINE_HEIGHT = 30
CHAT_SIDE_MARGIN = 28
CHAT_MAX_COLUMN_WIDTH = 980
MESSAGE_AVATAR_SIZE = 36


def apply_theme(
    app: QApplication,
    *,
    icon: bool = True,
    style: bool = True,
    theme: str = "system",
    font_scale: int = 100,
) -> None:
    """Fusion, the palette, the font and the stylesheet, for ``theme`` at ``font_scale`` percent.

    ``style=False`` when the app was started with ``-style Fusion`` already: ``setStyle``
    returns a QStyle, and wrapping it builds PySide6's QStyle enums (~10 ms at start-up).
    """
    # Fusion draws every control from the palette, so no platform grey leaks through.
    if style:
        app.setStyle("Fusion")
    _apply(app, theme, font_scale)
    if icon:
        app.setWindowIcon(app_icon())


def set_appearance(theme: str, font_scale: int) -> None:
    """Switch the theme (system, dark or light) and the font scale (percent) in every window now."""
    app = QApplication.instance()
    state = _appearance()
    if not isinstance(app, QApplication):
        return
    wanted = (theme, _clamped(font_scale), "light" if _wants_light(theme) else "dark")
    if wanted == (state.theme, state.font_scale, resolved_theme()):
        return  # re-styling the whole app costs tens of milliseconds: only for a change
    _apply(app, theme, font_scale)
    state.changed.emit()


def appearance_changed() -> SignalInstance:
    """Emitted after the palette or the font scale changed, once the app's style has followed."""
    return _appearance().changed


def chosen_theme() -> str:
    """What the user chose: system, dark or light."""
    return _appearance().theme


def resolved_theme() -> str:
    """The palette in use: dark or light (``system`` resolved)."""
    return "light" if COLORS.window == LIGHT.window else "dark"


def font_scale() -> int:
    return _appearance().font_scale


def scaled(css: str, scale: int | None = None) -> str:
    """``css`` with every ``font-size: …pt`` multiplied by the font scale (percent)."""
    factor = (font_scale() if scale is None else scale) / 100
    if factor == 1:
        return css
    return _FONT_SIZE.sub(lambda match: f"{match[1]}{round(float(match[2]) * factor, 2):g}pt", css)


_FONT_SIZE = re.compile(r"(font-size:\s*)(\d+(?:\.\d+)?)pt")


def set_style(widget: QWidget, build: Callable[[], str]) -> None:
    """Style ``widget`` with what ``build()`` makes from ``COLORS``, scaled to the font scale, now
    and again after every appearance change (a page's own rules, kept off the app's stylesheet)."""
    _Restyler(widget, build)


class _Appearance(QObject):
    changed = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.theme = "system"
        self.font_scale = 100
        self.following_system = False


class _Restyler(QObject):
    def __init__(self, widget: QWidget, build: Callable[[], str]) -> None:
        super().__init__(widget)
        self._widget = widget
        self._build = build
        self.restyle()
        appearance_changed().connect(self.restyle)

    def restyle(self) -> None:
        self._widget.setStyleSheet(scaled(self._build()))


_state: list[_Appearance] = []


def _appearance() -> _Appearance:
    if not _state:
        _state.append(_Appearance())
    return _state[0]


def _wants_light(theme: str) -> bool:
    if theme not in THEMES:
        raise ValueError(f"There is no theme {theme!r}; pick one of {', '.join(THEMES)}.")
    return theme == "light" or (theme == "system" and _system_is_light())


def _clamped(scale: int) -> int:
    low, high = FONT_SCALE_RANGE
    return max(low, min(high, scale))


def _system_is_light() -> bool:
    # The Qt namespace's enums cost ~15 ms once; the widgets need them right after anyway.
    from PySide6.QtCore import Qt

    hints = QGuiApplication.styleHints()
    return hints is not None and hints.colorScheme() == Qt.ColorScheme.Light


def _apply(app: QApplication, theme: str, scale: int) -> None:
    light = _wants_light(theme)
    state = _appearance()
    state.theme, state.font_scale = theme, _clamped(scale)
    if not state.following_system:
        hints = QGuiApplication.styleHints()
        if hints is not None:
            hints.colorSchemeChanged.connect(_system_scheme_changed)
            state.following_system = True
    COLORS.__dict__.update((LIGHT if light else DARK).roles())
    app.setPalette(palette())
    font = QFont()
    font.setFamilies(FONT_FAMILIES)
    font.setPointSizeF(BASE_POINT_SIZE * state.font_scale / 100)
    font.setHintingPreference(QFont.HintingPreference.PreferNoHinting)
    app.setFont(font)
    app.setStyleSheet(scaled(stylesheet()))


def _system_scheme_changed(*_scheme: object) -> None:
    state = _appearance()
    if state.theme == "system":
        set_appearance("system", state.font_scale)


# The NEXUS mark: a rounded violet tile with a bold "N" made of two linked nodes.  Drawn from SVG,
# so the gradient and pen are Qt's own: building them in Python makes PySide6 create QGradient's
# enums (169 presets) and QPen's before the window's first paint.
LOGO_SVG = (
    b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 100">'
    b'<defs><linearGradient id="g" gradientUnits="userSpaceOnUse" x1="4" y1="4" x2="96" y2="96">'
    b'<stop offset="0" stop-color="#9b7bff"/><stop offset="1" stop-color="#4f6dff"/></linearGradient></defs>'
    b'<rect x="4" y="4" width="92" height="92" rx="24" fill="url(#g)"/>'
    b'<path d="M31 72V28L69 72V28" fill="none" stroke="#fff" stroke-width="10" '
    b'stroke-linecap="round" stroke-linejoin="round"/>'
    b'<circle cx="31" cy="28" r="9.375" fill="#fff"/><circle cx="69" cy="72" r="9.375" fill="#fff"/>'
    b"</svg>"
)


def draw_logo(painter: QPainter, size: float) -> None:
    """The NEXUS mark, ``size`` pixels square, at the painter's origin."""
    from PySide6.QtCore import QByteArray, QRectF
    from PySide6.QtSvg import QSvgRenderer

    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    QSvgRenderer(QByteArray(LOGO_SVG)).render(painter, QRectF(0, 0, size, size))


def logo_pixmap(size: int) -> QPixmap:
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication

    ratio = QGuiApplication.primaryScreen().devicePixelRatio() if QGuiApplication.primaryScreen() else 1.0
    pixmap = QPixmap(int(size * ratio), int(size * ratio))
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    draw_logo(painter, size * ratio)
    painter.end()
    pixmap.setDevicePixelRatio(ratio)
    return pixmap


def app_icon() -> QIcon:
    from PySide6.QtCore import Qt

    icon = QIcon()
    for size in (16, 24, 32, 48, 64, 128, 256):
        pixmap = QPixmap(size, size)
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        draw_logo(painter, size)
        painter.end()
        icon.addPixmap(pixmap)
    return icon
