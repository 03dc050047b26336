"""The look: a dark and a light palette with a single violet accent, the stylesheet, fonts and the logo.

Every colour the widgets use comes from ``COLORS`` (the palette in use) so the app stays
consistent; widgets pick their style through ``objectName`` / dynamic properties rather than
inline stylesheets.  The appearance (``system``, ``dark`` or ``light``, and a font scale) can
change while the app runs: ``set_appearance`` swaps the palette in place, re-applies the app's
palette, font and stylesheet, and tells ``appearance_changed()``'s listeners (``set_style`` keeps
a page's own stylesheet in step).  ``system`` follows the desktop's colour scheme as it changes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QColor, QFont, QGuiApplication, QIcon, QPainter, QPalette, QPixmap
from PySide6.QtWidgets import QApplication

if TYPE_CHECKING:
    from PySide6.QtCore import SignalInstance
    from PySide6.QtWidgets import QWidget

# PySide6 builds the huge ``Qt`` namespace on first use (~35 ms); the functions drawing the logo
# import it themselves, so applying the theme before the window shows stays cheap.


class Colors:
    """A palette (a plain class, not a dataclass: importing dataclasses slows start-up).

    The class attributes are the dark palette; ``Colors(window=…, …)`` makes another one.
    """

    window: str = "#0e1016"
    sidebar: str = "#13151d"
    surface: str = "#1a1d28"
    surface_hover: str = "#222636"
    surface_active: str = "#2a2f43"
    border: str = "#262a3a"
    border_strong: str = "#343a52"
    text: str = "#e7e9f1"
    text_dim: str = "#a4a9bd"
    muted: str = "#6f7590"
    accent: str = "#7c6cff"
    accent_hover: str = "#9183ff"
    accent_pressed: str = "#6858f0"
    accent_soft: str = "#2b2656"
    user_bubble: str = "#3a2f8f"
    assistant_bubble: str = "#1b1e2a"
    danger: str = "#f0566b"
    danger_soft: str = "#3a1a24"
    warning: str = "#f2b33d"
    warning_soft: str = "#3a2e16"
    success: str = "#3ddc97"
    success_soft: str = "#15322a"
    info_soft: str = "#1f2442"

    def __init__(self, **colours: str) -> None:
        unknown = set(colours) - set(ROLES)
        if unknown:
            raise AttributeError(f"Colors has no colour named {', '.join(sorted(unknown))}")
        self.__dict__.update(colours)

    def roles(self) -> dict[str, str]:
        """Colour name -> value, for every colour of the palette."""
        return {name: getattr(self, name) for name in ROLES}


ROLES = tuple(name for name, value in vars(Colors).items() if isinstance(value, str) and name[0] != "_")

DARK = Colors()
# Text colours keep WCAG AA contrast (4.5:1) on every light background (tests/test_ui_appearance.py).
LIGHT = Colors(
    window="#f6f7fb",
    sidebar="#eceef5",
    surface="#fdfdff",
    surface_hover="#e9ebf3",
    surface_active="#dfe2ee",
    border="#d9dce8",
    border_strong="#bfc4d6",
    text="#1b1e2b",
    text_dim="#41465c",
    muted="#575c72",
    accent="#6655e0",
    accent_hover="#5443d1",
    accent_pressed="#4636bd",
    accent_soft="#e6e2ff",
    user_bubble="#e3deff",
    assistant_bubble="#fbfbfe",
    danger="#c4253f",
    danger_soft="#fde7eb",
    warning="#8f5a00",
    warning_soft="#fdf1dc",
    success="#0a6e47",
    success_soft="#ddf5ea",
    info_soft="#eceafe",
)
COLORS = Colors()
"""The palette in use: ``set_appearance`` copies DARK or LIGHT into it."""

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

_AVATAR_PALETTE = ["#7c6cff", "#ff6c9d", "#2fc4b2", "#f2a33d", "#4f9dff", "#b86cff", "#ff8a4c", "#4cd07d"]


def avatar_colour(name: str) -> QColor:
    """A stable colour per name, so a character without a picture is still recognisable."""
    index = sum(ord(ch) for ch in name) % len(_AVATAR_PALETTE)
    return QColor(_AVATAR_PALETTE[index])


def live_colour(colour: str) -> str:
    """``colour`` as the palette in use has it, when it is one of a palette's colours.

    Icons keep the colour they were made with (``COLORS.text_dim`` then); looking it up again
    when they are painted lets them follow a theme switch.  Other colours (white on the accent)
    are returned as they are.
    """
    role = _ROLE_OF.get(colour.lower())
    return getattr(COLORS, role) if role is not None else colour


_ROLE_OF = {value.lower(): name for palette in (DARK, LIGHT) for name, value in palette.roles().items()}


def stylesheet(c: Colors = COLORS) -> str:
    return f"""
