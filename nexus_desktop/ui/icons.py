"""Line icons drawn from small inline SVGs, tinted to the theme (no icon font, no files to ship).

``icon()`` looks its colours up again whenever it is painted (``theme.live_colour``), so buttons
made before a theme switch follow it; ``pixmap()`` is one picture in the colour given.
"""

from __future__ import annotations

from functools import cache

from PySide6.QtCore import QByteArray, QRect, QRectF, QSize, Qt
from PySide6.QtGui import QGuiApplication, QIcon, QIconEngine, QPainter, QPixmap
from PySide6.QtSvg import QSvgRenderer
from PySide6.QtWidgets import QApplication

from nexus_desktop.ui.theme import COLORS, live_colour

_THUMB = (
    '<path d="M7.5 10.5v10"/><path d="M3.5 10.5h4v10h-4z"/>'
    '<path d="M7.5 10.5 11 3.8a2.2 2.2 0 0 1 3.6 1.9L14 9.5h5.2a2 2 0 0 1 2 2.4'
    'l-1.4 7A2 2 0 0 1 17.8 20.5H7.5"/>'
)

_EYE = '<path d="M2.5 12S6 5.5 12 5.5 21.5 12 21.5 12 18 18.5 12 18.5 2.5 12 2.5 12z"/>'

