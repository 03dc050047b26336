"""Shared set-up for benchmarks that drive the real window: Qt offscreen, qasync, a temp data dir."""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("NEXUS_DATA_DIR", tempfile.mkdtemp(prefix="nexus-bench-"))


def run_with_window(body: Callable[[Any, Any], Awaitable[T]], **settings: Any) -> T:
    """Start the real main window on a fresh core, apply ``settings``, run ``body(window, core)``."""
    import qasync
    from PySide6.QtWidgets import QApplication

    from nexus_desktop.core import AppCore
    from nexus_desktop.ui.lifecycle import freeze_startup_heap
    from nexus_desktop.ui.main_window import MainWindow
    from nexus_desktop.ui.theme import apply_theme

    app = QApplication.instance() or QApplication([])
    assert isinstance(app, QApplication)
    apply_theme(app)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)

    async def main() -> T:
        core = AppCore()
        core.settings = core.settings.model_copy(update=settings)
        window = MainWindow()
        window.show()
        await window.attach(core, load_model=False)
        await window.ensure_model()
        freeze_startup_heap()  # as the app does once it has started
        try:
            return await body(window, core)
        finally:
            await core.aclose()
            window.hide()

    with loop:
        return loop.run_until_complete(main())


async def send_and_wait(window: Any, text: str, timeout: float = 600) -> None:
    window.chat_view.send(text)
    deadline = time.monotonic() + timeout
    await asyncio.sleep(0)
    while window.chat_view.busy:
        if time.monotonic() > deadline:
            raise TimeoutError("the reply did not finish")
        await asyncio.sleep(0.01)
