"""The app as a user starts it: a real process that shows its window and quits cleanly on a signal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QMainWindow

from nexus_desktop.ui.tray import Tray
from tests import ui_support

# Fixtures shared by the UI tests (the real window on a temporary data dir).
core, data_dir, qt_loop, window = ui_support.core, ui_support.data_dir, ui_support.qt_loop, ui_support.window

STARTED = "NEXUS Desktop started"


def wait_for_log(log_file: Path, text: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log_file.exists() and text in log_file.read_text(errors="replace"):
            return
        if process.poll() is not None:
            output = process.stdout.read().decode(errors="replace") if process.stdout else ""
            pytest.fail(f"The app exited with {process.returncode} before starting:\n{output}")
        time.sleep(0.2)
    process.kill()
    pytest.fail(f"The app did not log {text!r} within {timeout} s")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_the_app_starts_and_quits_cleanly_on_a_signal(tmp_path: Path, signum: int) -> None:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "NEXUS_DATA_DIR": str(tmp_path)}
    process = subprocess.Popen(
        [sys.executable, "-m", "nexus_desktop"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        wait_for_log(tmp_path / "logs" / "nexus.log", STARTED, process, timeout=180)
        process.send_signal(signum)
        assert process.wait(timeout=120) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert (tmp_path / "nexus.db").exists()


def test_without_a_tray_closing_the_window_quits_even_with_minimise_to_tray(
    qtbot: Any, window: Any, core: Any
) -> None:
    if Tray.available():
        pytest.skip("this desktop has a system tray (offscreen has none)")
    assert Tray.create(QMainWindow(), lambda: None) is None
    core.settings = core.settings.model_copy(update={"minimize_to_tray": True})
    with qtbot.waitSignal(window.closed, timeout=10_000):
        window.close()
    assert not window.isVisible()


def test_with_a_tray_closing_hides_to_it_and_quit_there_quits(qtbot: Any, window: Any, core: Any) -> None:
    if not Tray.available():
        pytest.skip("this desktop has no system tray (run under Xvfb with a tray such as trayer)")
    quits: list[bool] = []
    tray = Tray.create(window, lambda: quits.append(True))
    assert tray is not None
    window.set_tray(tray)
    core.settings = core.settings.model_copy(update={"minimize_to_tray": True})
    closed: list[bool] = []
    window.closed.connect(lambda: closed.append(True))

    window.close()
    assert not window.isVisible() and closed == []
    tray.toggle_window()
    qtbot.waitUntil(window.isVisible, timeout=10_000)
    tray.quit_action.trigger()
    assert quits == [True]
    tray.hide()


def test_added_pages_show_a_page_rail_that_switches_between_them(qtbot: Any, window: Any) -> None:
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QLabel

    assert not window.nav_rail.isVisible()  # one page: no rail
    training = QLabel("Training")
    window.add_page("training", "Training", "chart", training)
    assert window.nav_rail.isVisible()
    assert window.current_page() == "chat"

    qtbot.mouseClick(window.nav_rail.buttons["training"], Qt.MouseButton.LeftButton)
    assert window.current_page() == "training" and training.isVisible()
    assert not window.chat_view.isVisible()
    window.show_page("chat")
    assert window.chat_view.isVisible() and window.nav_rail.buttons["chat"].isChecked()


def test_the_first_frame_shows_the_panels_where_the_chat_screen_then_appears(qapp: Any) -> None:
    from PySide6.QtWidgets import QFrame, QWidget

    from nexus_desktop.ui.main_window import APP_PAGES, MainWindow
    from nexus_desktop.ui.theme import apply_theme

    apply_theme(qapp)
    window = MainWindow(build=False, reserved_pages=APP_PAGES)
    window.show()
    qapp.processEvents()

    def place(widget: QWidget) -> tuple[int, int, int, int]:
        corner = widget.mapTo(window, widget.rect().topLeft())
        return corner.x(), corner.y(), widget.width(), widget.height()

    skeleton = window.centralWidget()
    first_frame = {panel.objectName(): place(panel) for panel in skeleton.findChildren(QFrame)}
    assert set(first_frame) == {"NavRail", "Sidebar", "TopBar", "Composer", "StatusLine"}

    window.build_ui()
    qapp.processEvents()
    built = {
        "NavRail": place(window.nav_rail),
        "Sidebar": place(window.sidebar),
        "TopBar": place(window.top_bar),
        "Composer": place(window.chat_view.composer.frame),
        "StatusLine": place(window.status_line),
    }
    assert first_frame == built

    # The reserved pages are in the rail already; the real page takes its placeholder's place.
    window.show_page("training")
    real_page = QWidget()
    window.add_page("training", "Training", "chart", real_page)
    assert window.current_page() == "training" and real_page.isVisible()
    assert list(window.nav_rail.buttons) == ["chat", "models", "modules", "training", "dashboards"]
    window.close()


def test_the_window_is_painted_before_the_database_model_or_network_code_loads(tmp_path: Path) -> None:
    """The probe run stops once the built window is painted; nothing heavy may have loaded by then."""
    env = {
        **os.environ,
        "QT_QPA_PLATFORM": "offscreen",
        "NEXUS_DATA_DIR": str(tmp_path),
        "NEXUS_STARTUP_PROBE": "1",
    }
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "nexus_desktop"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    marks = [line.split()[0] for line in result.stdout.splitlines() if line.startswith("NEXUS_")]
    assert marks == ["NEXUS_SHOWN", "NEXUS_BUILT"]
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    heavy = {"asyncio", "sqlalchemy", "sqlmodel", "llama_cpp", "httpx", "pydantic", "keyring", "pyqtgraph"}
    assert not {name for name in imported if name.split(".")[0] in heavy}
    assert "nexus_desktop.ui.chat_view" in imported  # the probe did build the chat screen
