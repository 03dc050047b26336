"""Settings in the real window: applied without restart, bad models reported, API keys kept safe;
the Generation page's samplers, presets (SillyTavern files too), lengths and prompt template."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keyring
import pytest
from keyring.backends import fail
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QWidget

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
    dialog.samplers.max_tokens.set_value(77)
    dialog.samplers.fields["temperature"].setValue(0.3)
    save(qtbot, dialog)

    qtbot.waitUntil(lambda: core.settings.max_tokens == 77, timeout=LONG)
    run(qtbot, wait_for_running_ops())  # the write to the database finishes in the background
    assert not dialog.isVisible()
    assert core.settings.temperature == pytest.approx(0.3)
    stored = Store(core.store.path).load_settings()
    assert stored.max_tokens == 77 and stored.temperature == pytest.approx(0.3)


def test_your_name_opens_the_persona_manager(qtbot: Any, window: Any, core: Any) -> None:
    """The user's name lives in personas now; the settings row leads there instead of a dead field."""
    from nexus_desktop.ui.persona_dialog import PersonaDialog

    dialog = window.open_settings("generation")
    qtbot.mouseClick(dialog.personas_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: any(isinstance(w, PersonaDialog) and w.isVisible() for w in dialog.children()))
    for child in dialog.children():
        if isinstance(child, PersonaDialog):
            child.reject()
    dialog.reject()


def test_invalid_settings_are_explained_and_not_saved(qtbot: Any, window: Any, core: Any) -> None:
    dialog = window.open_settings("remote")
    dialog.use_remote.setChecked(True)
    dialog.remote_model.setEditText("")
    save(qtbot, dialog)

    assert dialog.isVisible()
    assert any("model" in text for text in banner_texts(dialog.banners, "error"))
    assert core.settings.source == "local"
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
    qtbot.waitUntil(lambda: window.status_line.state != "error", timeout=LONG)  # the reload has begun
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


# --- Generation: samplers, presets, lengths, template -------------------------------------------

PRESETS = Path(__file__).parent / "fixtures" / "st_presets"


@pytest.fixture
def dialog(qtbot: Any, core: Any) -> Iterator[SettingsDialog]:
    """The settings dialog on the Generation page, on its own (no window, no model loading)."""
    settings_dialog = SettingsDialog(core, page="generation")
    qtbot.addWidget(settings_dialog)
    settings_dialog.show()
    yield settings_dialog
    run(qtbot, wait_for_running_ops())


def retype(qtbot: Any, edit: Any, text: str) -> None:
    """Replace the text in ``edit`` as a user would."""
    edit.selectAll()
    qtbot.keyClick(edit, Qt.Key.Key_Backspace)
    qtbot.keyClicks(edit, text)


def answer_name_prompt(page: Any, name: str) -> None:
    prompt = page.name_prompt
    assert prompt is not None and prompt.isVisible()
    prompt.setTextValue(name)
    prompt.accept()


def test_samplers_and_a_named_preset_are_saved_and_survive_a_restart(
    qtbot: Any, dialog: SettingsDialog, core: Any
) -> None:
    page = dialog.samplers
    for field, value in (("temperature", 0.5), ("top_k", 12), ("min_p", 0.1), ("dry_multiplier", 0.8)):
        page.fields[field].setValue(value)
    page.seed.setValue(77)
    page.mirostat_mode.setCurrentIndex(page.mirostat_mode.findData(2))
    qtbot.mouseClick(page.save_preset_button, Qt.MouseButton.LeftButton)
    answer_name_prompt(page, "  Focused  ")
    assert page.preset_box.currentText() == "Focused"

    applied: list[Any] = []
    dialog.applied.connect(lambda settings, _key: applied.append(settings))
    save(qtbot, dialog)
    (settings,) = applied
    run(qtbot, core.update_settings(settings))

    stored = Store(core.store.path).load_settings()
    assert (stored.temperature, stored.top_k, stored.min_p, stored.seed) == (0.5, 12, 0.1, 77)
    assert (stored.mirostat_mode, stored.dry_multiplier) == (2, 0.8)
    assert stored.sampler_preset == "Focused"
    assert stored.sampler_presets["Focused"] == stored.samplers()
    assert stored.sampling().seed == 77


