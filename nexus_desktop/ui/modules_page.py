"""The Modules page: a gallery of module cards, installs and validations with progress and cancel.

    page = ModulesPage()
    page.bind(core.modules)   # a ModuleService

Installs and validations run in their own processes through ``InstallQueue``; every other action
is a ``QueryOp`` on the service.  Nothing here blocks the Qt thread.  While the page shows, the
cards' call counts follow the module processes (read from memory, no database).  A notice about
one module goes when that module's state changes (approved, disabled…); notices scroll with the
cards, above them, so they never cover one.
"""

from __future__ import annotations

from collections.abc import Awaitable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import shiboken6
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QHideEvent, QShowEvent
from PySide6.QtWidgets import (
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from nexus_desktop.modules.registry import ApprovalRequest
from nexus_desktop.modules.service import ModuleService, ModuleView
from nexus_desktop.ui.approval_dialog import ReportDialog
from nexus_desktop.ui.build_card import BuildCard
from nexus_desktop.ui.build_round_dialog import Review, approval_dialog, review_module
from nexus_desktop.ui.credential_dialog import CredentialDialog
from nexus_desktop.ui.install_queue import InstallJob, InstallQueue
from nexus_desktop.ui.layouts import tight
from nexus_desktop.ui.module_card import ModuleCardWidget, modules_style
from nexus_desktop.ui.ops import QueryOp
from nexus_desktop.ui.theme import set_style
from nexus_desktop.ui.widgets import Banner, BannerArea, ElidedLabel, push_button

if TYPE_CHECKING:
    from nexus_desktop.builder.loop import BuildUpdate
    from nexus_desktop.core import AppCore

MAX_BUILD_CARDS = 3
ARCHIVE_FILTER = "Module archives (*.zip *.whl);;All files (*)"
COLUMNS = 2
RUNTIME_POLL_MS = 2000


class ModulesPage(QWidget):
    refreshed = Signal()
    """The cards now show the service's latest state."""
    dialog_opened = Signal(QWidget)
    """An approval, report or secret dialog was opened (tests and screenshots use it)."""
    build_heard = Signal(int)
    """A build made a step (handed to the Qt thread)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ModulesPage")
        set_style(self, modules_style)
        self.service: ModuleService | None = None
        self.core: AppCore | None = None
        self.views: dict[str, ModuleView] = {}
        self.cards: dict[str, ModuleCardWidget] = {}
        self.queue = InstallQueue(self)
        self._refresh_timer = QTimer(self, singleShot=True, interval=50)
        self._refresh_timer.timeout.connect(self.refresh)
        self._runtime_timer = QTimer(self, interval=RUNTIME_POLL_MS)
        self._runtime_timer.timeout.connect(self.show_runtime)
        self._refreshes = 0
        # name -> (its latest notice, the refreshes started before it, the module's state it speaks of)
        self._module_banners: dict[str, tuple[Banner, int, str | None]] = {}

        outer = tight(QVBoxLayout(self))
        header = QFrame()
        header.setObjectName("PageHeader")
        header.setFixedHeight(68)
        row = QHBoxLayout(header)
        row.setContentsMargins(24, 10, 20, 10)
        titles = QVBoxLayout()
        titles.setSpacing(0)
        title = QLabel("Modules")
        title.setObjectName("PageTitle")
        subtitle = ElidedLabel(
            "Tools, characters and panels from modules · nothing runs until you approve it"
        )
        subtitle.setObjectName("PageSubtitle")
        titles.addWidget(title)
        titles.addWidget(subtitle)
        row.addLayout(titles, 1)
        self.new_module_button = push_button("New module…", icon_name="wand")
        self.new_module_button.setAccessibleName("Build a new module from a description")
        self.new_module_button.setToolTip("Describe it; NEXUS writes, tests and repairs it, then asks you")
        self.new_module_button.clicked.connect(self.new_module)
        self.new_module_button.hide()  # until a builder is bound
        row.addWidget(self.new_module_button)
        self.install_folder_button = push_button("Install from folder…", icon_name="folder")
        self.install_folder_button.clicked.connect(self._pick_folder)
        self.install_file_button = push_button("Install from .zip/.whl…", role="primary", icon_name="import")
        self.install_file_button.clicked.connect(self._pick_archive)
        row.addWidget(self.install_folder_button)
        row.addWidget(self.install_file_button)
        outer.addWidget(header)

        body = QVBoxLayout()
        body.setContentsMargins(24, 16, 24, 0)
        body.setSpacing(10)
        self.job_strip = QFrame()
        self.job_strip.setObjectName("JobStrip")
        strip = QHBoxLayout(self.job_strip)
        strip.setContentsMargins(14, 8, 8, 8)
        self.job_label = QLabel()
        self.job_progress = QProgressBar()
        self.job_progress.setRange(0, 0)  # busy: a job reports steps, not percentages
        self.job_progress.setTextVisible(False)
        self.job_progress.setFixedWidth(160)
        self.cancel_button = push_button("Cancel")
        self.cancel_button.clicked.connect(self.queue.cancel_all)
        strip.addWidget(self.job_label, 1)
        strip.addWidget(self.job_progress)
        strip.addWidget(self.cancel_button)
        self.job_strip.hide()
        body.addWidget(self.job_strip)
        self.queue.started.connect(self._job_started)
        self.queue.progress.connect(lambda job, text: self.job_label.setText(text))
        self.queue.finished.connect(self._job_finished)
        self.queue.allFinished.connect(lambda _ids: self.job_strip.hide())
        outer.addLayout(body)

        self.scroll_area = QScrollArea()
        self.scroll_area.setObjectName("ModuleScroll")
        self.scroll_area.setWidgetResizable(True)
        self.scroll_area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        content = QWidget()
        content_layout = QVBoxLayout(content)
        content_layout.setContentsMargins(24, 12, 24, 24)
        content_layout.setSpacing(12)
        self.banners = BannerArea()
        content_layout.addWidget(self.banners)
        self.build_cards: dict[int, BuildCard] = {}
        """This session's builds (the newest ``MAX_BUILD_CARDS``), newest on top."""
        self.builds_column = QVBoxLayout()
        self.builds_column.setSpacing(10)
        content_layout.addLayout(self.builds_column)
        # Columns of their own (not a grid): a tall card never stretches or squeezes its neighbour.
        columns = QHBoxLayout()
        columns.setSpacing(14)
        content_layout.addLayout(columns, 1)
        self.columns: list[QVBoxLayout] = []
        for _ in range(COLUMNS):
            column = QVBoxLayout()
            column.setSpacing(14)
            column.addStretch(1)
            columns.addLayout(column, 1)
            self.columns.append(column)
        self.scroll_area.setWidget(content)
        outer.addWidget(self.scroll_area, 1)

    # Binding ------------------------------------------------------------------------------

    def bind(self, service: ModuleService) -> None:
        """Show ``service``'s modules and follow its changes."""
        self.service = service
        service.listeners.append(self._refresh_timer.start)
        self.refresh()

    def bind_builds(self, core: AppCore) -> None:
        """Offer New module… and show each build of this session (started here or in the chat)
        as a live card above the modules."""
        self.core = core
        self.new_module_button.show()
        page = self

        def heard(update: BuildUpdate) -> None:
            if shiboken6.isValid(page):
                page.build_heard.emit(update.build_id)

        self.build_heard.connect(self.show_build)
        unsubscribe = core.builds.changes.subscribe(heard)
        self.destroyed.connect(lambda *_: unsubscribe())

    def new_module(self) -> None:
        from nexus_desktop.ui.new_module_dialog import NewModuleDialog

        dialog = NewModuleDialog(self.core, self)
        dialog.build_requested.connect(self.start_build)
        self._open(dialog)

    def start_build(self, description: str) -> None:
        assert self.core is not None
        QueryOp(parent=self, op=self.core.builds.start(description), success=self.show_build).failure(
            self._error
        ).run_in_background()

    def show_build(self, build_id: int) -> None:
        """A card for the build, on top (once; the card follows the build itself)."""
        if build_id in self.build_cards or self.core is None:
            return
        card = BuildCard(self.core, build_id)
        card.dialog_opened.connect(self.dialog_opened.emit)
        self.build_cards[build_id] = card
        self.builds_column.insertWidget(0, card)
        for old in list(self.build_cards)[:-MAX_BUILD_CARDS]:
            gone = self.build_cards.pop(old)
            gone.hide()
            gone.deleteLater()

    def refresh(self) -> None:
        if self.service is None:
            return
        self._refreshes += 1
        started = self._refreshes

        def show(views: list[ModuleView]) -> None:
            self._show(views, started)

        QueryOp(parent=self, op=self.service.list, success=show).failure(self._error).run_in_background()

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self._runtime_timer.start()

    def hideEvent(self, event: QHideEvent) -> None:
        super().hideEvent(event)
        self._runtime_timer.stop()

    def show_runtime(self) -> None:
        """Update each card's running state and call count from the module processes."""
        if self.service is not None:
            status = self.service.supervisor.status()
            for name, card in self.cards.items():
                card.show_runtime(status.get(name))

    def _show(self, views: list[ModuleView], started: int = 0) -> None:
        self._forget_stale_banners(views, started)
        for card in self.cards.values():
            card.hide()
            card.deleteLater()
        # Waiting for you first, then broken ones, then the rest by name.
        order = {"awaiting_approval": 0, "failed": 1, "quarantined": 1}
        views = sorted(views, key=lambda v: (order.get(v.state, 2), v.card.display_name.lower()))
        self.views = {view.name: view for view in views}
        self.cards = {}
        for index, view in enumerate(views):
            card = ModuleCardWidget(view)
            card.requested.connect(self.do)
            self.cards[view.name] = card
            column = self.columns[index % COLUMNS]
            column.insertWidget(column.count() - 1, card)  # above the stretch
        self.refreshed.emit()

    # Actions ------------------------------------------------------------------------------

    def do(self, action: str, name: str) -> None:
        """Carry out a card's action (``ModuleCardWidget.requested``)."""
        service = self.service
        if service is None:
            return
        view = self.views.get(name)
        if action == "validate":
            self.queue.add("validate", name, service.job_command("validate", name))
        elif action == "approve":
            self._op(review_module(service, name), self._open_approval)
        elif action == "enable":
            self._op(service.enable(name))
        elif action == "disable":
            self._op(service.disable(name))
        elif action == "release":
            # Out of quarantine, then the same validation as Validate; approving is the next step.
            self._op(service.release(name), lambda _: self.do("validate", name))
        elif action == "rollback":
            self._op(
                service.rollback(name),
                lambda card: self._info(f"{card.display_name} is back to {card.version}."),
            )
        elif action == "uninstall":
            self._op(service.uninstall(name), lambda _: self._info(f"{name} was uninstalled."))
        elif action == "update":
            path, _ = QFileDialog.getOpenFileName(self, f"Update {name}", "", ARCHIVE_FILTER)
            if path:
                self.install(Path(path))
        elif action == "report":
            self._op(
                service.report(name), lambda report: self._open(ReportDialog(f"Report: {name}", report, self))
            )
        elif action == "credentials" and view is not None and view.credentials:
            credential = view.credentials[0]
            self._open(CredentialDialog(service, name, view.card.display_name, credential, self))

    def install(self, source: Path) -> InstallJob | None:
        """Install (and then validate) a folder, .zip or .whl in the background."""
        if self.service is None:
            return None
        return self.queue.add("install", str(source), self.service.job_command("install", str(source)))

    def _pick_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Install a module from a folder")
        if path:
            self.install(Path(path))

    def _pick_archive(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Install a module", "", ARCHIVE_FILTER)
        if path:
            self.install(Path(path))

    def _open_approval(self, review: Review) -> None:
        dialog = approval_dialog(review, self, self._open)
        dialog.accepted.connect(lambda: self._approve(dialog.approved_request()))
        self._open(dialog)

    def _approve(self, request: ApprovalRequest) -> None:
        assert self.service is not None
        self._op(
            self.service.approve(request),
            lambda card: self._info(f"{card.display_name} is approved and {card.badge.lower()}.", card.name),
        )

    def _open(self, dialog: QWidget) -> None:
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()  # not exec(): a nested event loop would stall the asyncio tasks
        self.dialog_opened.emit(dialog)

    def _op(self, awaitable: Awaitable[Any], success: Any = None) -> None:
        def done(result: Any) -> None:
            self.refresh()
            if success is not None:
                success(result)

        QueryOp(parent=self, op=awaitable, success=done).failure(self._error).run_in_background()

    def _info(self, text: str, module: str | None = None) -> None:
        self._banner("info", text, module)

    def _banner(self, kind: str, text: str, module: str | None = None) -> None:
        """Show a notice above the cards; one about ``module`` replaces its previous one."""
        banner = self.banners.show_banner(kind, text)
        if module is not None:
            previous = self._module_banners.pop(module, None)
            if previous is not None and previous[0] in self.banners.banners():
                previous[0].dismiss()
            self._module_banners[module] = (banner, self._refreshes, None)
        self.scroll_area.ensureWidgetVisible(banner)

    def _forget_stale_banners(self, views: list[ModuleView], started: int) -> None:
        """A module's notice goes once its state moves on ("approve it" after approving, say).

        The state it speaks of is the first one read after it was shown (a read begun earlier may
        predate what the notice reports)."""
        states = {view.name: view.state for view in views}
        shown = self.banners.banners()
        for name, (banner, since, state) in list(self._module_banners.items()):
            if banner not in shown:
                del self._module_banners[name]
            elif started <= since:
                continue
            elif state is None:
                self._module_banners[name] = (banner, since, states.get(name))
            elif states.get(name) != state:
                del self._module_banners[name]
                banner.dismiss()

    def _error(self, error: BaseException) -> None:
        self.banners.show_banner("error", str(error) or type(error).__name__)
        self.refresh()

    def _job_started(self, job: InstallJob) -> None:
        self.job_label.setText(f"{job.label}…")
        self.job_strip.show()

    def _job_finished(self, job: InstallJob, outcome: dict[str, Any]) -> None:
        if outcome.get("cancelled"):
            self._info(f"{job.label.split(' ', 1)[0]} {job.target.rsplit('/', 1)[-1]}: cancelled.")
        elif not outcome.get("ok"):
            self.banners.show_banner("error", str(outcome.get("error")))
        else:
            result = outcome.get("result") or {}
            report = result.get("validation") or {}
            name = result.get("name", job.target)
            if report.get("ok"):
                self._info(
                    f"{name} {result.get('version', '')} passed validation; approve it to turn it on.", name
                )
            else:
                self._banner("warning", f"{name} failed validation: {report.get('error')}", name)
        if self.service is not None:
            QueryOp(parent=self, op=self.service.refresh(), success=lambda _: None).run_in_background()
