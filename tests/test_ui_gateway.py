"""Settings → Other apps in the real window: the gateway switched on, its address and key shown,
copied and replaced, and a reply streamed to another app while the window stays responsive."""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

import httpx
import openai
import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QAbstractButton, QAbstractSpinBox, QLineEdit, QWidget

from nexus_desktop.gateway.key import KEY_NAME
from nexus_desktop.gateway.service import active_model_id
from nexus_desktop.ui.ops import wait_for_running_ops
from nexus_desktop.ui.settings_dialog import SettingsDialog
from tests import ui_support
from tests.servers import free_port
from tests.ui_support import LONG, banner_texts, needs_model, run

core, data_dir, qt_loop, window = ui_support.core, ui_support.data_dir, ui_support.qt_loop, ui_support.window

pytestmark = pytest.mark.keyring


def click(qtbot: Any, button: QAbstractButton) -> None:
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def models_status(url: str, key: str) -> int:
    return httpx.get(f"{url}/models", headers={"Authorization": f"Bearer {key}"}, timeout=30).status_code


def turn_on(qtbot: Any, window: Any, core: Any, port: int) -> None:
    """As the app does at start (ui/lifecycle.py), then the user switches it on in Settings."""
    run(qtbot, core.serve_gateway(lambda text: window.chat_view.banners.show_banner("warning", text)))
    assert core.gateway.server is None  # off by default
    dialog = window.open_settings("gateway")
    assert dialog.tabs.tabText(dialog.tabs.currentIndex()) == "Other apps"
    section = dialog.gateway
    assert not section.enabled.isChecked() and not section.port.isEnabled()
    section.enabled.setChecked(True)
    section.port.setValue(port)
    assert section.url.text() == f"http://127.0.0.1:{port}/v1"
    click(qtbot, dialog.save_button)
    qtbot.waitUntil(lambda: core.gateway.server is not None, timeout=LONG)
    run(qtbot, wait_for_running_ops())
    assert core.gateway.url == f"http://127.0.0.1:{port}/v1"
    assert not banner_texts(window.chat_view.banners, "warning")


def test_turned_on_the_key_is_shown_copied_and_replaced(qtbot: Any, window: Any, core: Any) -> None:
    port = free_port()
    turn_on(qtbot, window, core, port)
    key = core.gateway.key
    assert key and run(qtbot, _in_thread(core.secrets.get, KEY_NAME)) == key

    dialog = window.open_settings("gateway")
    section = dialog.gateway
    qtbot.waitUntil(lambda: section.key.text() == key, timeout=LONG)
    assert section.key.echoMode() == QLineEdit.EchoMode.Password  # not shown over a shoulder
    click(qtbot, section.copy_key)
    assert QGuiApplication.clipboard().text() == key
    click(qtbot, section.copy_url)
    assert QGuiApplication.clipboard().text() == f"http://127.0.0.1:{port}/v1"

    click(qtbot, section.new_key)
    qtbot.waitUntil(lambda: section.key.text() not in ("", key), timeout=LONG)
    new = section.key.text()
    assert core.gateway.key == new
    assert run(qtbot, _in_thread(models_status, core.gateway.url, key)) == 401
    assert run(qtbot, _in_thread(models_status, core.gateway.url, new)) == 200
    dialog.reject()


@pytest.mark.model
@needs_model
def test_a_reply_streams_to_another_app_while_the_window_stays_responsive(
    qtbot: Any, window: Any, core: Any
) -> None:
    turn_on(qtbot, window, core, free_port())
    client = openai.OpenAI(base_url=core.gateway.url, api_key=core.gateway.key, max_retries=0, timeout=300)
    model = active_model_id(core.settings)
    arrivals: list[float] = []
    failures: list[BaseException] = []

    def other_app() -> None:
        try:
            stream = client.chat.completions.create(
                model=model,
                messages=[{"role": "user", "content": "Tell me about the moon."}],
                max_tokens=64,
                temperature=0,
                stream=True,
            )
            for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    arrivals.append(time.perf_counter())
        except BaseException as error:
            failures.append(error)

    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    thread = threading.Thread(target=other_app)
    thread.start()
    qtbot.waitUntil(lambda: not thread.is_alive(), timeout=LONG)
    timer.stop()
    assert not failures, failures
    assert len(arrivals) >= 8
    # While the reply streamed, the Qt thread kept running its timers: no long stall.
    during = [t for t in ticks if arrivals[0] <= t <= arrivals[-1]]
    gaps = [b - a for a, b in itertools.pairwise(during)]
    assert len(during) >= 10
    assert max(gaps) < 0.5, f"the window froze for {max(gaps):.2f} s"
    assert arrivals[-1] - arrivals[0] > max(gaps)


def test_the_other_apps_page_fits_800_by_500_and_names_every_control(qtbot: Any, core: Any) -> None:
    dialog = SettingsDialog(core, page="gateway")
    qtbot.addWidget(dialog)
    dialog.resize(800, 500)
    dialog.show()
    area = dialog.tabs.currentWidget()
    assert dialog.height() <= 500 and dialog.save_button.isVisible()
    assert area.horizontalScrollBar().maximum() == 0  # nothing cut at the side
    kinds = (QAbstractButton, QAbstractSpinBox, QLineEdit)
    controls = [
        widget
        for widget in dialog.gateway.findChildren(QWidget)
        if isinstance(widget, kinds) and not isinstance(widget.parent(), QAbstractSpinBox)
    ]
    assert len(controls) >= 7
    for control in controls:
        assert control.accessibleName(), control
        assert control.isVisible() and control.width() >= control.minimumSizeHint().width() - 1
    dialog.grab().save("/tmp/gateway-settings.png")
    run(qtbot, wait_for_running_ops())


async def _in_thread(fn: Any, *args: Any) -> Any:
    import asyncio

    return await asyncio.to_thread(fn, *args)
