"""Discover: search Hugging Face for GGUF repos, or paste a repo or address, and see each model
file's quantisation, size and fit for this PC before downloading it.

Searching and listing a repo go over the network, so they run off the Qt thread (``QueryOp``);
an answer that arrives after a newer question was asked is dropped.  ``download_requested`` hands
the chosen model to the page, which queues it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from nexus_desktop.hub.errors import HubError
from nexus_desktop.ui.model_card import badge, size_text
from nexus_desktop.ui.ops import QueryOp
from nexus_desktop.ui.widgets import ElidedLabel, push_button

if TYPE_CHECKING:
    # hub.search imports huggingface_hub (slow): it is imported by the searches, in their threads.
    from nexus_desktop.hub.search import RemoteModel, RepoHit, RepoModels


def _search(text: str) -> list[RepoHit]:
    from nexus_desktop.hub.search import search_repos

    return search_repos(text)


def _repo_models(reference: str, models_dir: Path | None) -> tuple[RepoModels, set[str]]:
    """The repo's models, and which of them are in ``models_dir`` already."""
    from nexus_desktop.hub.download import final_path
    from nexus_desktop.hub.search import repo_models

    listing = repo_models(reference)
    if models_dir is None:
        return listing, set()
    return listing, {model.key for model in listing.models if final_path(models_dir, model).is_file()}


def fit_tone(verdict: str) -> str:
    """The badge colour for a fit verdict: good on the GPU, partial, or bad (too large)."""
    text = verdict.lower()
    if "too large" in text:
        return "bad"
    return "good" if text.startswith("fits") else "partial"  # "partly on GPU", "CPU only"


def count_text(count: int) -> str:
    if count >= 1_000_000:
        return f"{count / 1e6:.1f}M"
    return f"{count / 1e3:.1f}k" if count >= 1000 else str(count)


def repo_line(hit: RepoHit) -> str:
    when = f" · updated {hit.last_modified:%Y-%m-%d}" if hit.last_modified else ""
    likes = "1 like" if hit.likes == 1 else f"{count_text(hit.likes)} likes"
    return f"{hit.repo_id}\n{count_text(hit.downloads)} downloads · {likes}{when}"


