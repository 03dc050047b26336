"""One module in the gallery: who made it, what it asks for, how it is doing, and what you can do.

The card emits ``requested(action, name)``; the page does the work.  ``modules_style()`` styles the
module screens with the palette in use (applied by the page and its dialogs through
``theme.set_style``, so they follow a theme switch).
"""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QMenu,
    QPushButton,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from nexus_desktop.modules.review_text import report_summary
from nexus_desktop.modules.runtime.protocol import ModuleRuntimeStatus
from nexus_desktop.modules.service import ModuleView
from nexus_desktop.ui import icons
from nexus_desktop.ui.theme import COLORS, Colors, avatar_colour
from nexus_desktop.ui.widgets import initials, push_button


def badge_colours(c: Colors = COLORS) -> dict[str, tuple[str, str]]:
    """(text colour, background) per lifecycle state; the badge's words come from the host's BADGES."""
    return {
        "enabled": (c.success, c.success_soft),
        "awaiting_approval": (c.warning, c.warning_soft),
        "disabled": (c.text_dim, c.surface_active),
        "failed": (c.danger, c.danger_soft),
        "quarantined": (c.danger, c.danger_soft),
        "discovered": (c.accent_hover, c.accent_soft),
        "validated": (c.accent_hover, c.accent_soft),
    }


def modules_style(c: Colors = COLORS) -> str:
    return f"""
#ModulesPage, #ModuleScroll, #ModuleScroll > QWidget > QWidget {{ background: {c.window}; border: none; }}
#PageHeader {{ background: {c.window}; border-bottom: 1px solid {c.border}; }}
#PageTitle {{ font-size: 13pt; font-weight: 650; }}
#PageSubtitle, #CardMeta, #CardFooter {{ color: {c.muted}; font-size: 9pt; }}
#ModuleCard {{ background: {c.assistant_bubble}; border: 1px solid {c.border}; border-radius: 14px; }}
#ModuleCard[state="awaiting_approval"] {{ border: 1px solid {c.warning}; }}
#ModuleCard QLabel {{ background: transparent; border: none; }}
#CardTitle {{ font-size: 11.5pt; font-weight: 650; }}
#CardDescription {{ color: {c.text_dim}; }}
#CardAccess {{ color: {c.text_dim}; font-size: 9pt; }}
#CardSectionLabel {{ color: {c.muted}; font-size: 7.5pt; font-weight: 600; letter-spacing: 1px; }}
#Badge {{ border-radius: 9px; padding: 2px 9px; font-size: 8.5pt; font-weight: 600; }}
#ModuleTile {{ border-radius: 10px; color: white; font-weight: 700; font-size: 11pt; }}
#JobStrip {{ background: {c.surface}; border: 1px solid {c.border}; border-radius: 10px; }}
#JobStrip QLabel {{ background: transparent; border: none; color: {c.text_dim}; }}
QProgressBar {{ background: {c.window}; border: none; border-radius: 3px; max-height: 6px; }}
QProgressBar::chunk {{ background: {c.accent}; border-radius: 3px; }}
#ModuleCard QToolButton::menu-indicator {{ image: none; width: 0; }}
#ReviewBox {{ background: {c.surface}; border: 1px solid {c.border}; border-radius: 10px; }}
#ReviewBox QLabel {{ background: transparent; border: none; }}
#ReviewHeading {{ color: {c.muted}; font-size: 8pt; font-weight: 600; letter-spacing: 1px; }}
#Hash {{ font-family: "DejaVu Sans Mono", monospace; color: {c.text_dim}; font-size: 9pt; }}
#RefusalNote {{ color: {c.danger}; }}
#ReportView {{ color: {c.text_dim}; }}
#WarningNote {{ color: {c.warning}; font-size: 9pt; }}
"""


MENU_ACTIONS = (
    ("credentials", "Set secret…"),
    ("update", "Update from file…"),
    ("rollback", "Roll back to the previous version"),
    ("report", "Show report"),
    ("uninstall", "Uninstall"),
)


def calls_text(calls: int) -> str:
    return f"{calls} call" if calls == 1 else f"{calls} calls"


def footer_text(view: ModuleView) -> str:
    """The card's last line: why it needs you (if it does), its calls while running, its last report."""
    card = view.card
    text = report_summary(card.last_report)
    if view.runtime is not None and view.runtime.state == "running":
        text = f"Running · {calls_text(view.runtime.calls)} · {text}"
    reason = card.reason if card.state in ("failed", "quarantined", "awaiting_approval") else ""
    return f"{reason[:1].upper()}{reason[1:]} · {text}" if reason else text