_SHAPES = {
    "send": '<path d="M21 3 10 14"/><path d="M21 3 14.5 21 10 14 3 9.5z"/>',
    "stop": '<rect x="6" y="6" width="12" height="12" rx="2.5" fill="{c}"/>',
    "regenerate": '<path d="M20.5 12a8.5 8.5 0 1 1-2.6-6.1"/><path d="M20.5 3.5v5h-5"/>',
    "plus": '<path d="M12 5v14M5 12h14"/>',
    "import": '<path d="M12 3v12"/><path d="m7 10 5 5 5-5"/><path d="M4 20h16"/>',
    "export": '<path d="M12 15V3"/><path d="m7 8 5-5 5 5"/><path d="M4 20h16"/>',
    "edit": '<path d="M16.5 3.5a2.12 2.12 0 0 1 3 3L7.5 18.5 3 20l1.5-4.5z"/><path d="m14 6 3 3"/>',
    "trash": '<path d="M4 6.5h16"/><path d="M9 6.5V4h6v2.5"/><path d="m18.5 6.5-.9 13.5H6.4L5.5 6.5"/>',
    "settings": (
        '<path d="M4 6h9M17 6h3M4 12h3M11 12h9M4 18h11M19 18h1"/>'
        '<circle cx="15" cy="6" r="2"/><circle cx="9" cy="12" r="2"/><circle cx="17" cy="18" r="2"/>'
    ),
    "search": '<circle cx="11" cy="11" r="6.5"/><path d="m20 20-4.2-4.2"/>',
    "copy": (
        '<rect x="9" y="9" width="11.5" height="11.5" rx="2.5"/>'
        '<path d="M5.5 15H5a1.5 1.5 0 0 1-1.5-1.5V5A1.5 1.5 0 0 1 5 3.5h8.5A1.5 1.5 0 0 1 15 5v.5"/>'
    ),
    "left": '<path d="m14.5 18-6-6 6-6"/>',
    "right": '<path d="m9.5 18 6-6-6-6"/>',
    "close": '<path d="M17 7 7 17M7 7l10 10"/>',
    "new_chat": (
        '<path d="M20.5 11.5a8 8 0 0 1-11.8 7.1L3.5 20l1.4-4.9A8 8 0 1 1 20.5 11.5z"/>'
        '<path d="M12.5 8v7M9 11.5h7"/>'
    ),
    "folder": (
        '<path d="M3.5 7A2 2 0 0 1 5.5 5h3.8l2 2.2h7.2a2 2 0 0 1 2 2V17a2 2 0 0 1-2 2h-13a2 2 0 0 1-2-2z"/>'
    ),
    "image": (
        '<rect x="3.5" y="3.5" width="17" height="17" rx="3"/><circle cx="9" cy="9" r="1.8"/>'
        '<path d="m20.5 15-4.8-4.8L5 20.5"/>'
    ),
    "chip": (
        '<rect x="5.5" y="5.5" width="13" height="13" rx="2.5"/>'
        '<rect x="9.5" y="9.5" width="5" height="5" rx="1"/>'
        '<path d="M9.5 2.5v3M14.5 2.5v3M9.5 18.5v3M14.5 18.5v3M2.5 9.5h3M2.5 14.5h3M18.5 9.5h3M18.5 14.5h3"/>'
    ),
    "alert": '<circle cx="12" cy="12" r="9"/><path d="M12 7.5v5.5M12 16.5v.01"/>',
    "info": '<circle cx="12" cy="12" r="9"/><path d="M12 11v5.5M12 7.5v.01"/>',
    "up": '<path d="m6 14.5 6-6 6 6"/>',
    "new_folder": (
        '<path d="M3.5 7A2 2 0 0 1 5.5 5h3.8l2 2.2h7.2a2 2 0 0 1 2 2V17a2 2 0 0 1-2 2h-13a2 2 0 0 1-2-2z"/>'
        '<path d="M12 10.5v5M9.5 13h5"/>'
    ),
    "rows": '<path d="M4 6.5h16M4 12h16M4 17.5h16"/>',
    "help": (
        '<circle cx="12" cy="12" r="9"/><path d="M9.6 9.4a2.5 2.5 0 0 1 4.9.7c0 1.7-2.5 2.2-2.5 3.9"/>'
        '<path d="M12 17v.01"/>'
    ),
    "chat": '<path d="M20.5 11.5a8 8 0 0 1-11.8 7.1L3.5 20l1.4-4.9A8 8 0 1 1 20.5 11.5z"/>',
    "chart": '<path d="M4 20V4"/><path d="M4 20h16"/><path d="m7.5 15 4-5 3 3 5-6.5"/>',
    "grid": (
        '<rect x="3.5" y="3.5" width="7" height="7" rx="1.8"/>'
        '<rect x="13.5" y="3.5" width="7" height="7" rx="1.8"/>'
        '<rect x="3.5" y="13.5" width="7" height="7" rx="1.8"/>'
        '<rect x="13.5" y="13.5" width="7" height="7" rx="1.8"/>'
    ),
    "gauge": (
        '<path d="M4.2 17.5a8.5 8.5 0 1 1 15.6 0"/><path d="m12 13.5 4-4.5"/>'
        '<circle cx="12" cy="14" r="1.4" fill="{c}"/>'
    ),
    "thumb_up": _THUMB,
    "thumb_down": f'<g transform="rotate(180 12 12)">{_THUMB}</g>',
    "check": '<path d="M20 6.5 9.5 17 4 11.5"/>',
    # Writing tools (ui/writing_bar.py): continue a reply, impersonate, the author's note, hide.
    "continue": '<path d="M4 12h10"/><path d="m10 7 5 5-5 5"/><path d="M19.5 6v12"/>',
    "impersonate": (
        '<circle cx="10" cy="8" r="3.5"/><path d="M3.5 20a6.5 6.5 0 0 1 9-6"/>'
        '<path d="m14 20 1-3.2 4.7-4.7a1.6 1.6 0 0 1 2.2 2.2L17.2 19z"/>'
    ),
    "note": '<path d="M5 4h14v10.5L13.5 20H5z"/><path d="M13.5 20v-5.5H19"/><path d="M8.5 8.5h7M8.5 12h4"/>',
    "wand": (
        '<path d="m4 20 10.5-10.5"/><path d="m13 8 2.5 2.5"/>'
        '<path d="M17.5 3v3M16 4.5h3M20.5 9v2M19.5 10h2M10 3.5v2M9 4.5h2"/>'
    ),
    "eye": f'{_EYE}<circle cx="12" cy="12" r="3"/>',
    "eye_off": f'{_EYE}<path d="m4 4 16 16"/>',
    "branch": (
        '<circle cx="6.5" cy="5.5" r="2"/><circle cx="6.5" cy="18.5" r="2"/>'
        '<circle cx="17.5" cy="7.5" r="2"/>'
        '<path d="M6.5 7.5v9"/><path d="M17.5 9.5c0 4.5-11 3-11 7"/>'
    ),
    "server": (
        '<rect x="3.5" y="4" width="17" height="7" rx="2"/>'
        '<rect x="3.5" y="13" width="17" height="7" rx="2"/>'
        '<path d="M7.5 7.5h.01M7.5 16.5h.01"/>'
    ),
    "users": (
        '<circle cx="9" cy="8" r="3.5"/><path d="M2.5 20a6.5 6.5 0 0 1 13 0"/>'
        '<path d="M16 4.6a3.5 3.5 0 0 1 0 6.8"/><path d="M18 14.2a6.5 6.5 0 0 1 3.5 5.8"/>'
    ),
    "volume": (
        '<path d="M11 5 6 9H3v6h3l5 4z"/><path d="M15.5 8.5a5 5 0 0 1 0 7"/>'
        '<path d="M18.5 5.5a9 9 0 0 1 0 13"/>'
    ),
    "mute": '<path d="M11 5 6 9H3v6h3l5 4z"/><path d="m22 9-6 6M16 9l6 6"/>',
}

_TEMPLATE = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" fill="none" stroke="{c}" '
    'stroke-width="{w}" stroke-linecap="round" stroke-linejoin="round">{body}</svg>'
)


