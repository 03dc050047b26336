"""Fixtures for the UI tests: offscreen Qt, a qasync loop, the real window on a temp data dir.

The qasync loop is created with ``already_running=True``: Qt's event processing (which
``qtbot.waitUntil`` drives) then also runs asyncio callbacks, so the test body can wait with
``qtbot.waitUntil`` while the app's tasks (DB calls, model replies) make progress.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import time
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

T = TypeVar("T")

LONG = 180_000  # ms: the machine is shared and slow; waits are generous, never asserted on
MODEL_SETTINGS = {"threads": 1, "max_tokens": 24}


def model_available() -> bool:
    from nexus_desktop.llm.catalog import default_model_path

    return importlib.util.find_spec("llama_cpp") is not None and default_model_path() is not None


needs_model = pytest.mark.skipif(
    not model_available(), reason="llama-cpp-python or the SmolLM2 model is not installed"
)


def run(qtbot: Any, awaitable: Awaitable[T], timeout: int = LONG) -> T:
    """Run a coroutine on the qasync loop while the test waits in Qt's event loop."""
    task = asyncio.ensure_future(awaitable)
    qtbot.waitUntil(task.done, timeout=timeout)
    return task.result()


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "nexus-data"
    monkeypatch.setenv("NEXUS_DATA_DIR", str(path))
    return path


@pytest.fixture
def qt_loop(qapp: Any) -> Iterator[asyncio.AbstractEventLoop]:
    import qasync

    from nexus_desktop.ui.theme import apply_theme

    apply_theme(qapp)
    # As the app does once its loop runs: garbage is collected on the Qt thread only.
    from nexus_desktop.ui.gc_pause import collect_garbage_on_qt_thread

    collect_garbage_on_qt_thread()
    loop = qasync.QEventLoop(qapp, already_running=True)
    asyncio.set_event_loop(loop)
    yield loop
    pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in pending:
        task.cancel()
    if pending:
        # Let the cancelled tasks unwind now, not later inside some random garbage collection.
        gathered = asyncio.gather(*pending, return_exceptions=True)
        deadline = time.monotonic() + 30
        while not gathered.done() and time.monotonic() < deadline:
            qapp.processEvents()
            time.sleep(0.01)
    # Not loop.stop(): it calls QApplication.exit(), after which every later nested Qt event
    # loop (qtbot.waitUntil) returns at once and the next test would hang.
    loop._QEventLoop__is_running = False  # type: ignore[attr-defined]
    asyncio.events._set_running_loop(None)
    loop.close()
    asyncio.set_event_loop(None)
    # The loop's timer object is owned by Python; delete it here, on the Qt thread, rather than
    # whenever the garbage collector happens to run (possibly on a worker thread).
    from PySide6.QtCore import QCoreApplication, QEvent

    loop._timer.deleteLater()  # type: ignore[attr-defined]
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)


@pytest.fixture
def core(data_dir: Path, qt_loop: asyncio.AbstractEventLoop) -> Any:
    from nexus_desktop.core import AppCore

    app_core = AppCore()
    settings = app_core.settings.model_copy(update=MODEL_SETTINGS)
    app_core.store.save_settings(settings)
    app_core.settings = settings
    from nexus_desktop.chat.personas import add_persona

    add_persona(app_core.store.engine, "Tester")  # who the user is: {{user}} reads "Tester"
    return app_core


@pytest.fixture
def window(qtbot: Any, core: Any) -> Iterator[Any]:
    """The real main window, shown, with the first character's chat open; the model loads behind."""
    from nexus_desktop.ui.main_window import MainWindow

    main_window = MainWindow()
    main_window.resize(1280, 800)
    main_window.show()
    run(qtbot, main_window.attach(core))
    yield main_window
    close_window(qtbot, main_window, core)


def close_window(qtbot: Any, main_window: Any, core: Any) -> None:
    """Stop the chat, finish background work, close the core, then the window."""
    from nexus_desktop.ui.ops import wait_for_running_ops

    run(qtbot, main_window.chat_view.stop_and_wait())
    run(qtbot, wait_for_running_ops())
    run(qtbot, core.aclose())
    # Closed here rather than by qtbot.addWidget, which would close it before this teardown.
    main_window.close()
    main_window.deleteLater()


def wait_model_ready(qtbot: Any, window: Any) -> None:
    qtbot.waitUntil(lambda: window.status_line.state in ("ready", "error"), timeout=LONG)
    assert window.status_line.state == "ready", window.status_line.state_label.text()


def type_and_send(qtbot: Any, window: Any, text: str) -> None:
    from PySide6.QtCore import Qt

    composer = window.chat_view.composer
    composer.input.setFocus()
    qtbot.keyClicks(composer.input, text)
    qtbot.mouseClick(composer.send_button, Qt.MouseButton.LeftButton)


def wait_reply_done(qtbot: Any, window: Any) -> None:
    chat = window.chat_view
    qtbot.waitUntil(lambda: chat.generation_task is not None and chat.generation_task.done(), timeout=LONG)


def banner_texts(area: Any, kind: str | None = None) -> list[str]:
    return [b.text for b in area.banners() if kind is None or b.kind == kind]