def badge_label(text: str, state: str) -> QLabel:
    label = QLabel(text)
    label.setObjectName("Badge")
    fg, bg = badge_colours().get(state, (COLORS.text_dim, COLORS.surface_active))
    # Per-state colours are data, not layout: one small rule on the badge itself.
    label.setStyleSheet(f"color: {fg}; background: {bg};")
    label.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Maximum)
    return label


class ModuleCardWidget(QFrame):
    requested = Signal(str, str)
    """(action, module name): validate, approve, enable, disable, release, update, rollback,
    uninstall, report, credentials."""

    def __init__(self, view: ModuleView, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.view = view
        card = view.card
        self.setObjectName("ModuleCard")
        self.setProperty("state", card.state)
        # Preferred, not Maximum: wrapped text in a narrow column needs more lines than the size
        # hint counted, and a card held to its hint draws them over each other.
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 14, 16, 12)
        layout.setSpacing(8)

        header = QHBoxLayout()
        header.setSpacing(12)
        tile = QLabel(initials(card.display_name))
        tile.setObjectName("ModuleTile")
        tile.setFixedSize(40, 40)
        tile.setAlignment(Qt.AlignmentFlag.AlignCenter)
        tile.setStyleSheet(f"background: {avatar_colour(card.name).name()};")
        header.addWidget(tile, 0, Qt.AlignmentFlag.AlignTop)
        titles = QVBoxLayout()
        titles.setSpacing(1)
        self.title = QLabel(card.display_name)
        self.title.setObjectName("CardTitle")
        titles.addWidget(self.title)
        author = f" · by {card.author}" if card.author else ""
        origin = {"bundled": "built-in", "developer": "your developer folder"}.get(card.source, "installed")
        if card.origin == "generated":  # written by the module builder from a request
            origin = "generated"
        meta = QLabel(f"v{card.version}{author} · {origin}")
        meta.setObjectName("CardMeta")
        titles.addWidget(meta)
        header.addLayout(titles, 1)
        self.badge = badge_label(card.badge, card.state)
        header.addWidget(self.badge, 0, Qt.AlignmentFlag.AlignTop)
        layout.addLayout(header)

        if card.description:
            description = QLabel(card.description)
            description.setObjectName("CardDescription")
            description.setWordWrap(True)
            layout.addWidget(description)

        heading = QLabel("ASKS FOR")
        heading.setObjectName("CardSectionLabel")
        layout.addWidget(heading)
        access = card.access or ["Nothing beyond its own folder"]
        self.access_label = QLabel("\n".join(f"•  {line}" for line in access))
        self.access_label.setObjectName("CardAccess")
        self.access_label.setWordWrap(True)
        layout.addWidget(self.access_label)

        self.footer = QLabel(footer_text(view))
        self.footer.setObjectName("CardFooter")
        self.footer.setWordWrap(True)
        layout.addWidget(self.footer)

        buttons = QHBoxLayout()
        buttons.setSpacing(8)
        self.buttons: dict[str, QPushButton] = {}
        # Only what the lifecycle allows now (``ModuleView.can``): every button shown succeeds.
        for action, text, role in (
            ("approve", "Approve…", "primary"),
            ("enable", "Enable", "primary"),
            ("release", "Release for review…", "primary"),
            ("validate", "Validate", ""),
            ("disable", "Disable", ""),
        ):
            if view.can(action):
                button = push_button(text, role=role)
                button.clicked.connect(lambda _=False, a=action: self.requested.emit(a, card.name))
                self.buttons[action] = button
                buttons.addWidget(button)
        buttons.addStretch(1)
        self.menu_actions: dict[str, QAction] = {}
        menu = QMenu(self)
        for action, text in MENU_ACTIONS:
            if view.can(action):
                item = menu.addAction(text)
                item.triggered.connect(lambda _=False, a=action: self.requested.emit(a, card.name))
                self.menu_actions[action] = item
        self.more = QToolButton()
        self.more.setIcon(icons.icon("settings", size=16))
        self.more.setIconSize(QSize(16, 16))
        self.more.setText("More")
        self.more.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.more.setToolTip("More actions")
        self.more.setProperty("role", "ghost")
        self.more.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.more.setMenu(menu)
        self.more.setVisible(bool(self.menu_actions))
        buttons.addWidget(self.more)
        layout.addLayout(buttons)

    def show_runtime(self, runtime: ModuleRuntimeStatus | None) -> None:
        """Show how its process is doing now (the call count moves while the module is used)."""
        if runtime != self.view.runtime:
            self.view = replace(self.view, runtime=runtime)
            self.footer.setText(footer_text(self.view))

    def trigger(self, action: str) -> None:
        """Do what clicking that button or menu entry does (keyboard users and tests)."""
        if action in self.buttons:
            self.buttons[action].click()
        elif action in self.menu_actions:
            self.menu_actions[action].trigger()
        else:
            raise KeyError(f"{self.view.name} offers no {action} now")
