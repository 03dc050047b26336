"""The app's stylesheet: every widget's look, made from a palette's colours.

Widgets pick their rules through ``objectName`` and dynamic properties rather than inline
stylesheets; a page with rules of its own keeps them beside it (``theme.set_style``), since Qt
matches every widget it polishes against every rule here.
"""

from __future__ import annotations

from nexus_desktop.ui.palettes import COLORS, Colors


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
