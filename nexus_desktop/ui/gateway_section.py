"""Settings → Other apps: serve the model and the characters to other programs (the gateway).

The switch and the port are settings (``gateway_enabled``, ``gateway_port``, applied by
``AppCore.update_settings`` on Save).  The key is not: it lives in the OS keyring, is shown here
(masked; Copy puts it on the clipboard) and replaced at once by New key.  ``load(settings)`` shows
the saved values; ``values()`` gives the fields for ``Settings``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QCheckBox, QFormLayout, QHBoxLayout, QLineEdit, QSpinBox, QWidget

from nexus_desktop.ui.ops import QueryOp
from nexus_desktop.ui.widgets import help_label, push_button

if TYPE_CHECKING:
    from nexus_desktop.core import AppCore
    from nexus_desktop.settings import Settings


class GatewaySection(QWidget):
    def __init__(self, core: AppCore, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._core = core
        form = QFormLayout(self)
        form.setContentsMargins(20, 20, 20, 20)
        form.setHorizontalSpacing(18)
        form.setVerticalSpacing(10)

        self.enabled = QCheckBox("Serve other apps (OpenAI-compatible)")
        self.enabled.setAccessibleName("Serve other apps (OpenAI-compatible)")
        form.addRow("Gateway", self.enabled)
        self.port = QSpinBox()
        self.port.setRange(1024, 65535)
        self.port.setAccessibleName("Gateway port")
        form.addRow("Port", self.port)

        self.url = QLineEdit()
        self.url.setReadOnly(True)
        self.url.setAccessibleName("Base URL for other apps")
        self.copy_url = push_button("Copy", icon_name="copy")
        self.copy_url.setAccessibleName("Copy the base URL")
        self.copy_url.setToolTip("Copy the address to paste into SillyTavern, Open WebUI or a script")
        self.copy_url.clicked.connect(lambda: _copy(self.url.text()))
        form.addRow("Base URL", _row(self.url, self.copy_url))

        self.key = QLineEdit()
        self.key.setReadOnly(True)
        self.key.setEchoMode(QLineEdit.EchoMode.Password)
        self.key.setAccessibleName("Gateway API key")
        self.key.setPlaceholderText("Made when the gateway is first turned on")
        self.copy_key = push_button("Copy", icon_name="copy")
        self.copy_key.setAccessibleName("Copy the API key")
        self.copy_key.setToolTip("Copy the key other apps send as their API key")
        self.copy_key.setEnabled(False)
        self.copy_key.clicked.connect(lambda: _copy(self.key.text()))
        self.new_key = push_button("New key", icon_name="regenerate")
        self.new_key.setAccessibleName("Make a new API key")
        self.new_key.setToolTip("Replace the key now; apps using the old one must be given the new one")
        self.new_key.clicked.connect(self.renew_key)
        form.addRow("API key", _row(self.key, self.copy_key, self.new_key))
        self.key_note = help_label("The key is kept in the system keyring, never in a file.")
        form.addRow("", self.key_note)
        form.addRow(
            "",
            help_label(
                "SillyTavern, Open WebUI and scripts using the openai package can use NEXUS as their "
                "model server: give them the base URL and the key. The model list offers the "
                "active model and each character, which answers with its card and its budget. "
                "Only programs on this computer can reach it."
            ),
        )
        self.port.valueChanged.connect(self._show_url)
        self.enabled.toggled.connect(self._enable_fields)
        self._read_key()

    def load(self, settings: Settings) -> None:
        self.enabled.setChecked(settings.gateway_enabled)
        self.port.setValue(settings.gateway_port)
        self._show_url()
        self._enable_fields(settings.gateway_enabled)

    def values(self) -> dict[str, object]:
        return {"gateway_enabled": self.enabled.isChecked(), "gateway_port": self.port.value()}

    def renew_key(self) -> None:
        self.new_key.setEnabled(False)

        def made(key: str) -> None:
            self.new_key.setEnabled(True)
            self._show_key(key)
            self.key_note.setText("A new key is in use; apps using the old key must be given this one.")

        def failed(error: BaseException) -> None:
            self.new_key.setEnabled(True)
            self.key_note.setText(f"No new key was made: {error}")

        QueryOp(parent=self, op=self._core.renew_gateway_key, success=made).failure(
            failed
        ).run_in_background()

    def _read_key(self) -> None:
        from nexus_desktop.gateway.key import KEY_NAME

        secrets = self._core.secrets

        def read() -> str | None:
            return secrets.get(KEY_NAME)  # the keyring can block: in a worker thread

        def failed(error: BaseException) -> None:
            self.key_note.setText(f"The key cannot be shown: {error}")

        QueryOp(parent=self, op=read, success=self._show_key).failure(failed).run_in_background()

    def _show_key(self, key: str | None) -> None:
        self.key.setText(key or "")
        self.copy_key.setEnabled(bool(key))

    def _show_url(self) -> None:
        from nexus_desktop.gateway.switch import base_url

        self.url.setText(base_url(self.port.value()))

    def _enable_fields(self, on: bool) -> None:
        self.port.setEnabled(on)


def _row(*widgets: QWidget) -> QWidget:
    holder = QWidget()
    row = QHBoxLayout(holder)
    row.setContentsMargins(0, 0, 0, 0)
    for index, widget in enumerate(widgets):
        row.addWidget(widget, 1 if index == 0 else 0)
    return holder


def _copy(text: str) -> None:
    clipboard = QGuiApplication.clipboard()
    if clipboard is not None and text:
        clipboard.setText(text)