class RepoFileRow(QFrame):
    """One downloadable model of a repo: its name, quantisation, size, fit and Download."""

    download_requested = Signal(object)

    def __init__(
        self, model: RemoteModel, *, queued: bool, on_disk: bool, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.model = model
        self.setObjectName("RepoFile")
        self.setAccessibleName(f"Model file {model.name}")
        row = QHBoxLayout(self)
        row.setContentsMargins(12, 8, 8, 8)
        row.setSpacing(8)
        words = QVBoxLayout()
        words.setSpacing(2)
        name = ElidedLabel(model.name)
        name.setObjectName("CardTitle")
        parts = f" · {len(model.files)} parts" if len(model.files) > 1 else ""
        self.facts = QLabel(
            f"{model.quantization or 'unknown quantisation'} · {size_text(model.size)}{parts}"
        )
        self.facts.setObjectName("CardMeta")
        words.addWidget(name)
        facts_row = QHBoxLayout()
        facts_row.setSpacing(8)
        facts_row.addWidget(self.facts)
        self.fit = badge(model.fit, fit_tone(model.fit), "How this model would run on this PC, by its size.")
        facts_row.addWidget(self.fit)
        facts_row.addStretch(1)
        words.addLayout(facts_row)
        row.addLayout(words, 1)
        self.download_button = push_button("Download", role="primary", icon_name="import")
        self.download_button.setAccessibleName(f"Download {model.name}")
        self.download_button.setToolTip(
            f"Download {model.name} ({size_text(model.size)}) to your models folder"
        )
        self.download_button.clicked.connect(lambda: self.download_requested.emit(self.model))
        row.addWidget(self.download_button, 0, Qt.AlignmentFlag.AlignVCenter)
        if on_disk:
            self.download_button.setEnabled(False)
            self.download_button.setText("Downloaded")
            self.download_button.setToolTip("This model is in your models folder; see My models.")
        elif queued:
            self.mark_queued()

    def mark_queued(self) -> None:
        self.download_button.setEnabled(False)
        self.download_button.setText("In Downloads")
        self.download_button.setToolTip("This model is downloading or downloaded; see Downloads.")


class DiscoverView(QWidget):
    download_requested = Signal(object)
    """A ``RemoteModel`` the user chose to download."""
    repo_shown = Signal(str)
    """A repo's files are listed (tests and screenshots wait on it)."""
    results_shown = Signal()

    def __init__(
        self,
        *,
        queued: Callable[[], Collection[str]] = frozenset,
        models_dir: Callable[[], Path | None] = lambda: None,
        parent: QWidget | None = None,
    ) -> None:
        """``queued``: the keys of the models in Downloads; ``models_dir``: where downloads land
        (called off the Qt thread)."""
        super().__init__(parent)
        self._queued = queued
        self._models_dir = models_dir
        self._asked = 0
        self.rows: list[RepoFileRow] = []
        outer = QVBoxLayout(self)
        outer.setContentsMargins(20, 12, 20, 12)
        outer.setSpacing(8)

        fields = QHBoxLayout()
        fields.setSpacing(8)
        self.search_field = QLineEdit()
        self.search_field.setObjectName("Search")
        self.search_field.setPlaceholderText("Search Hugging Face for GGUF models")
        self.search_field.setAccessibleName("Search models")
        self.search_field.setClearButtonEnabled(True)
        self.search_field.returnPressed.connect(self.search)
        self.search_button = push_button("Search", icon_name="search")
        self.search_button.setAccessibleName("Search Hugging Face")
        self.search_button.clicked.connect(self.search)
        self.paste_field = QLineEdit()
        self.paste_field.setPlaceholderText("Paste a repo (owner/name) or address")
        self.paste_field.setAccessibleName("Repo or address")
        self.paste_field.setToolTip("owner/name, a huggingface.co model address or one file's address")
        self.paste_field.returnPressed.connect(self.open_pasted)
        self.open_button = push_button("Open")
        self.open_button.setAccessibleName("Open the pasted repo")
        self.open_button.clicked.connect(self.open_pasted)
        fields.addWidget(self.search_field, 3)
        fields.addWidget(self.search_button)
        fields.addWidget(self.paste_field, 2)
        fields.addWidget(self.open_button)
        outer.addLayout(fields)

        self.status = QLabel("Search for a model by name, for example: qwen 1.5b instruct")
        self.status.setObjectName("CardPath")
        self.status.setWordWrap(True)
        outer.addWidget(self.status)

        columns = QHBoxLayout()
        columns.setSpacing(12)
        self.repo_list = QListWidget()
        self.repo_list.setObjectName("RepoList")
        self.repo_list.setAccessibleName("Repos found")
        self.repo_list.setMinimumWidth(180)
        self.repo_list.setWordWrap(True)
        self.repo_list.currentItemChanged.connect(self._repo_chosen)
        columns.addWidget(self.repo_list, 2)
        self.files_area = QScrollArea()
        self.files_area.setObjectName("LibraryScroll")
        self.files_area.setWidgetResizable(True)
        self.files_area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        files = QWidget()
        self._files = QVBoxLayout(files)
        self._files.setContentsMargins(4, 0, 4, 0)
        self._files.setSpacing(8)
        self.files_title = QLabel("")
        self.files_title.setObjectName("CardTitle")
        self.files_title.setWordWrap(True)
        self._files.addWidget(self.files_title)
        self._files.addStretch(1)
        self.files_area.setWidget(files)
        columns.addWidget(self.files_area, 3)
        outer.addLayout(columns, 1)

    # Asking --------------------------------------------------------------------------------

    def search(self) -> None:
        text = self.search_field.text().strip()
        if not text:
            self.status.setText("Type part of a model's name first, for example: llama 3.2 1b")
            return
        self.status.setText(f"Searching for “{text}”…")
        self._ask(lambda: _search(text), self._show_hits)

    def open_pasted(self) -> None:
        text = self.paste_field.text().strip()
        if not text:
            self.status.setText("Paste a repo first: owner/name or a Hugging Face address.")
            return
        self.open_repo(text)

    def open_repo(self, reference: str) -> None:
        """List the GGUF models of ``reference`` (owner/name or an address)."""
        self.status.setText(f"Listing the files of {reference}…")
        folder = self._models_dir  # called in the worker: it may create the folder
        self._ask(lambda: _repo_models(reference, folder()), self._show_repo)

    def _ask(self, work: Callable[[], Any], show: Callable[[Any], None]) -> None:
        self._asked += 1
        asked = self._asked

        def answered(result: Any) -> None:
            if asked == self._asked:  # a newer question makes this answer stale
                show(result)

        def failed(error: BaseException) -> None:
            if asked == self._asked:
                self.status.setText(_one_line(error))

        QueryOp(parent=self, op=work, success=answered).failure(failed).run_in_background()

    # Answers -------------------------------------------------------------------------------

    def _show_hits(self, hits: list[RepoHit]) -> None:
        self.repo_list.blockSignals(True)
        self.repo_list.clear()
        for hit in hits:
            item = QListWidgetItem(repo_line(hit))
            item.setData(Qt.ItemDataRole.UserRole, hit.repo_id)
            item.setToolTip(hit.repo_id)
            self.repo_list.addItem(item)
        self.repo_list.blockSignals(False)
        self.status.setText(
            f"{len(hits)} repos with GGUF models; choose one to see its files."
            if hits
            else "No repo with GGUF models matches; try fewer or other words."
        )
        self.results_shown.emit()

    def _repo_chosen(self, item: QListWidgetItem | None, _previous: object = None) -> None:
        if item is not None:
            self.open_repo(str(item.data(Qt.ItemDataRole.UserRole)))

    def _show_repo(self, answer: tuple[RepoModels, set[str]]) -> None:
        listing, on_disk = answer
        for row in self.rows:
            row.hide()
            row.deleteLater()
        queued = self._queued()
        models = [listing.wanted] if listing.wanted is not None else list(listing.models)
        self.rows = []
        for model in models:
            row = RepoFileRow(model, queued=model.key in queued, on_disk=model.key in on_disk)
            row.download_requested.connect(self._download)
            self.rows.append(row)
            self._files.insertWidget(self._files.count() - 1, row)
        self.files_title.setText(listing.repo_id)
        count = len(listing.models)
        self.status.setText(
            f"{listing.repo_id}: {count} GGUF model{'s' if count != 1 else ''}; "
            "the badge says how each would run on this PC."
        )
        self.repo_shown.emit(listing.repo_id)

    def _download(self, model: RemoteModel) -> None:
        for row in self.rows:
            if row.model.key == model.key:
                row.mark_queued()
        self.download_requested.emit(model)

    def row(self, name: str) -> RepoFileRow | None:
        return next((row for row in self.rows if row.model.name == name), None)


def _one_line(error: BaseException) -> str:
    if isinstance(error, HubError):
        return str(error)
    return f"That did not work ({type(error).__name__}: {error}); try again."
