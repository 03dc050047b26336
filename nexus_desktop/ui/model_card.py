"""One model in My models: what it is (name, parameters, quantisation, size, context, layers, chat
template, licence), where it lies, and what you can do with it.

The card emits ``use_requested`` / ``folder_requested`` / ``delete_requested`` with its file's
path; the page does the work.  Delete asks first, inline on the card (never for the bundled
model, nor the model in use, whose file llama.cpp holds open).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from nexus_desktop.ui.widgets import ElidedLabel, icon_button, push_button

if TYPE_CHECKING:  # hub.library imports huggingface_hub (slow): the page is built without it
    from nexus_desktop.hub.library import LibraryModel


def size_text(n_bytes: int) -> str:
    """``98 MB``, ``4.9 GB``: ``gguf_reader.format_size``, imported when first needed (it brings
    numpy along, which the page need not load before it shows a model)."""
    from nexus_desktop.llm.gguf_reader import format_size

    return format_size(n_bytes)


def badge(text: str, tone: str = "", tooltip: str = "") -> QLabel:
    """A small rounded word (In use, Bundled, a fit verdict); ``tone`` picks its colours."""
    label = QLabel(text)
    label.setObjectName("Badge")
    if tone:
        label.setProperty("tone", tone)
    if tooltip:
        label.setToolTip(tooltip)
    return label


def model_facts(model: LibraryModel, size: int) -> list[str]:
    """The card's facts, in the order a user compares models: size first, then what it can do."""
    assert model.info is not None
    info = model.info
    facts = [f"{model.parameters} params", info.quantization, size_text(size)]
    if info.context_length:
        facts.append(f"{info.context_length:,} ctx")
    if info.n_layers:
        facts.append(f"{info.n_layers} layers")
    facts.append(f"{model.chat_template} chat template" if model.chat_template else "no chat template")
    facts.append(f"licence {model.licence}" if model.licence else "licence not stated")
    return facts


class ModelCard(QFrame):
    use_requested = Signal(Path)
    folder_requested = Signal(Path)
    delete_requested = Signal(Path)

    def __init__(
        self, model: LibraryModel, *, size: int, in_use: bool, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        path, info, bundled = model.path, model.info, model.bundled
        self.model = model
        self.path = path
        self.bundled = bundled
        self.setObjectName("ModelCard")
        self.setProperty("inUse", "true" if in_use else "false")
        self.setAccessibleName(f"Model {path.name}")
        outer = QVBoxLayout(self)
        outer.setContentsMargins(14, 10, 10, 10)
        outer.setSpacing(3)

        top = QHBoxLayout()
        top.setSpacing(8)
        self.title = ElidedLabel(info.name if info is not None else path.name)
        self.title.setObjectName("CardTitle")
        top.addWidget(self.title, 1)
        if bundled:
            top.addWidget(badge("Bundled", "plain", "Comes with NEXUS; it cannot be deleted."))
        if in_use:
            top.addWidget(badge("In use", "good", "The chat uses this model."))

        self.use_button = push_button("Use this model", role="" if in_use else "primary")
        self.use_button.setAccessibleName(f"Use {path.name}")
        self.use_button.setEnabled(info is not None and not in_use)
        self.use_button.setToolTip(
            "The chat uses this model already." if in_use else "Chat with this model from now on."
        )
        self.use_button.clicked.connect(lambda: self.use_requested.emit(self.path))
        self.folder_button = icon_button("folder", f"Show {path.name} in its folder", role="ghost")
        self.folder_button.clicked.connect(lambda: self.folder_requested.emit(self.path))
        self.delete_button = icon_button("trash", f"Delete {path.name}", role="ghost")
        self.delete_button.clicked.connect(self._ask_delete)
        self.delete_button.setVisible(not bundled)
        self.delete_button.setEnabled(not in_use)
        if in_use:
            self.delete_button.setToolTip("In use: choose another model before deleting this one.")
        for button in (self.use_button, self.folder_button, self.delete_button):
            top.addWidget(button)
        outer.addLayout(top)

        if info is not None:
            self.facts = QLabel(" · ".join(model_facts(model, size)))
            self.facts.setObjectName("CardMeta")
        else:
            self.facts = QLabel(model.error or "This file cannot be used.")
            self.facts.setObjectName("CardError")
        self.facts.setWordWrap(True)
        self.facts.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        outer.addWidget(self.facts)
        where = ElidedLabel(str(path))
        where.setObjectName("CardPath")
        where.setToolTip(str(path))
        outer.addWidget(where)

        self.confirm = self._confirm_row(path, size)
        self.confirm.hide()
        outer.addWidget(self.confirm)

    def _confirm_row(self, path: Path, size: int) -> QWidget:
        row = QWidget()
        layout = QHBoxLayout(row)
        layout.setContentsMargins(0, 4, 0, 0)
        question = QLabel(f"Delete {path.name} ({size_text(size)}) from the disk? This cannot be undone.")
        question.setObjectName("DeleteConfirm")
        question.setWordWrap(True)
        self.confirm_button = push_button("Delete", role="danger")
        self.confirm_button.setAccessibleName(f"Confirm deleting {path.name}")
        self.confirm_button.clicked.connect(lambda: self.delete_requested.emit(self.path))
        self.keep_button = push_button("Keep")
        self.keep_button.setAccessibleName(f"Keep {path.name}")
        self.keep_button.clicked.connect(self._keep)
        layout.addWidget(question, 1)
        layout.addWidget(self.keep_button)
        layout.addWidget(self.confirm_button)
        return row

    def _ask_delete(self) -> None:
        self.confirm.show()
        self.keep_button.setFocus()

    def _keep(self) -> None:
        self.confirm.hide()

    def show_error(self, text: str) -> None:
        """Say on the card why something failed (a delete refused by the system…)."""
        self.facts.setText(text)
        self.facts.setObjectName("CardError")
        self.facts.style().unpolish(self.facts)  # the stylesheet selects on the name: apply it again
        self.facts.style().polish(self.facts)
