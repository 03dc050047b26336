"""Settings in the real window: applied without restart, bad models reported, API keys kept safe."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keyring
import pytest
from keyring.backends import fail
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from nexus_desktop.chat.sources import REMOTE_KEY_NAME
from nexus_desktop.db.store import Store
from nexus_desktop.ui import settings_dialog
from nexus_desktop.ui.ops import wait_for_running_ops
from nexus_desktop.ui.settings_dialog import SettingsDialog
from tests import ui_support
from tests.ui_support import (
    LONG,
    banner_texts,
    needs_model,
    run,
    type_and_send,
    wait_model_ready,
    wait_reply_done,
)

# Fixtures shared by the UI tests (the real window on a temporary data dir).
core, data_dir, qt_loop, window = ui_support.core, ui_support.data_dir, ui_support.qt_loop, ui_support.window


@pytest.fixture
def no_keyring() -> Iterator[None]:
    """A machine without any keyring: keyring's own 'fail' backend, for this test only."""
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    yield
    keyring.set_keyring(previous)


def save(qtbot: Any, dialog: SettingsDialog) -> None:
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)


def test_the_dialog_uses_the_key_name_the_model_sources_read() -> None:
    assert settings_dialog.KEY_NAME == REMOTE_KEY_NAME


def test_saved_settings_apply_at_once_and_persist(qtbot: Any, window: Any, core: Any) -> None:
    dialog = window.open_settings("generation")
    assert dialog.tabs.currentIndex() == 1
    dialog.user_name.setText("Captain")
    dialog.max_tokens.setValue(77)
    dialog.temperature.setValue(0.3)
    save(qtbot, dialog)

    qtbot.waitUntil(lambda: core.settings.user_name == "Captain", timeout=LONG)
    run(qtbot, wait_for_running_ops())  # the write to the database finishes in the background
    assert not dialog.isVisible()
    assert core.settings.max_tokens == 77 and core.settings.temperature == pytest.approx(0.3)
    assert Store(core.store.path).load_settings().user_name == "Captain"


def test_invalid_settings_are_explained_and_not_saved(qtbot: Any, window: Any, core: Any) -> None:
    dialog = window.open_settings("generation")
    dialog.user_name.setText("   ")
    save(qtbot, dialog)

    assert dialog.isVisible()
    assert any("name" in text for text in banner_texts(dialog.banners, "error"))
    assert core.settings.user_name == "Tester"
    dialog.reject()


@pytest.mark.model
@needs_model
def test_a_broken_model_file_shows_an_error_banner_and_the_app_keeps_working(
    qtbot: Any, window: Any, core: Any, tmp_path: Path
) -> None:
    wait_model_ready(qtbot, window)
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\x00\xff" * 64)

    dialog = window.open_settings("model")
    dialog.model_path.setText(str(broken))
    save(qtbot, dialog)

    chat = window.chat_view
    qtbot.waitUntil(lambda: bool(banner_texts(chat.banners, "error")), timeout=LONG)
    (message,) = banner_texts(chat.banners, "error")
    assert "broken.gguf" in message or "GGUF" in message, message
    assert window.status_line.state == "error"
    banner = chat.banners.banners()[0]
    assert banner.action_button is not None and banner.action_button.text() == "Model settings"

    # Sending now fails clearly and keeps the typed text.
    type_and_send(qtbot, window, "Are you there?")
    wait_reply_done(qtbot, window)
    assert chat.composer.text == "Are you there?"
    assert banner_texts(chat.banners, "error")

    # Back to the good model: the same window chats again.
    banner = chat.banners.banners()[-1]
    assert banner.action_button is not None
    banner.action_button.click()
    dialog = window.findChildren(SettingsDialog)[-1]
    dialog.model_path.clear()
    save(qtbot, dialog)
    wait_model_ready(qtbot, window)
    chat.composer.clear()
    type_and_send(qtbot, window, "Hello again!")
    wait_reply_done(qtbot, window)
    assert chat.widgets[-1].role == "assistant" and chat.widgets[-1].text.strip()