def test_choosing_renaming_and_deleting_presets_and_cancel_keeps_the_saved_ones(
    qtbot: Any, dialog: SettingsDialog, core: Any
) -> None:
    page = dialog.samplers
    page.fields["temperature"].setValue(1.3)
    page.save_preset_as("Wild")
    page.fields["temperature"].setValue(0.2)
    page.save_preset_as("Calm")

    page.choose_preset("Wild")
    assert page.fields["temperature"].value() == pytest.approx(1.3)
    page.rename_preset("Wild", "Calm")  # taken: refused, nothing renamed
    assert "already called" in banner_texts(dialog.banners, "error")[-1]
    assert set(page.presets) == {"Wild", "Calm"}
    qtbot.mouseClick(page.rename_preset_button, Qt.MouseButton.LeftButton)
    answer_name_prompt(page, "Stormy")
    assert set(page.presets) == {"Stormy", "Calm"} and page.preset_box.currentText() == "Stormy"
    qtbot.mouseClick(page.delete_preset_button, Qt.MouseButton.LeftButton)
    assert set(page.presets) == {"Calm"} and page.preset_box.currentText() == "No preset"
    assert not page.delete_preset_button.isEnabled()

    dialog.reject()
    assert core.settings.sampler_presets == {}  # nothing is kept without Save


def test_a_sillytavern_preset_file_is_imported_and_its_unknown_keys_listed(
    qtbot: Any, dialog: SettingsDialog
) -> None:
    page = dialog.samplers
    page.import_preset(PRESETS / "Midnight Drift.json")
    qtbot.waitUntil(lambda: "Midnight Drift" in page.presets, timeout=LONG)

    assert page.preset_box.currentText() == "Midnight Drift"
    assert page.fields["temperature"].value() == pytest.approx(1.25)
    assert page.fields["dry_multiplier"].value() == pytest.approx(0.8)
    assert page.seed.value() == 1234
    (notice,) = banner_texts(dialog.banners, "info")
    assert "Ignored" in notice and "temperature_last" in notice and "more" in notice

    page.import_preset(PRESETS / "Midnight Drift.json")  # a second copy gets its own name
    qtbot.waitUntil(lambda: "Midnight Drift (2)" in page.presets, timeout=LONG)


@pytest.mark.parametrize(
    ("file", "named"),
    [("out-of-range.json", '"min_p"'), ("wrong-type.json", '"top_p"'), ("broken-json.json", "JSON")],
)
def test_a_malformed_preset_file_shows_what_is_wrong_and_changes_nothing(
    qtbot: Any, dialog: SettingsDialog, file: str, named: str
) -> None:
    page = dialog.samplers
    before = page.samplers()

    page.import_preset(PRESETS / file)
    qtbot.waitUntil(lambda: bool(banner_texts(dialog.banners, "error")), timeout=LONG)

    (message,) = banner_texts(dialog.banners, "error")
    assert named in message and file in message
    assert page.presets == {} and page.samplers() == before


def test_a_response_as_long_as_the_context_is_refused_on_save(
    qtbot: Any, dialog: SettingsDialog, core: Any
) -> None:
    page = dialog.samplers
    qtbot.waitUntil(lambda: "8,192" in page.limit_label.text(), timeout=LONG)  # SmolLM2's trained length
    assert "SmolLM2" in page.limit_label.text()
    assert page.context_size.slider.maximum() == 8192

    page.context_size.set_value(1024)
    page.max_tokens.set_value(1024)
    assert "Too long" in page.length_label.text()
    save(qtbot, dialog)
    (message,) = banner_texts(dialog.banners, "error")
    assert "The response length (1024 tokens) must be shorter than the context (1024 tokens)" in message
    assert dialog.isVisible() and core.settings.max_tokens != 1024

    page.max_tokens.set_value(1023)  # the control: one token less is fine
    assert "At most 1,023 tokens" in page.length_label.text()
    assert dialog.settings().max_tokens == 1023


