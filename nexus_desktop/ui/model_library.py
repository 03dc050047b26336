"""The Models page: My models, Discover (search Hugging Face) and Downloads, as LM Studio's
Discover and My Models.

    page = ModelLibraryPage()
    page.bind(core, window.apply_settings)

"Use this model" goes through ``apply_settings``, the path the settings dialog takes, so the
model picker, the status line and the loaded model follow.  Reading the models (every file's
GGUF header), searching and deleting run off the Qt thread; the downloads' progress arrives
from the download threads and is drawn on the Qt thread (``model_library_downloads``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import shiboken6
from PySide6.QtCore import QUrl, Signal
from PySide6.QtGui import QDesktopServices, QShowEvent
from PySide6.QtWidgets import QFrame, QHBoxLayout, QTabWidget, QVBoxLayout, QWidget

from nexus_desktop.ui.layouts import tight
from nexus_desktop.ui.model_library_discover import DiscoverView
from nexus_desktop.ui.model_library_downloads import DownloadsView
from nexus_desktop.ui.model_library_mine import MyModelsView, ShownModel
from nexus_desktop.ui.model_library_style import library_style
from nexus_desktop.ui.ops import QueryOp
from nexus_desktop.ui.theme import set_style
from nexus_desktop.ui.widgets import title_block

if TYPE_CHECKING:
    from nexus_desktop.core import AppCore
    from nexus_desktop.hub.download_queue import DownloadQueue
    from nexus_desktop.hub.search import RemoteModel
    from nexus_desktop.settings import Settings

TABS = ("mine", "discover", "downloads")


def open_folder(path: Path) -> None:
    """Show ``path``'s folder in the system's file manager."""
    QDesktopServices.openUrl(QUrl.fromLocalFile(str(path.parent)))


def load_models(settings: Settings) -> list[ShownModel]:
    """Every model My models shows, the one in use marked (reads GGUF headers: not on the Qt thread)."""
    from nexus_desktop.hub.library import list_library
    from nexus_desktop.llm.catalog import resolve_model
    from nexus_desktop.llm.contract import ModelFileError

    folder = settings.models_folder()
    in_use: Path | None = None
    if settings.source == "local":
        try:
            in_use = resolve_model(settings.model_path, folder).resolve()
        except (ModelFileError, OSError):
            in_use = None  # the setting names a missing file: no card is the one in use
    return [
        ShownModel(model, model.size, in_use is not None and model.path.resolve() == in_use)
        for model in list_library(folder)
    ]


def open_queue(settings: Settings) -> DownloadQueue:
    """The download queue for the models folder (lists unfinished downloads: not on the Qt thread)."""
    from nexus_desktop.hub.download_queue import DownloadQueue

    return DownloadQueue(settings.models_folder())


class ModelLibraryPage(QWidget):
    refreshed = Signal()
    """My models shows the files on disk as they are now."""
    models_changed = Signal()
    """A model was downloaded or deleted: the model picker lists the files again."""
    downloads_ready = Signal()
    """The download queue is open (unfinished downloads from before are listed, paused)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ModelLibraryPage")
        set_style(self, library_style)
        self.core: AppCore | None = None
        self.queue: DownloadQueue | None = None
        self._apply_settings: Callable[[Settings], None] | None = None
        self._refreshes = 0
        self._opening_queue = False
        self._queue_folder = ""
        """``settings.models_dir`` when the queue was opened (it downloads into that folder)."""

        outer = tight(QVBoxLayout(self))
        header = QFrame()
        header.setObjectName("PageHeader")
        header.setFixedHeight(68)
        row = QHBoxLayout(header)
        row.setContentsMargins(24, 10, 20, 10)
        titles, _title, _subtitle = title_block(
            "Models", "Your models, and GGUF models to download from Hugging Face"
        )
        row.addLayout(titles, 1)
        outer.addWidget(header)

        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.tabBar().setDrawBase(False)  # the header's own border line is enough
        self.tabs.setAccessibleName("Model library sections")
        self.mine = MyModelsView()
        self.mine.use_requested.connect(self.use_model)
        self.mine.folder_requested.connect(open_folder)
        self.mine.delete_requested.connect(self.delete_model)
        self.downloads = DownloadsView()
        self.downloads.job_finished.connect(self._downloaded)
        self.downloads.count_changed.connect(self._count_downloads)
        self.discover = DiscoverView(queued=self.downloads.listed_keys, models_dir=self._models_folder)
        self.discover.download_requested.connect(self.download)
        self.tabs.addTab(self.mine, "My models")
        self.tabs.addTab(self.discover, "Discover")
        self.tabs.addTab(self.downloads, "Downloads")
        outer.addWidget(self.tabs, 1)

    def bind(self, core: AppCore, apply_settings: Callable[[Settings], None]) -> None:
        """Show ``core``'s models once the page is first shown (nothing is read before);
        "Use this model" saves settings through ``apply_settings``."""
        self.core = core
        self._apply_settings = apply_settings
        if self.isVisible():
            self._shown()

    def _models_folder(self) -> Path | None:
        return self.core.settings.models_folder() if self.core is not None else None

    def show_tab(self, key: str) -> None:
        self.tabs.setCurrentIndex(TABS.index(key))

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self._shown()

    def _shown(self) -> None:
        self.refresh()  # the model picker or a download may have changed what is in use or on disk
        if self.core is None or self._opening_queue:
            return
        settings, old = self.core.settings, self.queue
        if old is not None and (settings.models_dir == self._queue_folder or self._downloading()):
            return  # the same folder, or a running download keeps its folder until it ends
        self._opening_queue = True

        def reopen() -> DownloadQueue:
            if old is not None:
                old.close()  # Settings chose another models folder: downloads go there from now
            return open_queue(settings)

        def opened(queue: DownloadQueue) -> None:
            self._opening_queue = False
            self._queue_folder = settings.models_dir
            self.queue = queue
            self.downloads.bind(queue)
            self.downloads_ready.emit()

        def failed(error: BaseException) -> None:
            self._opening_queue = False  # the next visit tries again
            self._show_error(error)

        QueryOp(parent=self, op=reopen, success=opened).failure(failed).run_in_background()

    def _downloading(self) -> bool:
        return any(job.status == "downloading" for job in self.queue.jobs()) if self.queue else False

    def close_downloads(self) -> None:
        """Pause the running downloads (their ``.part`` files stay for Resume); blocks up to 10 s."""
        if self.queue is not None:
            self.queue.close()

    # My models ------------------------------------------------------------------------------

    def refresh(self, settings: Settings | None = None) -> None:
        """Read the models again (``settings``: ones just applied, which the core may not hold yet)."""
        if self.core is None:
            return
        current = settings or self.core.settings
        self._refreshes += 1
        started = self._refreshes

        def show(models: list[ShownModel]) -> None:
            if started == self._refreshes:  # a later refresh has newer files
                self.mine.show_models(models)
                self.refreshed.emit()

        QueryOp(parent=self, op=lambda: load_models(current), success=show).failure(
            self._show_error
        ).run_in_background()

    def use_model(self, path: Path) -> None:
        assert self.core is not None and self._apply_settings is not None
        card = self.mine.cards.get(path)
        # The bundled model is named by an empty setting, as the model picker names it, so an
        # update of the app that moves its file keeps working.
        model_path = "" if card is not None and card.bundled else str(path)
        settings = self.core.settings.model_copy(update={"source": "local", "model_path": model_path})
        self._apply_settings(settings)
        self.refresh(settings)

    def delete_model(self, path: Path) -> None:
        assert self.core is not None
        card = self.mine.cards.get(path)
        if card is None:
            return
        model, settings = card.model, self.core.settings

        def delete() -> object:
            from nexus_desktop.hub.library import delete_model

            return delete_model(model, settings.models_folder())

        def failed(error: BaseException) -> None:
            if shiboken6.isValid(card):
                card.show_error(str(error))

        QueryOp(parent=self, op=delete, success=lambda _removed: self._files_changed()).failure(
            failed
        ).run_in_background()

    # Discover and downloads ------------------------------------------------------------------

    def _downloaded(self, _job: object) -> None:
        self._files_changed()

    def _files_changed(self) -> None:
        self.refresh()
        self.models_changed.emit()

    def download(self, model: RemoteModel) -> None:
        self.downloads.start(model)

    def _count_downloads(self, count: int) -> None:
        index = TABS.index("downloads")
        self.tabs.setTabText(index, f"Downloads ({count})" if count else "Downloads")

    def _show_error(self, error: BaseException) -> None:
        self.mine.banners.show_banner("error", str(error) or type(error).__name__)
