"""The Models page's rules, built from the palette in use (``theme.set_style`` keeps them in step
with a theme switch)."""

from __future__ import annotations

from nexus_desktop.ui.theme import COLORS, Colors


def library_style(c: Colors = COLORS) -> str:
    return f"""
#ModelLibraryPage, #LibraryScroll, #LibraryScroll > QWidget > QWidget {{ background: {c.window};
    border: none; }}
#PageHeader {{ background: {c.window}; border-bottom: 1px solid {c.border}; }}
#PageTitle {{ font-size: 13pt; font-weight: 650; }}
#PageSubtitle {{ color: {c.muted}; font-size: 9pt; }}
#ModelCard, #DownloadRow, #RepoFile {{ background: {c.assistant_bubble}; border: 1px solid {c.border};
    border-radius: 12px; }}
#ModelCard[inUse="true"] {{ border: 1px solid {c.accent}; }}
#DownloadRow[state="failed"] {{ border: 1px solid {c.danger}; }}
#ModelCard QLabel, #DownloadRow QLabel, #RepoFile QLabel {{ background: transparent; border: none; }}
#CardTitle {{ font-size: 11pt; font-weight: 650; }}
#CardMeta {{ color: {c.text_dim}; font-size: 9pt; }}
#CardPath {{ color: {c.muted}; font-size: 8.5pt; }}
#CardError {{ color: {c.danger}; font-size: 9pt; }}
#DeleteConfirm {{ color: {c.danger}; font-size: 9pt; }}
#Badge {{ border-radius: 9px; padding: 2px 9px; font-size: 8.5pt; font-weight: 600;
    color: {c.accent_hover}; background: {c.accent_soft}; }}
#Badge[tone="good"] {{ color: {c.success}; background: {c.success_soft}; }}
#Badge[tone="partial"] {{ color: {c.warning}; background: {c.warning_soft}; }}
#Badge[tone="bad"] {{ color: {c.danger}; background: {c.danger_soft}; }}
#Badge[tone="plain"] {{ color: {c.text_dim}; background: {c.surface_active}; }}
#RepoList {{ background: {c.surface}; border: 1px solid {c.border}; border-radius: 10px; }}
#RepoList::item {{ padding: 8px; border-radius: 8px; }}
#RepoList::item:selected {{ background: {c.accent_soft}; color: {c.text}; }}
#ModelLibraryPage QTabWidget::pane {{ border: none; }}
#ModelLibraryPage QTabBar {{ margin-left: 12px; }}
#EmptyState {{ color: {c.muted}; font-size: 10pt; }}
QProgressBar {{ background: {c.window}; border: none; border-radius: 3px; max-height: 6px; }}
QProgressBar::chunk {{ background: {c.accent}; border-radius: 3px; }}
#DownloadRow[state="paused"] QProgressBar::chunk {{ background: {c.warning}; }}
#DownloadRow[state="failed"] QProgressBar::chunk {{ background: {c.danger}; }}
"""