def svg(name: str, colour: str, stroke: float = 1.9) -> bytes:
    body = _SHAPES[name].replace("{c}", colour)
    return _TEMPLATE.format(c=colour, w=stroke, body=body).encode()


def pixmap(name: str, colour: str, size: int = 18) -> QPixmap:
    """The icon as one picture in ``colour``, ``size`` pixels square on the primary screen."""
    screen = QGuiApplication.primaryScreen()
    ratio = screen.devicePixelRatio() if screen is not None else 1.0
    image = _render(name, colour, int(size * ratio))
    image.setDevicePixelRatio(ratio)
    return image


def _render(name: str, colour: str, pixels: int) -> QPixmap:
    image = QPixmap(pixels, pixels)
    image.fill(Qt.GlobalColor.transparent)
    renderer = QSvgRenderer(QByteArray(svg(name, colour)))
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter, QRectF(0, 0, pixels, pixels))
    painter.end()
    return image


@cache
def _picture(name: str, colour: str, pixels: int) -> QPixmap:
    return _render(name, colour, max(1, pixels))


class _LineIconEngine(QIconEngine):
    """Paints the icon in its colour for the mode and state, as the palette in use has it."""

    def __init__(self, name: str, colours: dict[tuple[QIcon.Mode, QIcon.State], str]) -> None:
        super().__init__()
        self._name = name
        self._colours = colours

    def _colour(self, mode: QIcon.Mode, state: QIcon.State) -> str:
        colour = self._colours.get((mode, state)) or self._colours[(mode, QIcon.State.Off)]
        return live_colour(colour)

    def pixmap(self, size: QSize, mode: QIcon.Mode, state: QIcon.State) -> QPixmap:
        # In device pixels: QIcon asks for size x ratio and sets the ratio on what comes back.
        return _picture(self._name, self._colour(mode, state), min(size.width(), size.height()))

    def paint(self, painter: QPainter, rect: QRect, mode: QIcon.Mode, state: QIcon.State) -> None:
        device = painter.device()
        ratio = device.devicePixelRatioF() if device is not None else 1.0
        side = int(min(rect.width(), rect.height()) * ratio)
        painter.drawPixmap(rect, _picture(self._name, self._colour(mode, state), side))

    def clone(self) -> QIconEngine:
        return _LineIconEngine(self._name, self._colours)


@cache
def icon(
    name: str,
    colour: str = COLORS.text_dim,
    active: str | None = None,
    size: int = 18,
    checked: str | None = None,
) -> QIcon:
    """A themed icon; ``active`` is the colour on hover (defaults to the full text colour) and
    ``checked`` the colour of a checked button's icon (defaults to ``colour``)."""
    del size  # drawn at whatever size the widget asks for; kept so callers can say what they use
    off, on = QIcon.State.Off, QIcon.State.On
    colours = {
        (QIcon.Mode.Normal, off): colour,
        (QIcon.Mode.Active, off): active or COLORS.text,
        (QIcon.Mode.Selected, off): active or COLORS.text,
        (QIcon.Mode.Disabled, off): COLORS.border_strong,
    }
    if checked is not None:
        colours[(QIcon.Mode.Normal, on)] = colours[(QIcon.Mode.Active, on)] = checked
    return QIcon(_LineIconEngine(name, colours))


def use_line_icons_in_qt_dialogs() -> None:
    """Give Qt's own dialogs (the file dialogs) these line icons in the theme's colours.

    Without a desktop icon theme Qt draws their toolbar with its built-in black icons, which are
    invisible on the dark theme: the buttons looked blank.  Call it once the window is up: the
    style change re-polishes every widget, and QStyle's enums cost ~10 ms to build.
    """
    from PySide6.QtWidgets import QProxyStyle, QStyle, QStyleOption, QWidget

    app = QApplication.instance()
    if not isinstance(app, QApplication) or isinstance(app.style(), QProxyStyle):
        return
    pixmaps = QStyle.StandardPixmap
    names = {
        pixmaps.SP_ArrowBack: "left",
        pixmaps.SP_ArrowLeft: "left",
        pixmaps.SP_ArrowForward: "right",
        pixmaps.SP_ArrowRight: "right",
        pixmaps.SP_ArrowUp: "up",
        pixmaps.SP_FileDialogToParent: "up",
        pixmaps.SP_FileDialogNewFolder: "new_folder",
        pixmaps.SP_FileDialogListView: "grid",
        pixmaps.SP_FileDialogDetailedView: "rows",
    }

    class LineIconStyle(QProxyStyle):
        def standardIcon(
            self,
            which: QStyle.StandardPixmap,
            option: QStyleOption | None = None,
            widget: QWidget | None = None,
        ) -> QIcon:
            name = names.get(which)
            return icon(name) if name is not None else super().standardIcon(which, option, widget)

    app.setStyle(LineIconStyle("Fusion"))
