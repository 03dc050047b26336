"""The Dashboards page's own style rules (kept off theme.stylesheet(): only this page uses them).

The gate decision view is the Training page's (``ui/gate_view.py``), so its rules come along.
"""

from __future__ import annotations

from nexus_desktop.ui.theme import COLORS
from nexus_desktop.ui.training_style import page_style as training_style

HEALTH_COLOURS = {
    "healthy": COLORS.success,
    "degraded": COLORS.warning,
    "stalled": COLORS.danger,
    "unknown": COLORS.muted,
}
OUTCOME_COLOURS = {
    "ok": COLORS.success,
    "error": COLORS.danger,
    "timeout": COLORS.warning,
    "skipped": COLORS.muted,
    "running": COLORS.accent_hover,
}
SERIES_COLOURS = ("#7c6cff", "#2fc4b2", "#f2a33d", "#ff6c9d", "#4f9dff", "#b86cff", "#ff8a4c", "#4cd07d")


def page_style() -> str:
    """The rules in the palette in use (``theme.set_style`` applies them again after a switch)."""
    return (
        training_style()
        + f"""
#DashboardsPage, #DashView, #DashView QSplitter {{ background: {COLORS.window}; }}
#DashView QSplitter::handle {{ background: transparent; }}
#DashTabs {{ background: {COLORS.window}; }}
#DashTabs::tab {{ padding: 8px 12px; }}
#DashTable {{ background: {COLORS.window}; border: 1px solid {COLORS.border}; border-radius: 8px; }}
#DashTable::item {{ padding: 2px 6px; border-bottom: 1px solid {COLORS.border}; }}
#DashTable::item:selected {{ background: {COLORS.accent_soft}; color: {COLORS.text}; }}
#DashError {{ color: {COLORS.danger}; font-size: 9pt; }}
#DashHint {{ color: {COLORS.muted}; font-size: 8.5pt; }}
#DashLegend {{ color: {COLORS.text_dim}; font-size: 8.5pt; }}
#HealthPill {{ border-radius: 9px; padding: 3px 10px; font-size: 8.5pt; font-weight: 700;
    letter-spacing: 1px; color: {COLORS.window}; }}
#HealthReason {{ color: {COLORS.text}; }}
#ReportView {{ background: {COLORS.sidebar}; border: 1px solid {COLORS.border}; border-radius: 8px;
    padding: 6px; }}
#PanelCard {{ background: {COLORS.surface}; border: 1px solid {COLORS.border}; border-radius: 12px; }}
#PanelCard QLabel {{ background: transparent; }}
#PanelTitle {{ font-weight: 650; }}
#PanelKey {{ color: {COLORS.text_dim}; }}
#PanelValue {{ font-weight: 600; }}
#PanelError {{ color: {COLORS.danger}; }}
#DashView QComboBox {{ padding: 4px 8px; }}
"""
    )