@pytest.mark.usefixtures("no_keyring")
def test_an_api_key_without_a_keyring_can_be_kept_for_this_session_only(
    qtbot: Any, window: Any, core: Any, data_dir: Path
) -> None:
    secret = "sk-test-do-not-store-0123456789"
    dialog = window.open_settings("remote")
    dialog.api_key.setText(secret)
    save(qtbot, dialog)

    qtbot.waitUntil(lambda: getattr(dialog, "session_prompt", None) is not None, timeout=LONG)
    box = dialog.session_prompt
    assert box.isVisible() and "keyring" in box.text().lower()
    qtbot.mouseClick(box.button(QMessageBox.StandardButton.Yes), Qt.MouseButton.LeftButton)

    qtbot.waitUntil(lambda: core.secrets.is_session_only(REMOTE_KEY_NAME), timeout=LONG)
    assert core.secrets.get(REMOTE_KEY_NAME) == secret
    qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=LONG)
    for file in data_dir.rglob("*"):
        if file.is_file():
            assert secret.encode() not in file.read_bytes(), file


@pytest.mark.usefixtures("no_keyring")
def test_refusing_session_only_keeps_the_key_nowhere(qtbot: Any, window: Any, core: Any) -> None:
    dialog = window.open_settings("remote")
    dialog.api_key.setText("sk-test-refused-0123456789")
    save(qtbot, dialog)
    qtbot.waitUntil(lambda: getattr(dialog, "session_prompt", None) is not None, timeout=LONG)
    qtbot.mouseClick(dialog.session_prompt.button(QMessageBox.StandardButton.No), Qt.MouseButton.LeftButton)

    qtbot.waitUntil(lambda: bool(banner_texts(dialog.banners, "error")), timeout=LONG)
    assert dialog.isVisible()
    assert not core.secrets.is_session_only(REMOTE_KEY_NAME)
    dialog.reject()


@pytest.mark.model
@needs_model
@pytest.mark.usefixtures("no_keyring")
def test_a_remote_server_is_fetched_chosen_and_chatted_with(
    qtbot: Any, window: Any, core: Any, llama_server_with_key: Any
) -> None:
    server = llama_server_with_key
    dialog = window.open_settings("remote")
    dialog.base_url.setText(server.base_url)
    dialog.api_key.setText(server.api_key)
    qtbot.mouseClick(dialog.fetch_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.remote_model.count() > 0, timeout=LONG)
    assert dialog.remote_model.currentText()
    dialog.use_remote.setChecked(True)
    save(qtbot, dialog)
    qtbot.waitUntil(lambda: getattr(dialog, "session_prompt", None) is not None, timeout=LONG)
    qtbot.mouseClick(dialog.session_prompt.button(QMessageBox.StandardButton.Yes), Qt.MouseButton.LeftButton)

    status = window.status_line
    qtbot.waitUntil(
        lambda: status.state == "error" or status.state_label.text().startswith("Ready · remote:"),
        timeout=LONG,
    )
    assert status.state == "ready", banner_texts(window.chat_view.banners)
    type_and_send(qtbot, window, "Hello, server!")
    wait_reply_done(qtbot, window)
    reply = window.chat_view.widgets[-1]
    assert reply.role == "assistant" and reply.text.strip(), banner_texts(window.chat_view.banners)
    assert reply.message.stats["model"].startswith("remote:")


def test_prometheus_switched_on_in_settings_serves_and_a_taken_port_shows_a_notice(
    qtbot: Any, window: Any, core: Any
) -> None:
    import socket

    from tests.servers import free_port

    # What the running app does at start (ui/lifecycle.py): follow the setting, notices as banners.
    run(qtbot, core.serve_prometheus(lambda text: window.chat_view.banners.show_banner("warning", text)))
    assert core.prometheus.endpoint is None  # off by default
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        dialog = window.open_settings("app")
        assert not dialog.prometheus_port.isEnabled()
        dialog.prometheus_enabled.setChecked(True)
        dialog.prometheus_port.setValue(busy)
        save(qtbot, dialog)
        qtbot.waitUntil(
            lambda: any(f"port {busy}" in text for text in banner_texts(window.chat_view.banners, "warning")),
            timeout=LONG,
        )
    assert core.prometheus.endpoint is None
    free = free_port()
    dialog = window.open_settings("app")
    assert dialog.prometheus_enabled.isChecked() and dialog.prometheus_port.value() == busy
    dialog.prometheus_port.setValue(free)
    save(qtbot, dialog)
    qtbot.waitUntil(lambda: core.prometheus.endpoint is not None, timeout=LONG)
    assert core.prometheus.endpoint.port == free
    run(qtbot, wait_for_running_ops())
    assert Store(core.store.path).load_settings().prometheus_port == free