* {{ outline: 0; }}
QWidget {{ color: {c.text}; font-size: 10pt; }}
QMainWindow, QDialog, #ChatPane {{ background: {c.window}; }}
QToolTip {{ background: {c.surface_active}; color: {c.text}; border: 1px solid {c.border_strong};
    border-radius: 6px; padding: 4px 8px; }}

/* Sidebar */
#Sidebar {{ background: {c.sidebar}; border-right: 1px solid {c.border}; }}
#Brand {{ font-size: 13pt; font-weight: 700; letter-spacing: 1px; }}
#BrandSub {{ color: {c.muted}; font-size: 8pt; letter-spacing: 2px; }}
#SectionLabel {{ color: {c.muted}; font-size: 8pt; font-weight: 600; letter-spacing: 1px; }}
#CharacterList {{ background: transparent; border: none; }}
#CharacterList::item {{ border-radius: 10px; padding: 6px; margin: 1px 0; color: {c.text_dim}; }}
#CharacterList::item:hover {{ background: {c.surface}; color: {c.text}; }}
#CharacterList::item:selected {{ background: {c.accent_soft}; color: {c.text}; }}

/* Page rail */
#NavRail {{ background: {c.window}; border-right: 1px solid {c.border}; }}
QToolButton#NavButton {{ background: transparent; border: none; border-radius: 12px; }}
QToolButton#NavButton:hover {{ background: {c.surface}; }}
QToolButton#NavButton:checked {{ background: {c.accent_soft}; }}

/* Top bar and status line */
#TopBar {{ background: {c.window}; border-bottom: 1px solid {c.border}; }}
#ChatTitle {{ font-size: 13pt; font-weight: 650; }}
#ChatSubtitle {{ color: {c.muted}; font-size: 9pt; }}
#StatusLine {{ background: {c.sidebar}; border-top: 1px solid {c.border}; }}
#StatusLine QLabel {{ color: {c.muted}; font-size: 8.5pt; }}
#StatusDot[state="ready"] {{ color: {c.success}; }}
#StatusDot[state="loading"] {{ color: {c.warning}; }}
#StatusDot[state="error"] {{ color: {c.danger}; }}
#StatusDot[state="idle"] {{ color: {c.muted}; }}

/* Inputs */
QLineEdit, QPlainTextEdit, QTextEdit, QSpinBox, QDoubleSpinBox, QComboBox {{
    background: {c.surface}; border: 1px solid {c.border}; border-radius: 8px;
    padding: 6px 10px; selection-background-color: {c.accent}; selection-color: white; }}
QLineEdit:focus, QPlainTextEdit:focus, QTextEdit:focus, QSpinBox:focus, QDoubleSpinBox:focus,
QComboBox:focus {{ border: 1px solid {c.accent}; }}
QLineEdit:disabled, QSpinBox:disabled, QComboBox:disabled {{ color: {c.muted}; }}
QLineEdit#Search {{ background: {c.window}; border-radius: 10px; padding: 7px 10px; }}
QComboBox::drop-down {{ border: none; width: 22px; }}
QComboBox QAbstractItemView {{ background: {c.surface}; border: 1px solid {c.border_strong};
    selection-background-color: {c.accent_soft}; padding: 4px; outline: 0; }}
QSpinBox::up-button, QSpinBox::down-button, QDoubleSpinBox::up-button, QDoubleSpinBox::down-button {{
    width: 0; border: none; }}

/* Buttons */
QPushButton, QToolButton {{ background: {c.surface}; border: 1px solid {c.border}; border-radius: 8px;
    padding: 7px 14px; color: {c.text}; }}
/* Qt's own small tool buttons (the file dialog's toolbar, a tab bar's scroll arrows) keep room for
   their icon or arrow: 14px of padding a side leaves a narrow button none. */
QFileDialog QToolButton, QTabBar QToolButton {{ padding: 2px; border-radius: 6px; }}
QPushButton:hover, QToolButton:hover {{ background: {c.surface_hover}; border-color: {c.border_strong}; }}
QPushButton:pressed, QToolButton:pressed {{ background: {c.surface_active}; }}
QPushButton:disabled, QToolButton:disabled {{ color: {c.muted}; background: {c.sidebar}; }}
QPushButton[role="primary"] {{ background: {c.accent}; border: 1px solid {c.accent}; color: white;
    font-weight: 600; }}
QPushButton[role="primary"]:hover {{ background: {c.accent_hover}; border-color: {c.accent_hover}; }}
QPushButton[role="primary"]:pressed {{ background: {c.accent_pressed}; }}
QPushButton[role="primary"]:disabled {{ background: {c.accent_soft}; border-color: {c.accent_soft};
    color: {c.text_dim}; }}
