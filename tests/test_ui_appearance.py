"""Appearance: the light theme beside the dark one, following the desktop, font scaling, icons that
follow a switch, Qt's own dialogs with visible icons, and a screen-reader name on every control."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QApplication, QWidget

from tests.ui_support import LONG, run


def luminance(colour: str) -> float:
    def channel(value: int) -> float:
        v = value / 255
        return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4

    c = QColor(colour)
    return 0.2126 * channel(c.red()) + 0.7152 * channel(c.green()) + 0.0722 * channel(c.blue())


def contrast(a: str, b: str) -> float:
    """WCAG 2 contrast ratio of two colours (1 to 21)."""
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


@pytest.fixture
def dark_again(qapp: Any) -> Iterator[None]:
    """Whatever a test switches to, the next test starts from the dark theme at 100%."""
    yield
    from nexus_desktop.ui.theme import set_appearance

    set_appearance("dark", 100)


def test_the_light_palette_keeps_every_text_colour_readable_on_every_background() -> None:
    from nexus_desktop.ui.theme import LIGHT

    assert contrast("#777777", "#888888") < 4.5  # the check can fail: a grey on a grey does
    backgrounds = [LIGHT.window, LIGHT.sidebar, LIGHT.surface, LIGHT.assistant_bubble, LIGHT.user_bubble]
    for text in (LIGHT.text, LIGHT.text_dim, LIGHT.muted):
        for background in backgrounds:
            assert contrast(text, background) >= 4.5, (text, background)
    for coloured in (LIGHT.danger, LIGHT.warning, LIGHT.success, LIGHT.accent_hover):
        assert contrast(coloured, LIGHT.window) >= 4.5, coloured  # warnings, badges and links as text
    for badge, background in [
        (LIGHT.success, LIGHT.success_soft),
        (LIGHT.warning, LIGHT.warning_soft),
        (LIGHT.danger, LIGHT.danger_soft),
        (LIGHT.accent_hover, LIGHT.accent_soft),
    ]:
        assert contrast(badge, background) >= 4.5, badge
    assert contrast("#ffffff", LIGHT.accent) >= 4.5  # a primary button's label


def test_switching_to_light_restyles_the_open_window_its_icons_and_pages_live(
    qtbot: Any, window: Any, dark_again: None
) -> None:
    from nexus_desktop.ui.theme import COLORS, DARK, LIGHT, resolved_theme, set_appearance

    def pixel(widget: QWidget, x: int = 3, y: int = 3) -> str:
        return widget.grab().toImage().pixelColor(x, y).name()

    def icon_colours(button: Any) -> set[str]:
        image = button.icon().pixmap(18, 18).toImage()
        seen = [image.pixelColor(x, y) for x in range(18) for y in range(18)]
        return {c.name() for c in seen if c.alpha() > 200}

    settings_button = window.top_bar.settings_button
    assert resolved_theme() == "dark" and pixel(window.sidebar) == DARK.sidebar
    assert DARK.text_dim in icon_colours(settings_button)

    set_appearance("light", 100)
    qtbot.waitUntil(lambda: pixel(window.sidebar) == LIGHT.sidebar, timeout=LONG)
    assert COLORS.window == LIGHT.window and resolved_theme() == "light"
    assert pixel(window.top_bar) == LIGHT.window
    # The button was made in the dark theme; its icon is drawn in the light one's colour now.
    assert LIGHT.text_dim in icon_colours(settings_button) and DARK.text_dim not in icon_colours(
        settings_button
    )

    set_appearance("dark", 100)
    qtbot.waitUntil(lambda: pixel(window.sidebar) == DARK.sidebar, timeout=LONG)


def test_a_page_styled_with_set_style_follows_a_switch(qtbot: Any, qt_loop: Any, dark_again: None) -> None:
    from nexus_desktop.ui.theme import COLORS, LIGHT, set_appearance, set_style

    page = QWidget()
    qtbot.addWidget(page)
    set_style(page, lambda: f"QWidget {{ background: {COLORS.window}; font-size: 9pt; }}")
    assert "font-size: 9pt" in page.styleSheet()
    set_appearance("light", 120)
    assert LIGHT.window in page.styleSheet()
    assert "font-size: 10.8pt" in page.styleSheet()  # 9pt at 120%


def test_with_the_system_theme_the_app_follows_the_desktop_switching_scheme(
    qtbot: Any, qt_loop: Any, monkeypatch: pytest.MonkeyPatch, dark_again: None
) -> None:
    from nexus_desktop.ui import theme

    theme.set_appearance("system", 100)
    assert theme.resolved_theme() == "dark"  # the offscreen desktop reports no scheme: dark
    hints = QApplication.styleHints()
    # The desktop turns light: Qt reports it through colorSchemeChanged (offscreen cannot switch,
    # so its answer is stood in for; the signal and everything after it are real).
    monkeypatch.setattr(theme, "_system_is_light", lambda: True)
    hints.colorSchemeChanged.emit(Qt.ColorScheme.Light)
    assert theme.resolved_theme() == "light" and theme.COLORS.window == theme.LIGHT.window

    # A user who chose dark keeps it whatever the desktop does.
    theme.set_appearance("dark", 100)
    hints.colorSchemeChanged.emit(Qt.ColorScheme.Light)
    assert theme.resolved_theme() == "dark"


def test_font_scaling_grows_every_text_the_stylesheet_sizes_and_the_default_font(
    qtbot: Any, window: Any, dark_again: None
) -> None:
    from nexus_desktop.ui.theme import set_appearance

    composer = window.chat_view.composer.input
    title = window.top_bar.title
    assert composer.font().pointSizeF() == pytest.approx(10.5)
    assert title.font().pointSizeF() == pytest.approx(13)

    set_appearance("dark", 150)
    qtbot.waitUntil(lambda: composer.font().pointSizeF() == pytest.approx(15.75), timeout=LONG)
    assert title.font().pointSizeF() == pytest.approx(19.5)
    assert QApplication.font().pointSizeF() == pytest.approx(15)
    # Sidebar rows grow with their text, so the description under a name is not cut off.
    row = window.sidebar.list.visualItemRect(window.sidebar.list.item(0))
    assert row.height() > 60

    set_appearance("dark", 80)
    qtbot.waitUntil(lambda: composer.font().pointSizeF() == pytest.approx(8.4), timeout=LONG)


def test_settings_appearance_previews_at_once_cancel_puts_it_back_and_save_keeps_it(
    qtbot: Any, window: Any, core: Any, dark_again: None
) -> None:
    from nexus_desktop.db.store import Store
    from nexus_desktop.ui.theme import font_scale, resolved_theme

    dialog = window.open_settings("appearance")
    page = dialog.appearance
    assert dialog.tabs.tabText(dialog.tabs.currentIndex()) == "Appearance"
    page.theme_box.setCurrentIndex(page.theme_box.findData("light"))
    page.scale_slider.setValue(120)
    qtbot.waitUntil(lambda: resolved_theme() == "light" and font_scale() == 120, timeout=LONG)
    dialog.reject()
    assert resolved_theme() == "dark" and font_scale() == 100

    dialog = window.open_settings("appearance")
    dialog.appearance.theme_box.setCurrentIndex(dialog.appearance.theme_box.findData("light"))
    dialog.save_button.click()
    qtbot.waitUntil(lambda: core.settings.theme == "light", timeout=LONG)
    assert resolved_theme() == "light"
    qtbot.waitUntil(lambda: Store(core.store.path).load_settings().theme == "light", timeout=LONG)


def test_the_saved_appearance_is_applied_when_the_window_opens(
    qtbot: Any, core: Any, dark_again: None
) -> None:
    from nexus_desktop.ui.main_window import MainWindow
    from nexus_desktop.ui.theme import font_scale, resolved_theme
    from tests.ui_support import close_window

    core.settings = core.settings.model_copy(update={"theme": "light", "font_scale": 110})
    main_window = MainWindow()
    main_window.show()
    run(qtbot, main_window.attach(core, load_model=False))
    try:
        assert resolved_theme() == "light" and font_scale() == 110
    finally:
        close_window(qtbot, main_window, core)


def test_qt_file_dialogs_show_their_toolbar_icons_on_the_dark_theme(qtbot: Any, qt_loop: Any) -> None:
    from PySide6.QtWidgets import QFileDialog, QToolButton

    from nexus_desktop.ui.icons import use_line_icons_in_qt_dialogs
    from nexus_desktop.ui.theme import COLORS

    def toolbar_contrast() -> float:
        dialog = QFileDialog(None, "Open a GGUF model")
        dialog.setOption(QFileDialog.Option.DontUseNativeDialog, True)
        qtbot.addWidget(dialog)
        back = dialog.findChild(QToolButton, "backButton")
        image = back.icon().pixmap(16, 16).toImage()
        drawn = [image.pixelColor(x, y) for x in range(16) for y in range(16)]
        return max(contrast(c.name(), COLORS.window) for c in drawn if c.alpha() > 200)

    # Qt's built-in icons are black: on the dark window they cannot be seen (the blank buttons).
    assert toolbar_contrast() < 1.5
    use_line_icons_in_qt_dialogs()
    assert toolbar_contrast() >= 4.5


# Screen-reader names ---------------------------------------------------------------------------


def unnamed_controls(root: QWidget) -> list[str]:
    """Every control under ``root`` a screen reader would announce without a name."""
    from PySide6.QtGui import QAccessible
    from PySide6.QtWidgets import QAbstractButton, QComboBox, QLineEdit, QPlainTextEdit, QSlider, QTextEdit

    kinds = (QAbstractButton, QLineEdit, QComboBox, QTextEdit, QPlainTextEdit, QSlider)
    found = []
    for widget in [root, *root.findChildren(QWidget)]:
        if not isinstance(widget, kinds) or widget.parent().inherits("QComboBox"):
            continue  # a combo box's own line edit speaks for the box
        if widget.parent().inherits("QLineEdit"):
            continue  # a field's clear and search icons are part of the (named) field
        if widget.objectName().startswith("qt_"):
            continue  # Qt's internals (a scroll area's corner, a tab bar's scroll arrows)
        interface = QAccessible.queryAccessibleInterface(widget)
        name = interface.text(QAccessible.Text.Name).strip() if interface is not None else ""
        if not name:
            found.append(
                f"{type(widget).__name__} {widget.objectName()!r} in {type(widget.parent()).__name__}"
            )
    return found


def test_the_name_check_finds_a_control_without_a_name(qtbot: Any, qt_loop: Any) -> None:
    from PySide6.QtWidgets import QFormLayout, QLineEdit

    form_holder = QWidget()
    qtbot.addWidget(form_holder)
    form = QFormLayout(form_holder)
    form.addRow("Server address", QLineEdit())  # named by its label
    assert unnamed_controls(form_holder) == []
    form.addRow(QLineEdit())  # nothing says what it is for
    assert unnamed_controls(form_holder) == ["QLineEdit '' in QWidget"]


def test_every_control_of_the_window_and_its_dialogs_has_a_screen_reader_name(
    qtbot: Any, window: Any, core: Any
) -> None:
    from nexus_desktop.ui.character_editor import CharacterEditor
    from nexus_desktop.ui.modules_page import ModulesPage
    from nexus_desktop.ui.shortcuts_dialog import ShortcutsDialog

    assert unnamed_controls(window) == []
    modules = ModulesPage()
    qtbot.addWidget(modules)
    assert unnamed_controls(modules) == []
    editor = CharacterEditor(window, window.character(window.sidebar.current_id()))
    qtbot.addWidget(editor)
    editor.greetings.add_greeting("Hello again")
    editor.lorebook.add_entry({"keys": ["ship"], "content": "The Marrow Lantern"})
    assert unnamed_controls(editor) == []
    assert unnamed_controls(ShortcutsDialog(window)) == []
    settings = window.open_settings("appearance")
    assert unnamed_controls(settings.appearance) == []
