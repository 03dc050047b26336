"""Settings: model, generation, remote server (API key in the OS keyring) and window behaviour.

Saving validates everything, stores the API key through ``SecretStore`` off the Qt thread, then
emits ``applied(settings, key_changed)``; the main window applies them without a restart.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QScrollArea,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from nexus_desktop.ui.appearance_page import AppearancePage
from nexus_desktop.ui.chat_view import describe_error
from nexus_desktop.ui.game_mode_section import GameModeSection
from nexus_desktop.ui.gateway_section import GatewaySection
from nexus_desktop.ui.gpu_section import GpuSection
from nexus_desktop.ui.ops import QueryOp
from nexus_desktop.ui.sampler_page import SamplerPage
from nexus_desktop.ui.widgets import BannerArea, help_label, push_button
from nexus_desktop.ui.worker_section import WorkerSection

if TYPE_CHECKING:
    from nexus_desktop.core import AppCore
    from nexus_desktop.settings import Settings

PAGES = {"model": 0, "generation": 1, "remote": 2, "app": 3, "appearance": 4, "game": 5, "gateway": 6}
PAGES["worker"] = 7  # Remote worker: replies from a second PC
KEY_NAME = "remote-api-key"  # the name SourceManager reads (chat.sources.REMOTE_KEY_NAME)
GGUF_FILTER = "GGUF models (*.gguf);;All files (*)"


def scrolled(page: QWidget) -> QScrollArea:
    """``page`` in a frameless scroll area, so every page stays usable in a small window."""
    area = QScrollArea()
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setWidget(page)
    return area


def form_page() -> tuple[QWidget, QFormLayout]:
    page = QWidget()
    form = QFormLayout(page)
    form.setContentsMargins(20, 20, 20, 20)
    form.setHorizontalSpacing(18)
    form.setVerticalSpacing(10)
    return page, form


class SettingsDialog(QDialog):
    applied = Signal(object, bool)
    """The validated new ``Settings``, and whether a new API key was stored."""

    def __init__(self, core: AppCore, parent: QWidget | None = None, *, page: str = "model") -> None:
        super().__init__(parent)
        self.core = core
        self.setWindowTitle("Settings")
        available = self.screen().availableGeometry()  # a small screen gets a dialog that fits it
        self.resize(min(720, available.width()), min(580, available.height()))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(24, 20, 24, 18)
        layout.setSpacing(14)
        title = QLabel("Settings")
        title.setObjectName("DialogTitle")
        layout.addWidget(title)
        self.banners = BannerArea()
        self.tabs = QTabWidget()
        self.tabs.addTab(scrolled(self._model_page()), "Model")
        self.tabs.addTab(scrolled(self._generation_page()), "Generation")
        self.tabs.addTab(scrolled(self._remote_page()), "Remote server")
        self.tabs.addTab(scrolled(self._app_page()), "App")
        self.appearance = AppearancePage()  # previews as it changes; Cancel puts the saved look back
        self.tabs.addTab(scrolled(self.appearance), "Appearance")
        self.game_mode = GameModeSection(core.game_mode)  # the switch, detection, keep-alive
        self.tabs.addTab(scrolled(self.game_mode), "Game mode")
        self.gateway = GatewaySection(core)  # serve other apps: switch, port, address, key
        self.tabs.addTab(scrolled(self.gateway), "Other apps")
        self.worker = WorkerSection()  # replies from `nexus worker` on a second PC (docs/second-pc.md)
        self.tabs.addTab(scrolled(self.worker), "Remote worker")
        self.rejected.connect(self.appearance.revert)
        self.tabs.setCurrentIndex(PAGES.get(page, 0))
        layout.addWidget(self.tabs, 1)
        layout.addWidget(self.banners)
        footer = QHBoxLayout()
        footer.addStretch(1)
        self.cancel_button = push_button("Cancel")
        self.save_button = push_button("Save", role="primary", icon_name="check")
        self.save_button.setDefault(True)
        self.cancel_button.clicked.connect(self.reject)
        self.save_button.clicked.connect(self.save)
        footer.addWidget(self.cancel_button)
        footer.addWidget(self.save_button)
        layout.addLayout(footer)
        self.load(core.settings)
        self.use_remote.toggled.connect(lambda _on: self._source_changed())
        self.worker.exclude(self.use_remote)  # one source at a time: the remote server or a worker
        self.model_path.editingFinished.connect(self._source_changed)
        self.model_path.textChanged.connect(self.gpu.set_model_path)
        self.samplers.context_size.box.valueChanged.connect(self.gpu.set_context)
        self.gpu.set_model_path(self.model_path.text())
        self.gpu.probe_hardware()
        self._probe_build()
        self._probe_key()

    # Pages --------------------------------------------------------------------------------

    def _model_page(self) -> QWidget:
        page, form = form_page()
        self.model_path = QLineEdit()
        self.model_path.setPlaceholderText("Bundled SmolLM2-135M (default)")
        browse = push_button("Browse…", icon_name="folder")
        browse.clicked.connect(self._browse_model)
        form.addRow("GGUF model", self._with_button(self.model_path, browse))
        self.models_dir = QLineEdit()
        self.models_dir.setPlaceholderText("A folder with .gguf files, listed in the model picker")
        browse_dir = push_button("Browse…", icon_name="folder")
        browse_dir.clicked.connect(self._browse_models_dir)
        form.addRow("Models folder", self._with_button(self.models_dir, browse_dir))
        form.addRow("Context size", help_label("On the Generation page, beside the response length."))
        self.threads = QSpinBox()
        self.threads.setRange(1, 256)
        form.addRow("CPU threads", self.threads)
        self.gpu = GpuSection(self, form)
        self.build_label = help_label("Checking the installed llama.cpp build…")
        self.build_label.setTextInteractionFlags(self.build_label.textInteractionFlags() | self._selectable())
        form.addRow("", self.build_label)
        return page

    def _generation_page(self) -> QWidget:
        page, form = form_page()
        self.samplers = SamplerPage(self.core, self.banners)
        form.addRow(self.samplers)
        # Who the user is lives in personas (one per chat, with a default), not in the settings.
        self.personas_button = push_button("Manage personas…")
        self.personas_button.setAccessibleName("Manage personas")
        self.personas_button.clicked.connect(self._open_personas)
        form.addRow("Your name", self.personas_button)
        form.addRow("", help_label("Your persona's name fills {{user}} in cards and shows on your messages."))
        return page

    def _open_personas(self) -> None:
        from nexus_desktop.ui.persona_dialog import PersonaDialog

        PersonaDialog(self.core, self).open()

    def _remote_page(self) -> QWidget:
        page, form = form_page()
        self.use_remote = QCheckBox("Use this server for replies instead of the local model")
        form.addRow("", self.use_remote)
        self.base_url = QLineEdit()
        self.base_url.setPlaceholderText("http://127.0.0.1:11434/v1")
        form.addRow("Server address", self.base_url)
        self.remote_model = QComboBox()
        self.remote_model.setEditable(True)
        self.remote_model.setMinimumWidth(260)
        self.fetch_button = push_button("Fetch models", icon_name="regenerate")
        self.fetch_button.clicked.connect(self.fetch_models)
        form.addRow("Model", self._with_button(self.remote_model, self.fetch_button))
        self.api_key = QLineEdit()
        self.api_key.setEchoMode(QLineEdit.EchoMode.Password)
        self.api_key.setPlaceholderText("Optional; stored in the system keyring, never in a file")
        form.addRow("API key", self.api_key)
        self.key_status = help_label("")
        form.addRow("", self.key_status)
        form.addRow(
            "",
            help_label(
                "Any OpenAI-compatible server works: Ollama, LM Studio, llama.cpp's server, vLLM or a "
                "hosted API. The address usually ends with /v1."
            ),
        )
        return page

    def _app_page(self) -> QWidget:
        from PySide6.QtWidgets import QSystemTrayIcon

        page, form = form_page()
        self.minimize_to_tray = QCheckBox("Minimise to the tray when the window is closed")
        form.addRow("", self.minimize_to_tray)
        if not QSystemTrayIcon.isSystemTrayAvailable():
            form.addRow("", help_label("This desktop has no system tray, so closing the window quits."))
        self.prometheus_enabled = QCheckBox("Serve metrics for Prometheus on this computer")
        form.addRow("Prometheus", self.prometheus_enabled)
        self.prometheus_port = QSpinBox()
        self.prometheus_port.setRange(1024, 65535)
        self.prometheus_port.setEnabled(False)
        self.prometheus_enabled.toggled.connect(self.prometheus_port.setEnabled)
        form.addRow("Prometheus port", self.prometheus_port)
        form.addRow(
            "",
            help_label(
                "For Grafana: model calls, the scheduler, the loop and character budgets at "
                "http://127.0.0.1:<port>/metrics. Only programs on this computer can reach it."
            ),
        )
        self.tools_by_model = QCheckBox("Let the model decide when to use tools and build modules")
        self.tools_by_model.setAccessibleName("Let the model pick tools")
        form.addRow("Tools", self.tools_by_model)
        form.addRow(
            "",
            help_label(
                "Typed commands (/roll 2d6, /build …) always work. With this on, the model also "
                'picks a tool by itself, and a remote server classifies each message ("build me …" '
                "starts a module build) until a router is trained: one or two more model calls per "
                "message, and small models misfire."
            ),
        )
        self.memory_enabled = QCheckBox("Characters remember facts across chats")
        self.memory_enabled.setAccessibleName("Characters remember across chats")
        form.addRow("Memory", self.memory_enabled)
        self.memory_recall_count = QSpinBox()
        self.memory_recall_count.setRange(1, 32)
        self.memory_recall_count.setAccessibleName("Memories per reply")
        self.memory_enabled.toggled.connect(self.memory_recall_count.setEnabled)
        form.addRow("Memories per reply", self.memory_recall_count)
        form.addRow(
            "",
            help_label(
                "The memories most relevant to your last message join each reply's prompt. See or "
                "delete a character's memories on the Memories page of the character editor."
            ),
        )
        self.module_coevolution = QCheckBox("Let NEXUS improve its module builder at night")
        self.module_coevolution.setAccessibleName("Module builder co-evolution")
        form.addRow("Module builder", self.module_coevolution)
        form.addRow(
            "",
            help_label(
                "The module-coevolution task builds harder practice modules with the code model and "
                "keeps prompt templates that pass more of them. It uses the code model's time; "
                "'nexus scheduler status' shows each template's success rate."
            ),
        )
        return page

    @staticmethod
    def _selectable() -> Any:
        from PySide6.QtCore import Qt

        return Qt.TextInteractionFlag.TextSelectableByMouse

    @staticmethod
    def _with_button(field: QWidget, button: QWidget) -> QWidget:
        holder = QWidget()
        row = QHBoxLayout(holder)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(field, 1)
        row.addWidget(button)
        return holder

    # Data ---------------------------------------------------------------------------------

    def load(self, s: Settings) -> None:
        self.appearance.load(s)
        self.game_mode.load(s)
        self.gateway.load(s)
        self.worker.load(s)
        self.model_path.setText(s.model_path)
        self.models_dir.setText(s.models_dir)
        self.threads.setValue(s.threads)
        self.gpu.load(s)
        self.samplers.load(s)
        self.use_remote.setChecked(s.source == "remote")
        self.base_url.setText(s.remote_base_url)
        self.remote_model.setEditText(s.remote_model)
        self.minimize_to_tray.setChecked(s.minimize_to_tray)
        self.prometheus_enabled.setChecked(s.prometheus_enabled)
        self.prometheus_port.setValue(s.prometheus_port)
        self.prometheus_port.setEnabled(s.prometheus_enabled)
        self.tools_by_model.setChecked(s.tools_by_model)
        self.memory_enabled.setChecked(s.memory_enabled)
        self.memory_recall_count.setValue(max(1, s.memory_recall_count))
        self.memory_recall_count.setEnabled(s.memory_enabled)
        self.module_coevolution.setChecked(s.module_coevolution)

    def settings(self) -> Settings:
        """The form as validated settings; raises ``ValueError`` with a sentence on what to fix."""
        from pydantic import ValidationError

        from nexus_desktop.settings import Settings

        values = self.core.settings.model_dump()
        values.update(
            source="remote" if self.use_remote.isChecked() else "local",
            model_path=self.model_path.text().strip(),
            models_dir=self.models_dir.text().strip(),
            threads=self.threads.value(),
            remote_base_url=self.base_url.text().strip(),
            remote_model=self.remote_model.currentText().strip(),
            minimize_to_tray=self.minimize_to_tray.isChecked(),
            prometheus_enabled=self.prometheus_enabled.isChecked(),
            prometheus_port=self.prometheus_port.value(),
            tools_by_model=self.tools_by_model.isChecked(),
            memory_enabled=self.memory_enabled.isChecked(),
            memory_recall_count=self.memory_recall_count.value(),
            module_coevolution=self.module_coevolution.isChecked(),
        )
        values.update(self.gpu.values())
        values.update(self.appearance.values())
        values.update(self.game_mode.values())
        values.update(self.gateway.values())
        values.update(self.worker.values())  # its source wins when ticked (the boxes exclude each other)
        values.update(self.samplers.values())
        if values["source"] == "remote" and not values["remote_model"]:
            raise ValueError(
                "Pick the server's model (Fetch models lists them) before using the remote server."
            )
        try:
            settings = Settings.model_validate(values)
        except ValidationError as error:
            first = error.errors()[0]
            field = str(first["loc"][0]).replace("_", " ") if first.get("loc") else "a setting"
            raise ValueError(
                f"The {field} setting is not valid ({first['msg']}); correct it and save again."
            ) from None
        conflict = settings.conflict()
        if conflict:
            raise ValueError(f"{conflict}; correct it and save again.")
        return settings

    # Actions ------------------------------------------------------------------------------

    def save(self) -> None:
        self.banners.clear()
        try:
            settings = self.settings()
        except ValueError as error:
            self.banners.show_banner("error", str(error))
            return
        key = self.api_key.text()
        if not key:
            self._finish(settings, key_changed=False)
            return
        secrets = self.core.secrets
        self.save_button.setEnabled(False)

        def stored(_result: object) -> None:
            self._finish(settings, key_changed=True)

        def failed(error: BaseException) -> None:
            from nexus_desktop.secrets import KeyringUnavailableError

            self.save_button.setEnabled(True)
            if isinstance(error, KeyringUnavailableError):
                self._offer_session_only(settings, key, str(error))
            else:
                self.banners.show_banner("error", describe_error(error))

        QueryOp(parent=self, op=lambda: secrets.set(KEY_NAME, key), success=stored).failure(
            failed
        ).run_in_background()

    def _offer_session_only(self, settings: Settings, key: str, reason: str) -> None:
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Keep the key for this session only?",
            f"{reason}\n\nKeep the API key in memory until NEXUS closes? It is never written to disk.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            self,
        )
        self.session_prompt = box

        def answered(result: int) -> None:
            if result == QMessageBox.StandardButton.Yes:
                self.core.secrets.set(KEY_NAME, key, session_only=True)  # memory only: no I/O
                self._finish(settings, key_changed=True)
            else:
                self.banners.show_banner(
                    "error", "The API key was not saved. Unlock the system keyring and save again."
                )

        box.finished.connect(answered)
        box.open()

    def _source_changed(self) -> None:
        self.samplers.set_remote(self.use_remote.isChecked(), self.model_path.text().strip())

    def _finish(self, settings: Settings, *, key_changed: bool) -> None:
        self.applied.emit(settings, key_changed)
        self.accept()

    def fetch_models(self) -> None:
        from nexus_desktop.llm.openai_compat import OpenAICompatSource

        base_url, typed_key, secrets = self.base_url.text().strip(), self.api_key.text(), self.core.secrets

        async def fetch() -> list[str]:
            key: str | None = typed_key
            if not key:
                key = await asyncio.to_thread(self._stored_key, secrets)
            source = OpenAICompatSource(base_url, "", api_key=key)
            try:
                return await source.list_models()
            finally:
                await source.aclose()

        def fetched(models: list[str]) -> None:
            self.fetch_button.setEnabled(True)
            current = self.remote_model.currentText()
            self.remote_model.clear()
            self.remote_model.addItems(models)
            self.remote_model.setEditText(current if current in models or not models else models[0])
            self.banners.clear()
            self.banners.show_banner("info", f"The server offers {len(models)} model(s).")

        def failed(error: BaseException) -> None:
            self.fetch_button.setEnabled(True)
            self.banners.show_banner("error", describe_error(error))

        self.fetch_button.setEnabled(False)
        QueryOp(parent=self, op=fetch, success=fetched).failure(failed).run_in_background()

    @staticmethod
    def _stored_key(secrets: Any) -> str | None:
        try:
            return secrets.get(KEY_NAME)
        except Exception:
            return None

    def _probe_key(self) -> None:
        secrets = self.core.secrets

        def done(key: str | None) -> None:
            if key:
                session = secrets.is_session_only(KEY_NAME)
                self.key_status.setText(
                    "A key is kept for this session only."
                    if session
                    else "A key is saved in the system keyring."
                )
                self.api_key.setPlaceholderText("Leave empty to keep the saved key")

        QueryOp(parent=self, op=lambda: self._stored_key(secrets), success=done).run_in_background()

    def _probe_build(self) -> None:
        from nexus_desktop.ui.build_info import describe_build

        def done(result: tuple[str, str]) -> None:
            short, hint = result
            self.build_label.setText(f"Installed: {short}. {hint}")

        QueryOp(parent=self, op=describe_build, success=done).failure(
            lambda e: self.build_label.setText(
                f"The llama.cpp build could not be checked: {describe_error(e)}"
            )
        ).run_in_background()

    def _browse_model(self) -> None:
        start = self.models_dir.text() or str(Path.home())
        path, _ = QFileDialog.getOpenFileName(self, "Choose a GGUF model", start, GGUF_FILTER)
        if path:
            self.model_path.setText(path)

    def _browse_models_dir(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Choose the models folder", self.models_dir.text())
        if path:
            self.models_dir.setText(path)
