"""My models: a card per model file (the bundled one, the models folder's and the downloaded ones).

The list is read off the Qt thread (every file's GGUF header is read) by whoever owns the view;
``show_models`` only draws.  The cards' requests come out as the view's signals.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QWidget

from nexus_desktop.ui.card_list import CardList
from nexus_desktop.ui.model_card import ModelCard

if TYPE_CHECKING:  # hub.library imports huggingface_hub (slow): the page is built without it
    from nexus_desktop.hub.library import LibraryModel


@dataclass(frozen=True)
class ShownModel:
    """A model file as My models shows it (read in a worker thread, drawn on the Qt thread)."""

    model: LibraryModel
    size: int
    """Bytes on disk, every part of a split model together."""
    in_use: bool
    """The chat's model (the settings name this file)."""


class MyModelsView(CardList):
    use_requested = Signal(Path)
    folder_requested = Signal(Path)
    delete_requested = Signal(Path)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Reading your models…", parent)
        self.cards: dict[Path, ModelCard] = {}

    def show_models(self, models: Sequence[ShownModel]) -> None:
        """Draw ``models``; the one in use is marked and cannot be deleted."""
        for card in self.cards.values():
            card.hide()
            card.deleteLater()
        self.cards = {}
        self.empty.setVisible(not models)
        self.empty.setText(
            "No models yet. Find one under Discover, or put .gguf files in your models folder."
        )
        for model in models:
            card = ModelCard(model.model, size=model.size, in_use=model.in_use)
            card.use_requested.connect(self.use_requested)
            card.folder_requested.connect(self.folder_requested)
            card.delete_requested.connect(self.delete_requested)
            self.cards[model.model.path] = card
            self.card_layout.insertWidget(self.card_layout.count() - 1, card)  # above the stretch
