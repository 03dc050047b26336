"""The colours: a dark and a light palette with a single violet accent, and ``COLORS``, the one
in use, which every widget reads its colours from (``theme.set_appearance`` switches it).
"""

from __future__ import annotations

from PySide6.QtGui import QColor, QPalette


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


_ROLE_OF = {value.lower(): name for table in (DARK, LIGHT) for name, value in table.roles().items()}


def palette(c: Colors = COLORS) -> QPalette:
    """Qt's palette made of ``c``: Fusion draws every control from it."""
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