QPushButton[role="danger"] {{ background: {c.danger_soft}; border-color: {c.danger}; color: {c.text}; }}
QPushButton[role="danger"]:hover {{ background: {c.danger}; color: white; }}
QPushButton[role="stop"] {{ background: {c.danger}; border: 1px solid {c.danger}; color: white;
    font-weight: 600; }}
QToolButton[role="ghost"], QPushButton[role="ghost"] {{ background: transparent;
    border: 1px solid transparent; color: {c.muted}; padding: 3px 6px; border-radius: 6px; }}
QToolButton[role="ghost"]:hover, QPushButton[role="ghost"]:hover {{ background: {c.surface_hover};
    color: {c.text}; }}
QToolButton[role="ghost"]:disabled {{ background: transparent; color: {c.border_strong}; }}
QToolButton[role="icon"] {{ background: {c.surface}; border: 1px solid {c.border}; border-radius: 10px;
    padding: 6px; }}
QToolButton[role="icon"]:hover {{ background: {c.surface_hover}; border-color: {c.border_strong}; }}
/* Keyboard focus stays visible (the outline above is off for every widget). */
QPushButton:focus, QToolButton:focus {{ border: 1px solid {c.accent}; }}
QCheckBox:focus, QRadioButton:focus {{ color: {c.accent_hover}; }}

/* Chat */
#MessageScroll, #MessageScroll > QWidget > QWidget {{ background: {c.window}; border: none; }}
#Bubble[role="assistant"] {{ background: {c.assistant_bubble}; border: 1px solid {c.border};
    border-radius: 16px; border-top-left-radius: 4px; }}
#Bubble[role="user"] {{ background: {c.user_bubble}; border: 1px solid {c.user_bubble};
    border-radius: 16px; border-top-right-radius: 4px; }}
#Bubble QLabel {{ background: transparent; border: none; font-size: 10.5pt; }}
#SenderName {{ font-weight: 650; color: {c.text}; }}
#MessageMeta {{ color: {c.muted}; font-size: 8.5pt; }}
#SwipeCounter {{ color: {c.text_dim}; font-size: 8.5pt; }}
#DeleteConfirm {{ color: {c.danger}; font-size: 9pt; }}
#ToolCard {{ background: {c.sidebar}; border: 1px dashed {c.border_strong}; border-radius: 10px; }}
#ToolCard QLabel {{ background: transparent; font-size: 9pt; color: {c.text}; }}
#Composer {{ background: {c.surface}; border: 1px solid {c.border}; border-radius: 14px; }}
#Composer[focused="true"] {{ border: 1px solid {c.accent}; }}
#ComposerInput {{ background: transparent; border: none; padding: 4px 2px; font-size: 10.5pt; }}
#GroupMember {{ background: {c.surface}; border: 1px solid {c.border}; border-radius: 13px; }}
#GroupMember QLabel {{ background: transparent; border: none; font-size: 9pt; }}
#GroupMember[muted="true"] QLabel, #GroupMember[gone="true"] QLabel {{ color: {c.muted}; }}
#RouteQuestion {{ color: {c.muted}; font-size: 8.5pt; }}
#RouteWrong::menu-indicator {{ image: none; width: 0; }}
#InlineHint {{ color: {c.warning}; font-size: 9pt; }}
#EmptyState {{ color: {c.muted}; font-size: 11pt; }}
#ShortcutKeys {{ color: {c.accent_hover}; font-weight: 600; }}

/* Banners */
#Banner {{ border-radius: 10px; }}
#Banner[kind="error"] {{ background: {c.danger_soft}; border: 1px solid {c.danger}; }}
#Banner[kind="warning"] {{ background: {c.warning_soft}; border: 1px solid {c.warning}; }}
#Banner[kind="info"] {{ background: {c.info_soft}; border: 1px solid {c.accent}; }}
#Banner QLabel {{ background: transparent; border: none; }}

/* Dialogs */
QTabWidget::pane {{ border: 1px solid {c.border}; border-radius: 10px; top: -1px; background: {c.window}; }}
QTabBar::tab {{ background: transparent; color: {c.muted}; padding: 8px 14px; border: none;
    border-bottom: 2px solid transparent; }}
QTabBar::tab:selected {{ color: {c.text}; border-bottom: 2px solid {c.accent}; }}
QTabBar::tab:hover {{ color: {c.text}; }}
QGroupBox {{ border: 1px solid {c.border}; border-radius: 10px; margin-top: 14px;
    padding: 12px 10px 10px 10px; }}
