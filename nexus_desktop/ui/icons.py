"""Line icons drawn from small inline SVGs, tinted to the theme (no icon font, no files to ship)."""

from __future__ import annotations

from functools import cache

from PySide6.QtCore import QByteArray, QRectF, Qt
from PySide6.QtGui import QGuiApplication, QIcon, QPainter, QPixmap
from PySide6.QtSvg import QSvgRenderer

from nexus_desktop.ui.theme import COLORS

_THUMB = (
    '<path d="M7.5 10.5v10"/><path d="M3.5 10.5h4v10h-4z"/>'
    '<path d="M7.5 10.5 11 3.8a2.2 2.2 0 0 1 3.6 1.9L14 9.5h5.2a2 2 0 0 1 2 2.4'
    'l-1.4 7A2 2 0 0 1 17.8 20.5H7.5"/>'
)

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
    "server": (
        '<rect x="3.5" y="4" width="17" height="7" rx="2"/>'
        '<rect x="3.5" y="13" width="17" height="7" rx="2"/>'
        '<path d="M7.5 7.5h.01M7.5 16.5h.01"/>'
    ),
}

_TEMPLATE = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" fill="none" stroke="{c}" '
    'stroke-width="{w}" stroke-linecap="round" stroke-linejoin="round">{body}</svg>'
)


def svg(name: str, colour: str, stroke: float = 1.9) -> bytes:
    body = _SHAPES[name].replace("{c}", colour)
    return _TEMPLATE.format(c=colour, w=stroke, body=body).encode()


def pixmap(name: str, colour: str, size: int = 18) -> QPixmap:
    screen = QGuiApplication.primaryScreen()
    ratio = screen.devicePixelRatio() if screen is not None else 1.0
    image = QPixmap(int(size * ratio), int(size * ratio))
    image.fill(Qt.GlobalColor.transparent)
    renderer = QSvgRenderer(QByteArray(svg(name, colour)))
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter, QRectF(0, 0, size * ratio, size * ratio))
    painter.end()
    image.setDevicePixelRatio(ratio)
    return image


@cache
def icon(name: str, colour: str = COLORS.text_dim, active: str | None = None, size: int = 18) -> QIcon:
    """A themed icon; ``active`` is the colour used on hover (defaults to the full text colour)."""
    result = QIcon()
    result.addPixmap(pixmap(name, colour, size), QIcon.Mode.Normal)
    result.addPixmap(pixmap(name, active or COLORS.text, size), QIcon.Mode.Active)
    result.addPixmap(pixmap(name, COLORS.border_strong, size), QIcon.Mode.Disabled)
    return result
