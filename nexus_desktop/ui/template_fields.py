"""Settings → Generation's prompt template: which template writes a local model's prompt."""

from __future__ import annotations

from PySide6.QtWidgets import QComboBox, QGridLayout, QGroupBox, QLabel, QLineEdit, QVBoxLayout, QWidget

from nexus_desktop.llm.templates import (
    KNOWN_TEMPLATES,
    TEMPLATE_LABELS,
    InstructTemplate,
    TemplateChoice,
    from_one_line,
    one_line,
)
from nexus_desktop.ui.widgets import help_label

ROLES = (("system", "System"), ("user", "User"), ("assistant", "Assistant"))


class TemplateFields(QGroupBox):
    """The prompt template: the model's own, a known family (its text shown read-only), or the
    user's own text before and after each role's message, one line each with \\n for a new line."""

    def __init__(self) -> None:
        super().__init__("Prompt template")
        layout = QVBoxLayout(self)
        self.choice = QComboBox()
        self.choice.setAccessibleName("Prompt template")
        self.choice.setToolTip("How the conversation is written out for a local model")
        for key, label in TEMPLATE_LABELS.items():
            self.choice.addItem(label, key)
        self.choice.currentIndexChanged.connect(lambda _index: self._show_choice())
        layout.addWidget(self.choice)
        self.note = help_label("")
        layout.addWidget(self.note)
        self.parts_box = QWidget()
        grid = QGridLayout(self.parts_box)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.addWidget(help_label("Before the message"), 0, 1)
        grid.addWidget(help_label("After the message"), 0, 2)
        self.parts: dict[str, QLineEdit] = {}
        for row, (role, caption) in enumerate(ROLES, start=1):
            grid.addWidget(QLabel(caption), row, 0)
            for column, (side, where) in enumerate((("prefix", "before"), ("suffix", "after")), start=1):
                edit = QLineEdit()
                edit.setAccessibleName(f"{caption} {side}")
                edit.setToolTip(f"Written {where} each {caption.lower()} message; \\n is a new line")
                edit.textEdited.connect(lambda _text: self._keep_custom())
                self.parts[f"{role}_{side}"] = edit
                grid.addWidget(edit, row, column)
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(2, 1)
        layout.addWidget(self.parts_box)
        self._custom = InstructTemplate()
        self._remote = False

    def load(self, choice: TemplateChoice, custom: InstructTemplate) -> None:
        self._custom = custom
        self.choice.setCurrentIndex(self.choice.findData(choice))
        self._show_choice()

    def values(self) -> tuple[TemplateChoice, InstructTemplate]:
        return self.choice.currentData(), self._custom

    def set_remote(self, remote: bool) -> None:
        self._remote = remote
        self.choice.setEnabled(not remote)
        self._show_choice()

    def _show_choice(self) -> None:
        choice = self.choice.currentData()
        shown = KNOWN_TEMPLATES.get(choice, self._custom)
        for field, edit in self.parts.items():
            edit.setText(one_line(getattr(shown, field)))
            edit.setReadOnly(choice != "custom")
        self.parts_box.setVisible(choice != "model" and not self._remote)
        if self._remote:
            text = "A remote server writes the prompt with its own template; this is for local models."
        elif choice == "model":
            text = "The chat template stored in the model file; most models have one."
        elif choice == "custom":
            text = "Your own: each message is written between its role's text before and after it."
        else:
            text = "For models whose file has no chat template, or a wrong one."
        self.note.setText(text)

    def _keep_custom(self) -> None:
        if self.choice.currentData() == "custom":
            self._custom = InstructTemplate(
                **{field: from_one_line(edit.text()) for field, edit in self.parts.items()}
            )