QGroupBox::title {{ subcontrol-origin: margin; left: 12px; padding: 0 4px; color: {c.text_dim}; }}
QLabel#FieldHelp {{ color: {c.muted}; font-size: 8.5pt; }}
QLabel#DialogTitle {{ font-size: 14pt; font-weight: 650; }}
QListWidget {{ background: {c.surface}; border: 1px solid {c.border}; border-radius: 8px; padding: 4px; }}
QListWidget::item {{ padding: 6px; border-radius: 6px; }}
QListWidget::item:selected {{ background: {c.accent_soft}; color: {c.text}; }}
QTableWidget {{ background: {c.surface}; border: 1px solid {c.border}; border-radius: 8px;
    gridline-color: {c.border}; selection-background-color: {c.accent_soft}; }}
QHeaderView::section {{ background: {c.sidebar}; color: {c.text_dim}; border: none;
    border-bottom: 1px solid {c.border}; padding: 6px; }}
QCheckBox::indicator {{ width: 16px; height: 16px; border-radius: 4px; border: 1px solid {c.border_strong};
    background: {c.surface}; }}
QCheckBox::indicator:checked {{ background: {c.accent}; border-color: {c.accent}; }}
QMenu {{ background: {c.surface}; border: 1px solid {c.border_strong}; border-radius: 8px; padding: 4px; }}
QMenu::item {{ padding: 6px 18px; border-radius: 6px; }}
QMenu::item:selected {{ background: {c.accent_soft}; }}

/* Scroll bars: thin, rounded, no arrows */
QScrollBar:vertical {{ background: transparent; width: 10px; margin: 2px; }}
QScrollBar::handle:vertical {{ background: {c.border_strong}; border-radius: 3px; min-height: 32px; }}
QScrollBar::handle:vertical:hover {{ background: {c.muted}; }}
QScrollBar:horizontal {{ background: transparent; height: 10px; margin: 2px; }}
QScrollBar::handle:horizontal {{ background: {c.border_strong}; border-radius: 3px; min-width: 32px; }}
QScrollBar::add-line, QScrollBar::sub-line {{ width: 0; height: 0; }}
QScrollBar::add-page, QScrollBar::sub-page {{ background: transparent; }}
QSplitter::handle {{ background: {c.border}; }}
"""


def palette(c: Colors = COLORS) -> QPalette:
    p = QPalette()
    roles = {
        QPalette.ColorRole.Window: c.window,
        QPalette.ColorRole.WindowText: c.text,
        QPalette.ColorRole.Base: c.surface,
        QPalette.ColorRole.AlternateBase: c.sidebar,
        QPalette.ColorRole.Text: c.text,
        QPalette.ColorRole.Button: c.surface,
        QPalette.ColorRole.ButtonText: c.text,
        QPalette.ColorRole.Highlight: c.accent,
        QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.ToolTipBase: c.surface_active,
        QPalette.ColorRole.ToolTipText: c.text,
        QPalette.ColorRole.PlaceholderText: c.muted,
        QPalette.ColorRole.Link: c.accent_hover,
        QPalette.ColorRole.BrightText: "#ffffff",
    }
    for role, colour in roles.items():
        p.setColor(role, QColor(colour))
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText, QPalette.ColorRole.WindowText):
        p.setColor(QPalette.ColorGroup.Disabled, role, QColor(c.muted))
    return p


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


def draw_logo(painter: QPainter, size: float) -> None:
    """The NEXUS mark: a rounded violet tile with a bold "N" made of two linked nodes."""
    from PySide6.QtCore import QPointF, QRectF, Qt
    from PySide6.QtGui import QLinearGradient, QPainterPath, QPen

    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    tile = QRectF(0, 0, size, size).adjusted(size * 0.04, size * 0.04, -size * 0.04, -size * 0.04)
    gradient = QLinearGradient(tile.topLeft(), tile.bottomRight())
    gradient.setColorAt(0.0, QColor("#9b7bff"))
    gradient.setColorAt(1.0, QColor("#4f6dff"))
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(gradient)
    painter.drawRoundedRect(tile, size * 0.24, size * 0.24)

    left, right = size * 0.31, size * 0.69
    top, bottom = size * 0.28, size * 0.72
    path = QPainterPath(QPointF(left, bottom))
    path.lineTo(left, top)
    path.lineTo(right, bottom)
    path.lineTo(right, top)
    pen = QPen(QColor("#ffffff"), size * 0.1)
    pen.setCapStyle(Qt.PenCapStyle.RoundCap)
    pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
    painter.setPen(pen)
    painter.setBrush(Qt.BrushStyle.NoBrush)
    painter.drawPath(path)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(QColor("#ffffff"))
    radius = size * 0.075
    for x, y in ((left, top), (right, bottom)):
        painter.drawEllipse(QPointF(x, y), radius * 1.25, radius * 1.25)


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
