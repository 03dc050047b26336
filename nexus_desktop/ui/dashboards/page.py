"""The Dashboards page: a tab per view (scheduler, gate decisions, agent budgets, inference, training,
module panels), each built the first time it is shown.

Only the view on screen refreshes (every second by default), and nothing refreshes while the page
is hidden; ``live_all`` keeps every view refreshing (the ``dashboard_stall`` benchmark's worst case).
Every read runs off the Qt thread; the views draw only what changed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QStackedWidget, QTabBar, QVBoxLayout, QWidget

from nexus_desktop.ui.dashboards.style import page_style
from nexus_desktop.ui.layouts import tight
from nexus_desktop.ui.theme import set_style
from nexus_desktop.ui.widgets import title_block

VIEW_KEYS = ("scheduler", "gates", "budgets", "inference", "training", "panels")


def _make_view(key: str) -> Any:
    if key == "scheduler":
        from nexus_desktop.ui.dashboards.scheduler_view import SchedulerView

        return SchedulerView()
    if key == "gates":
        from nexus_desktop.ui.dashboards.gates_view import GatesView

        return GatesView()
    if key == "budgets":
        from nexus_desktop.ui.dashboards.budgets_view import BudgetsView

        return BudgetsView()
    if key == "inference":
        from nexus_desktop.ui.dashboards.inference_view import InferenceView

        return InferenceView()
    if key == "training":
        from nexus_desktop.ui.dashboards.training_view import TrainingView

        return TrainingView()
    from nexus_desktop.ui.dashboards.module_panels import ModulePanelsView

    return ModulePanelsView()


class DashboardsPage(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("DashboardsPage")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        set_style(self, page_style)
        self.engine: Any = None
        self.supervisor: Callable[[], Any] = lambda: None
        self.views: dict[str, Any] = {}
        self.live_all = False
        self.interval_ms: int | None = None
        """None: each view's own interval (one second)."""

        layout = tight(QVBoxLayout(self))
        top = QFrame()
        top.setObjectName("TopBar")
        top_layout = QVBoxLayout(top)
        top_layout.setContentsMargins(24, 12, 16, 0)
        top_layout.setSpacing(6)
        titles, _, self.subtitle = title_block(
            "Dashboards",
            "Scheduler health, gate decisions, agent budgets, inference, training and module panels · live",
            names=("ChatTitle", "ChatSubtitle"),
        )
        top_layout.addLayout(titles)
        self.tabs = QTabBar()
        self.tabs.setObjectName("DashTabs")
        self.tabs.setDrawBase(False)
        self.tabs.setExpanding(False)
        self.tabs.setUsesScrollButtons(True)
        for title in (
            "Scheduler",
            "Gate decisions",
            "Agent budgets",
            "Inference",
            "Training",
            "Module panels",
        ):
            self.tabs.addTab(title)
        self.tabs.currentChanged.connect(self._tab_changed)
        top_layout.addWidget(self.tabs, 0, Qt.AlignmentFlag.AlignLeft)
        layout.addWidget(top)
        self.stack = QStackedWidget()
        for _ in VIEW_KEYS:
            self.stack.addWidget(QWidget())  # each view is built the first time it is shown
        layout.addWidget(self.stack, 1)

    def bind(self, engine: Any, supervisor: Callable[[], Any] | None = None) -> None:
        """Read ``engine``'s database; ``supervisor()`` is the running ModuleSupervisor, or None."""
        from nexus_desktop.db.engine import open_read_engine

        # Its own connections, which read without taking the write lock (the app's sessions do).
        self.engine = open_read_engine(engine.url.database)
        if supervisor is not None:
            self.supervisor = supervisor
        for key, view in self.views.items():
            self._bind_view(key, view)
        if self.isVisible():
            self._run_timers()

    def view(self, key: str) -> Any:
        """The view for ``key``, built (and bound) now if it was not yet."""
        if key not in self.views:
            view = _make_view(key)
            index = VIEW_KEYS.index(key)
            placeholder = self.stack.widget(index)
            self.stack.insertWidget(index, view)
            if placeholder is not None:
                self.stack.removeWidget(placeholder)
                placeholder.deleteLater()
            self.views[key] = view
            self._bind_view(key, view)
            if self.interval_ms is not None and key != "panels":
                view.timer.setInterval(self.interval_ms)
            self.stack.setCurrentIndex(self.tabs.currentIndex())
        return self.views[key]

    def _bind_view(self, key: str, view: Any) -> None:
        if key == "panels":
            view.bind(self.supervisor)
        elif self.engine is not None:
            view.bind(self.engine)

    def show_view(self, key: str) -> None:
        self.tabs.setCurrentIndex(VIEW_KEYS.index(key))

    def current_key(self) -> str:
        return VIEW_KEYS[self.tabs.currentIndex()]

    def set_interval(self, milliseconds: int) -> None:
        """Refresh every view this often (module panels keep their own ``refresh_seconds``)."""
        self.interval_ms = milliseconds
        for key, view in self.views.items():
            if key != "panels":
                view.timer.setInterval(milliseconds)

    def set_live_all(self, live: bool) -> None:
        self.live_all = live
        if self.isVisible():
            self._run_timers()

    def _tab_changed(self, index: int) -> None:
        if self.isVisible():
            self.view(VIEW_KEYS[index])
            self._run_timers()
        self.stack.setCurrentIndex(index)

    def _run_timers(self) -> None:
        current = self.current_key()
        for key in VIEW_KEYS if self.live_all else (current,):
            self.view(key)
        for key, view in self.views.items():
            if self.live_all or key == current:
                if not view.timer.isActive():
                    view.start()
            else:
                view.stop()

    def showEvent(self, event: Any) -> None:
        super().showEvent(event)
        self._run_timers()

    def hideEvent(self, event: Any) -> None:
        super().hideEvent(event)
        for view in self.views.values():
            view.stop()
