"""Game mode in the window: the status line shows it (also when ``nexus game-mode on`` turned it
on from another process), a message typed meanwhile stays in the box with the reason, the tray's
switch turns it on and off (the tray icon is built offscreen too, where no tray shows it), and
Settings → Game mode saves its four settings."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QPoint, Qt

from nexus_desktop.db.store import Store
from nexus_desktop.ui.game_mode_view import GameModeBadge
from nexus_desktop.ui.ops import wait_for_running_ops
from nexus_desktop.ui.tray import IDLE_TOOLTIP, Tray
from tests import ui_support
from tests.test_cli import nexus
from tests.ui_support import LONG, banner_texts, needs_model, run, type_and_send, wait_model_ready

# Fixtures shared by the UI tests (the real window on a temporary data dir).
core, data_dir, qt_loop, window = ui_support.core, ui_support.data_dir, ui_support.qt_loop, ui_support.window

UNLOADED = "Game mode: model unloaded while you play"


def badge(window: Any) -> GameModeBadge:
    found: GameModeBadge = window.game_mode_badge
    return found


def fully_inside(widget: Any, container: Any) -> bool:
    """``widget`` is shown whole inside ``container`` (nothing cut off at the edges)."""
    top_left = widget.mapTo(container, QPoint(0, 0))
    inside = container.rect().contains(top_left) and container.rect().contains(
        top_left + QPoint(widget.width() - 1, widget.height() - 1)
    )
    return bool(inside)


@needs_model
def test_the_status_line_shows_game_mode_after_the_cli_turns_it_on(
    qtbot: Any, window: Any, core: Any, data_dir: Any
) -> None:
    wait_model_ready(qtbot, window)
    core.game_mode.poll_seconds = 0.2
    core.start_game_mode()
    assert not badge(window).isVisible()  # positive control: no game, no badge

    turned_on = nexus("game-mode", "on", data_dir=data_dir)
    assert turned_on.returncode == 0, turned_on.stderr
    qtbot.waitUntil(lambda: badge(window).label.text() == UNLOADED, timeout=LONG)
    assert badge(window).isVisible()
    qtbot.waitUntil(lambda: core.sources.state.note == "Unloaded for game mode", timeout=LONG)
    assert window.status_line.state_label.text().startswith("Unloaded for game mode")

    window.resize(800, 500)  # the smallest window the app supports: the badge still fits
    qtbot.waitUntil(lambda: window.width() == 800)
    assert fully_inside(badge(window), window.status_line)
    assert badge(window).label.width() >= badge(window).label.sizeHint().width()

    turned_off = nexus("game-mode", "off", data_dir=data_dir)
    assert turned_off.returncode == 0
    qtbot.waitUntil(lambda: not badge(window).isVisible(), timeout=LONG)
    qtbot.waitUntil(lambda: core.sources.state.phase == "ready", timeout=LONG)  # loaded again


@needs_model
def test_a_message_typed_in_game_mode_stays_in_the_box_with_the_reason(
    qtbot: Any, window: Any, core: Any
) -> None:
    wait_model_ready(qtbot, window)
    core.settings = core.settings.model_copy(update={"game_mode_manual": True})
    run(qtbot, core.game_mode.poll_now())
    assert badge(window).label.text() == UNLOADED

    before = len(window.chat_view.widgets)
    type_and_send(qtbot, window, "Are you still there?")
    qtbot.waitUntil(lambda: bool(banner_texts(window.chat_view.banners, "error")), timeout=LONG)
    (error,) = banner_texts(window.chat_view.banners, "error")
    assert error.startswith("Game mode: the model is unloaded while you play.")
    assert window.chat_view.composer.text == "Are you still there?"  # nothing typed is lost
    assert len(window.chat_view.widgets) == before


@needs_model
def test_the_tray_switch_turns_game_mode_on_and_off(qtbot: Any, window: Any, core: Any) -> None:
    wait_model_ready(qtbot, window)
    core.game_mode.poll_seconds = 0.2
    core.start_game_mode()
    tray = Tray(window, lambda: None)  # offscreen there is no tray to show it; it works all the same
    tray.bind_game_mode(core)
    assert tray.icon.toolTip() == IDLE_TOOLTIP and not tray.game_action.isChecked()

    tray.game_action.trigger()
    qtbot.waitUntil(lambda: core.game_mode.state.phase == "on", timeout=LONG)
    assert tray.icon.toolTip() == f"{IDLE_TOOLTIP}: {UNLOADED}"
    assert tray.game_action.isChecked()
    run(qtbot, wait_for_running_ops())
    assert Store(core.store.path).load_settings().game_mode_manual is True  # saved: the CLI sees it

    tray.game_action.trigger()
    qtbot.waitUntil(lambda: core.game_mode.state.phase == "off", timeout=LONG)
    assert tray.icon.toolTip() == IDLE_TOOLTIP
    qtbot.waitUntil(lambda: core.sources.state.phase == "ready", timeout=LONG)  # loaded again
    tray.hide()


def test_settings_game_mode_saves_its_four_settings(qtbot: Any, window: Any, core: Any) -> None:
    dialog = window.open_settings("game")
    section = dialog.game_mode
    assert dialog.tabs.tabText(dialog.tabs.currentIndex()) == "Game mode"
    for control in (section.manual, section.detect, section.action, section.keep_alive):
        assert control.accessibleName()
    assert section.keep_alive.value() == 5 and section.action.currentData() == "unload"

    section.detect.setChecked(False)
    section.action.setCurrentIndex(section.action.findData("cpu"))
    section.keep_alive.setValue(-1)
    assert section.keep_alive.text() == "Never"
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)

    qtbot.waitUntil(lambda: core.settings.game_mode_action == "cpu", timeout=LONG)
    run(qtbot, wait_for_running_ops())
    stored = Store(core.store.path).load_settings()
    assert (stored.game_mode_detect, stored.game_mode_action, stored.keep_alive_minutes) == (False, "cpu", -1)
    assert stored.game_mode_manual is False
