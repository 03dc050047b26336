"""New module…: describe a capability and NEXUS builds it as a module (the gallery's way in; in
the chat, "build me …" or ``/build …`` does the same).

The dialog says where the code will be written before anything starts (the task router's
preview for code generation, with its warning when only the default model is there).  Build
hands the description to the page, which starts the build (``BuildService.start``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QDialog, QHBoxLayout, QLabel, QPlainTextEdit, QVBoxLayout, QWidget

from nexus_desktop.ui.module_card import modules_style
from nexus_desktop.ui.ops import QueryOp
from nexus_desktop.ui.theme import set_style
from nexus_desktop.ui.widgets import fit_to_screen, help_label, push_button

if TYPE_CHECKING:
    from nexus_desktop.core import AppCore

EXAMPLES = (
    "For example: “a tool that rolls D&D ability scores (4d6, drop the lowest)” or “a tracker for "
    "my Steam playtime, with my Steam API key”.  NEXUS writes the module and its tests, tests it "
    "in the sandbox, repairs it until the tests pass, and then asks you to approve it."
)


class NewModuleDialog(QDialog):
    build_requested = Signal(str)
    """The description to build, once the user pressed Build."""

    def __init__(self, core: AppCore | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("New module")
        set_style(self, modules_style)
        fit_to_screen(self, 560, 380)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(24, 20, 24, 16)
        layout.setSpacing(10)
        title = QLabel("Describe the module you want")
        title.setObjectName("DialogTitle")
        layout.addWidget(title)
        layout.addWidget(help_label(EXAMPLES))
        self.input = QPlainTextEdit()
        self.input.setAccessibleName("What the module should do")
        self.input.setPlaceholderText("A tool that …")
        layout.addWidget(self.input, 1)
        self.route_label = help_label("")
        self.route_label.hide()
        layout.addWidget(self.route_label)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        cancel = push_button("Cancel")
        cancel.setAccessibleName("Cancel")
        cancel.clicked.connect(self.reject)
        self.build_button = push_button("Build", role="primary", icon_name="wand")
        self.build_button.setAccessibleName("Build the module")
        self.build_button.setEnabled(False)
        self.build_button.clicked.connect(self._build)
        self.input.textChanged.connect(
            lambda: self.build_button.setEnabled(bool(self.input.toPlainText().strip()))
        )
        buttons.addWidget(cancel)
        buttons.addWidget(self.build_button)
        layout.addLayout(buttons)
        if core is not None:
            QueryOp(parent=self, op=core.task_router.preview("codegen"), success=self._show_route).failure(
                lambda _error: None  # the build itself says where it runs; the preview is a courtesy
            ).run_in_background()

    def _show_route(self, decision: Any) -> None:
        text = f"The code will be written on {decision.source_name}: {decision.reason}"
        if decision.warning:
            text += f" ⚠ {decision.warning}"
        self.route_label.setText(text)
        self.route_label.setObjectName("WarningNote" if decision.warning else "FieldHelp")
        self.route_label.style().polish(self.route_label)
        self.route_label.show()

    def _build(self) -> None:
        text = self.input.toPlainText().strip()
        if text:
            self.build_requested.emit(text)
            self.accept()