def test_the_template_choice_is_for_local_models_and_a_custom_one_keeps_new_lines(
    qtbot: Any, dialog: SettingsDialog
) -> None:
    template = dialog.samplers.template
    assert template.choice.isEnabled() and not template.parts_box.isVisible()  # the model's own

    template.choice.setCurrentIndex(template.choice.findData("alpaca"))
    assert template.parts["user_prefix"].text() == "### Instruction:\\n"
    assert template.parts["user_prefix"].isReadOnly()

    template.choice.setCurrentIndex(template.choice.findData("custom"))
    retype(qtbot, template.parts["user_prefix"], "<<Captain>>\\n")
    retype(qtbot, template.parts["assistant_prefix"], "<<Vega>>\\n")
    settings = dialog.settings()
    assert settings.chat_template == "custom"
    assert settings.custom_template.user_prefix == "<<Captain>>\n"
    assert settings.instruct_template() == settings.custom_template

    retype(qtbot, template.parts["user_prefix"], "")
    retype(qtbot, template.parts["assistant_prefix"], "")
    save(qtbot, dialog)
    assert (
        "The custom template needs a user or an assistant prefix" in banner_texts(dialog.banners, "error")[-1]
    )

    dialog.use_remote.setChecked(True)
    assert not template.choice.isEnabled() and not template.parts_box.isVisible()
    assert "remote server writes the prompt with its own template" in template.note.text()
    assert "server" in dialog.samplers.dry_label.text()


def test_dry_is_shown_unavailable_with_the_reason_when_the_build_lacks_it(dialog: SettingsDialog) -> None:
    page = dialog.samplers
    page.set_dry_in_build(False)
    assert "unavailable" in page.dry_label.text() and "no DRY sampler" in page.dry_label.text()
    assert not any(
        page.fields[field].isEnabled() for field in ("dry_multiplier", "dry_base", "dry_allowed_length")
    )

    page.set_dry_in_build(True)  # the control: the pinned build has it
    assert all(
        page.fields[field].isEnabled() for field in ("dry_multiplier", "dry_base", "dry_allowed_length")
    )


def test_every_generation_control_fits_a_800_by_500_screen_with_a_name(qtbot: Any, core: Any) -> None:
    from PySide6.QtWidgets import QAbstractButton, QAbstractSpinBox, QComboBox, QLineEdit, QSlider

    dialog = SettingsDialog(core, page="generation")
    qtbot.addWidget(dialog)
    dialog.resize(800, 500)
    dialog.show()
    qtbot.waitUntil(lambda: "8,192" in dialog.samplers.limit_label.text(), timeout=LONG)
    area = dialog.tabs.currentWidget()

    assert dialog.height() <= 500 and dialog.save_button.isVisible()
    assert area.horizontalScrollBar().maximum() == 0  # nothing cut at the side
    kinds = (QAbstractButton, QAbstractSpinBox, QComboBox, QLineEdit, QSlider)
    controls = [
        widget
        for widget in dialog.samplers.findChildren(QWidget)
        if isinstance(widget, kinds) and not isinstance(widget.parent(), QAbstractSpinBox | QComboBox)
    ]
    assert len(controls) > 25
    for control in controls:
        assert control.accessibleName(), control
        if control.isVisible():
            assert control.width() >= control.minimumSizeHint().width() - 1, control.accessibleName()
    run(qtbot, wait_for_running_ops())


@pytest.mark.model
@needs_model
def test_sampler_changes_keep_the_model_and_a_new_context_reloads_it(
    qtbot: Any, window: Any, core: Any
) -> None:
    wait_model_ready(qtbot, window)
    loaded = core.sources.current

    dialog = window.open_settings("generation")
    dialog.samplers.fields["top_k"].setValue(5)
    save(qtbot, dialog)
    qtbot.waitUntil(lambda: core.settings.top_k == 5, timeout=LONG)
    assert core.sources.current is loaded

    dialog = window.open_settings("generation")
    qtbot.waitUntil(lambda: "Loaded now: 4,096 tokens" in dialog.samplers.limit_label.text(), timeout=LONG)
    dialog.samplers.context_size.set_value(2048)
    save(qtbot, dialog)
    qtbot.waitUntil(
        lambda: core.sources.current is not loaded and core.sources.state.phase == "ready", timeout=LONG
    )
    assert core.sources.current.context_size == 2048
