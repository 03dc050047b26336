"""The running app's life: create the core off the Qt thread, and shut everything down in order.

SIGINT and SIGTERM quit cleanly too: a wakeup fd wakes Python up even while Qt's C++ event
loop is running.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QSocketNotifier
from PySide6.QtWidgets import QApplication, QWidget

if TYPE_CHECKING:
    from nexus_desktop.core import AppCore
    from nexus_desktop.ui.main_window import MainWindow
    from nexus_desktop.ui.model_library import ModelLibraryPage
    from nexus_desktop.ui.training_tray import TrainingTray
    from nexus_desktop.ui.tray import Tray

log = logging.getLogger(__name__)
_signal_sockets: list[socket.socket] = []


def freeze_startup_heap() -> None:
    """Exempt everything start-up created from later full garbage collections.

    A full collection walks every tracked object; with the core, the database layer and the
    widgets loaded that took up to ~80 ms on the Qt thread, a visible stall in the middle of a
    reply or a training run.  Frozen objects are skipped (start-up's own garbage is collected
    first, once), so later collections only walk what was created since.
    """
    gc.collect()
    gc.freeze()


def create_core() -> AppCore:
    """Logging and the core; slow (imports SQLAlchemy, opens the database), so run in a thread."""
    from nexus_desktop import paths
    from nexus_desktop.core import AppCore
    from nexus_desktop.logs import setup_logging

    setup_logging(paths.log_dir())
    return AppCore()


class Application:
    """Owns the window, the core and the tray, and shuts them down in order."""

    def __init__(self, app: QApplication, window: MainWindow) -> None:
        self.app = app
        self.window = window
        self.core: AppCore | None = None
        self.tray: Tray | None = None
        self.training_tray: TrainingTray | None = None
        self.model_library: ModelLibraryPage | None = None
        self.finished = asyncio.Event()
        self.exit_code = 0
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        window.closed.connect(self.quit)

    def start_soon(self) -> None:
        self._tasks.append(asyncio.ensure_future(self.start()))

    async def start(self) -> None:
        try:
            self.core = await asyncio.to_thread(create_core)
        except Exception as error:
            log.exception("Start-up failed")
            self.window.chat_view.banners.show_banner(
                "error",
                f"NEXUS could not open its data ({type(error).__name__}: {error}). "
                "Check that the data folder is writable, then restart the app.",
            )
            self.window.status_line.set_state("error", "Start-up failed")
            self.window.chat_view.stop_waiting_for_chat()
            return
        from nexus_desktop.ui.tray import Tray  # after the first paints: nothing waits on it before

        self.tray = Tray.create(self.window, self.quit)
        self.window.set_tray(self.tray)
        await self.window.attach(self.core)
        if self.tray is not None:
            self.tray.bind_game_mode(self.core)
        self.core.start_game_mode()  # games unload the model; so does a model left unused
        from nexus_desktop.ui.first_run import ask_name_if_new

        ask_name_if_new(self.window.chat_view)  # a panel over the message box; nothing waits on it
        log.info("NEXUS Desktop started")
        self._add_pages(self.core)
        try:
            # Modules (tools such as /roll) run in their own processes; the chat works without them.
            await self.core.start_modules()
        except Exception as error:
            log.exception("Modules did not start")
            self.window.chat_view.banners.show_banner(
                "warning", f"Modules could not start ({error}); chatting works, tools do not."
            )
        try:
            # From here the loop runs by itself; its tasks run off the Qt thread (runners).
            await self.core.start_scheduler()
        except Exception as error:
            log.exception("The scheduler did not start")
            self.window.chat_view.banners.show_banner(
                "warning", f"Scheduled tasks could not start ({error}); the loop runs only by hand."
            )
        # The Prometheus endpoint (off by default): a port in use is a notice, never a failed start.
        await self.core.serve_prometheus(
            lambda problem: self.window.chat_view.banners.show_banner("warning", problem)
        )
        # The gateway for other apps (off by default): the same, a notice at worst.
        await self.core.serve_gateway(
            lambda problem: self.window.chat_view.banners.show_banner("warning", problem)
        )
        freeze_startup_heap()

    def _add_pages(self, core: AppCore) -> None:
        """The Models, Modules, Training and Dashboards pages: built on first visit, or one by one once the
        chat is open (``build_pages_soon``), never on the way to the first keystroke."""

        def modules() -> QWidget:
            from nexus_desktop.ui.modules_page import ModulesPage

            page = ModulesPage()
            page.bind(core.modules)
            page.bind_builds(core)  # New module…, and each build's live card
            return page

        def training() -> QWidget:
            from nexus_desktop.ui.training_page import TrainingPage

            page = TrainingPage()
            page.bind(core.training)
            return page

        def dashboards() -> QWidget:
            # Light until first shown: each view is built, and starts reading, when it is opened.
            from nexus_desktop.ui.dashboards.page import DashboardsPage

            page = DashboardsPage()
            page.bind(core.store.engine, core.running_modules)
            return page

        def models() -> QWidget:
            from nexus_desktop.ui.model_library import ModelLibraryPage

            page = ModelLibraryPage()
            page.bind(core, self.window.apply_settings)  # "Use this model" as the settings dialog applies
            page.models_changed.connect(self.window.refresh_models)  # the picker lists downloads too
            self.model_library = page
            return page

        self.window.add_lazy_page("models", "Models", "chip", models)
        self.window.add_lazy_page("modules", "Modules", "grid", modules)
        self.window.add_lazy_page("training", "Training", "chart", training)
        self.window.add_lazy_page("dashboards", "Dashboards", "gauge", dashboards)
        self.window.build_pages_soon()
        from nexus_desktop.ui.training_tray import TrainingTray

        def notify(notice: Any) -> None:
            level = "warning" if notice.kind in ("failed", "rejected", "judge_failed") else "info"
            self.window.chat_view.banners.show_banner(level, f"{notice.title}. {notice.text}".strip())

        self.training_tray = TrainingTray(
            core.training, self.tray.icon if self.tray else None, on_notice=notify, parent=self.window
        )
        self.training_tray.start()

    def quit(self) -> None:
        if not self._stopping:
            self._stopping = True
            self._tasks.append(asyncio.ensure_future(self._shutdown()))

    async def _shutdown(self) -> None:
        try:
            await self.window.chat_view.stop_and_wait()
            if self.model_library is not None:  # running downloads pause; their .part files resume
                await asyncio.to_thread(self.model_library.close_downloads)
            if self.training_tray is not None:
                self.training_tray.stop()
            if self.core is not None:
                await self.core.aclose()
        except Exception:
            log.exception("Shutting down did not go cleanly")
        finally:
            if self.tray is not None:
                self.tray.hide()
            self.window.hide()
            self.finished.set()


def install_quit_signals(app: QApplication, on_signal: Callable[[], object]) -> QSocketNotifier | None:
    """SIGINT/SIGTERM quit cleanly even while Qt's C++ loop runs (a wakeup fd wakes Python up)."""
    try:
        reader, writer = socket.socketpair()
        reader.setblocking(False)
        writer.setblocking(False)
        signal.set_wakeup_fd(writer.fileno())
    except (OSError, ValueError):
        return None
    notifier = QSocketNotifier(reader.fileno(), QSocketNotifier.Type.Read, app)

    def drain() -> None:
        try:
            reader.recv(256)
        except OSError:
            pass

    notifier.activated.connect(drain)
    _signal_sockets[:] = [reader, writer]  # both ends must outlive the notifier

    def handler(_signum: int, _frame: object) -> None:
        asyncio.get_event_loop().call_soon(on_signal)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, handler)
    return notifier
