"""Ask for a module's declared secret (an API key) and keep it in the OS keyring.

Saving runs off the Qt thread (``ModuleService.set_credential``, which reloads the module so it
receives the value).  When no keyring can take it, the dialog offers to keep it for this
session only.  The value is never shown again, logged or exported: the field is cleared as soon
as it has been handed over.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QHBoxLayout, QLabel, QLineEdit, QVBoxLayout, QWidget

from nexus_desktop.modules.service import CredentialInfo, ModuleService
from nexus_desktop.secrets import KeyringUnavailableError
from nexus_desktop.ui.module_card import modules_style
from nexus_desktop.ui.ops import QueryOp
from nexus_desktop.ui.theme import set_style
from nexus_desktop.ui.widgets import BannerArea, push_button


class CredentialDialog(QDialog):
    def __init__(
        self,
        service: ModuleService,
        module: str,
        display_name: str,
        credential: CredentialInfo,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.service = service
        self.module = module
        self.credential = credential
        self.saved_session_only: bool | None = None
        self.setWindowTitle(f"{display_name}: {credential.name}")
        set_style(self, modules_style)
        self.setMinimumWidth(520)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(24, 22, 24, 18)
        layout.setSpacing(10)
        title = QLabel(f"{display_name} needs {credential.name}")
        title.setObjectName("DialogTitle")
        layout.addWidget(title)
        instructions = QLabel(credential.instructions)
        instructions.setWordWrap(True)
        layout.addWidget(instructions)
        if credential.url:
            link = QLabel(f'<a href="{credential.url}">{credential.url}</a>')
            link.setOpenExternalLinks(True)
            link.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction)
            layout.addWidget(link)
        self.input = QLineEdit()
        self.input.setEchoMode(QLineEdit.EchoMode.Password)
        self.input.setPlaceholderText("Paste it here; it is kept in your OS keyring, never shown again")
        layout.addWidget(self.input)
        self.banners = BannerArea()
        layout.addWidget(self.banners)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        cancel = push_button("Cancel")
        cancel.clicked.connect(self.reject)
        self.save_button = push_button("Save", role="primary")
        self.save_button.setEnabled(False)
        self.save_button.clicked.connect(lambda: self.save(session_only=False))
        self.input.textChanged.connect(lambda text: self.save_button.setEnabled(bool(text.strip())))
        buttons.addWidget(cancel)
        buttons.addWidget(self.save_button)
        layout.addLayout(buttons)

    def save(self, *, session_only: bool) -> None:
        value = self.input.text().strip()
        if not value:
            return
        self.save_button.setEnabled(False)
        self.input.setEnabled(False)

        def saved(_: object) -> None:
            self.input.clear()
            self.saved_session_only = session_only
            self.accept()

        def failed(error: BaseException) -> None:
            self.input.setEnabled(True)
            self.save_button.setEnabled(True)
            if isinstance(error, KeyringUnavailableError):
                self.banners.show_banner(
                    "warning",
                    f"{error} You can keep it for this session only: the module gets it until you quit.",
                    action=("Keep for this session only", lambda: self.save(session_only=True)),
                )
            else:
                self.banners.show_banner("error", str(error) or type(error).__name__)

        QueryOp(
            parent=self,
            op=self.service.set_credential(
                self.module, self.credential.name, value, session_only=session_only
            ),
            success=saved,
        ).failure(failed).run_in_background()
        del value
