"""The Training page's own style rules and job-state colours.

They live beside the page, not in theme.stylesheet(): Qt matches every widget it polishes against
every rule of the application's stylesheet, so rules only this page uses would slow the whole app.
"""

from __future__ import annotations

from nexus_desktop.ui.theme import COLORS


def page_style() -> str:
    """The rules in the palette in use (``theme.set_style`` applies them again after a switch)."""
    return f"""
#TrainingPage {{ background: {COLORS.window}; }}
#ZooPane {{ background: {COLORS.sidebar}; border-right: 1px solid {COLORS.border}; }}
#ZooList {{ background: transparent; border: none; padding: 0; }}
#ZooList::item {{ border-radius: 10px; margin: 1px 0; padding: 0; }}
#ZooList::item:hover {{ background: {COLORS.surface}; }}
#ZooList::item:selected {{ background: {COLORS.accent_soft}; }}
#ZooName {{ font-weight: 650; background: transparent; }}
#ZooMeta {{ color: {COLORS.muted}; font-size: 8.5pt; background: transparent; }}
#ZooCount {{ color: {COLORS.text_dim}; font-size: 8.5pt; background: transparent; }}
QProgressBar {{ background: {COLORS.surface_active}; border: none; border-radius: 3px; max-height: 6px; }}
QProgressBar::chunk {{ background: {COLORS.accent}; border-radius: 3px; }}
QProgressBar[ready="true"]::chunk {{ background: {COLORS.success}; }}
#Card {{ background: {COLORS.surface}; border: 1px solid {COLORS.border}; border-radius: 12px; }}
#Card QLabel {{ background: transparent; }}
#StatValue {{ font-size: 13pt; font-weight: 650; }}
#StatLabel {{ color: {COLORS.muted}; font-size: 8pt; font-weight: 600; letter-spacing: 1px; }}
#JobTable {{ background: {COLORS.window}; border: none; }}
#JobTable::item {{ padding: 4px; border-bottom: 1px solid {COLORS.border}; }}
#JobTable::item:selected {{ background: {COLORS.accent_soft}; color: {COLORS.text}; }}
#LogTail {{ background: {COLORS.sidebar}; border: none; font-family: "DejaVu Sans Mono", monospace;
    font-size: 8.5pt; color: {COLORS.text_dim}; }}
#VerdictPill {{ border-radius: 9px; padding: 3px 10px; font-size: 8.5pt; font-weight: 700;
    letter-spacing: 1px; }}
#VerdictPill[state="promoted"] {{ background: {COLORS.success}; color: {COLORS.window}; }}
#VerdictPill[state="approved"] {{ background: {COLORS.accent_soft}; color: {COLORS.accent_hover};
    border: 1px solid {COLORS.accent}; }}
#VerdictPill[state="rejected"] {{ background: {COLORS.danger_soft}; color: {COLORS.danger};
    border: 1px solid {COLORS.danger}; }}
#VerdictPill[state="pending"] {{ background: {COLORS.surface_active}; color: {COLORS.text_dim}; }}
#GateTitle {{ font-weight: 650; }}
#GatePolicy {{ color: {COLORS.muted}; font-size: 9pt; }}
#GateReason {{ color: {COLORS.text}; font-size: 10.5pt; }}
#GateOverride {{ color: {COLORS.warning}; font-size: 9pt; }}
#GateTable {{ background: {COLORS.window}; border: none; }}
#GateTable::item {{ border-bottom: 1px solid {COLORS.border}; padding-right: 12px; }}
#GateHistory {{ background: transparent; border: none; padding: 0; }}
#GateHistory::item {{ color: {COLORS.text_dim}; padding: 3px 2px; border-radius: 6px; }}
#GateView, #LossTab {{ background: {COLORS.window}; }}
QPushButton[role="danger"]:disabled {{ background: {COLORS.sidebar}; border-color: {COLORS.border};
    color: {COLORS.muted}; }}
"""


STATE_COLOURS = {
    "RUNNING": COLORS.accent_hover,
    "PENDING": COLORS.text_dim,
    "DONE": COLORS.success,
    "FAILED": COLORS.danger,
    "CANCELLED": COLORS.muted,
}
