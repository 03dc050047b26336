"""Save the screenshot of a chat answered by a remote worker (docs/second-pc.md).

    QT_QPA_PLATFORM=offscreen .venv/bin/python docs/make_worker_screenshots.py [--size 1100x700]

A real nats-server on loopback and a real ``nexus worker`` subprocess (its own data folder, the
bundled SmolLM2) stand in for the second PC, named "gpc2"; the window uses Models → Remote
worker, sends a message and waits for the reply.  Writes docs/screenshot-remote-worker.png (the
line under the reply says "answered by gpc2"; the status line names the worker and its model)
and docs/screenshot-remote-worker-settings.png (Settings → Remote worker after Find workers).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parent


async def settle(seconds: float = 0.6) -> None:
    from nexus_desktop.ui.ops import wait_for_running_ops

    await wait_for_running_ops()
    await asyncio.sleep(seconds)


async def shoot(window: Any, core: Any, size: tuple[int, int]) -> None:
    await window.attach(core)
    await settle()
    await window.ensure_model()
    view = window.chat_view
    before = view.generation_task
    view.composer.input.setPlainText("Which PC are you running on tonight?")
    view.composer.send_button.click()
    while view.generation_task is before or not view.generation_task.done() or view.busy:
        await asyncio.sleep(0.1)
    await settle(1.0)
    window.grab().save(str(DOCS / "screenshot-remote-worker.png"))
    print("wrote", DOCS / "screenshot-remote-worker.png", "-", window.status_line.state_label.text())

    dialog = window.open_settings("worker")
    dialog.resize(*size)
    dialog.worker.find_workers()
    for _ in range(50):
        await asyncio.sleep(0.1)
        if dialog.worker.find_button.isEnabled():
            break
    await settle(0.3)
    dialog.grab().save(str(DOCS / "screenshot-remote-worker-settings.png"))
    print("wrote", DOCS / "screenshot-remote-worker-settings.png", "-", dialog.worker.found.text())
    dialog.reject()
    await view.stop_and_wait()
    await settle(0.2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1100x700", help="window size, WIDTHxHEIGHT")
    args = parser.parse_args()
    size = tuple(int(n) for n in args.size.split("x"))
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    folder = Path(tempfile.mkdtemp(prefix="nexus-worker-shots-"))
    os.environ["NEXUS_DATA_DIR"] = str(folder / "gaming-pc")
    sys.path.insert(0, str(DOCS.parent))
    import qasync
    from PySide6.QtWidgets import QApplication

    from nexus_desktop.chat.personas import add_persona
    from nexus_desktop.core import AppCore
    from nexus_desktop.ui.main_window import APP_PAGES, MainWindow
    from nexus_desktop.ui.theme import apply_theme
    from tests.nats_support import NatsServer, start_worker

    server = NatsServer(folder)
    server.start()
    url = server.url
    try:
        worker = start_worker(url, "gpc2", folder / "second-pc", "--serve", "model,tools")
        try:
            app = QApplication(sys.argv[:1])
            loop = qasync.QEventLoop(app)
            asyncio.set_event_loop(loop)
            core = AppCore()
            core.settings = core.settings.model_copy(
                update={"source": "worker", "worker_url": url, "max_tokens": 60, "seed": 7}
            )
            apply_theme(app)
            add_persona(core.store.engine, "Alex", make_default=True)
            window = MainWindow(reserved_pages=APP_PAGES)
            window.resize(*size)
            window.show()
            with loop:
                loop.run_until_complete(shoot(window, core, size))
                loop.run_until_complete(core.aclose())
        finally:
            worker.stop()
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
