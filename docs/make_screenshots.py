"""Start the real app on a throw-away data folder, stream a real reply and save screenshots.

    QT_QPA_PLATFORM=offscreen .venv/bin/python docs/make_screenshots.py

Writes docs/screenshot-chat.png and docs/screenshot-character-editor.png (1280x800 window).
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

DOCS = Path(__file__).resolve().parent
PROMPT = "Hi Vega! What's the best way to get better at a new game fast?"


async def run(window, core) -> None:  # type: ignore[no-untyped-def]
    from nexus_desktop.ui.ops import wait_for_running_ops

    await window.attach(core)
    await wait_for_running_ops()
    await window.ensure_model()
    window.chat_view.composer.input.setPlainText(PROMPT)
    window.chat_view.composer.send_button.click()
    while window.chat_view.generation_task is None or not window.chat_view.generation_task.done():
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.3)
    window.grab().save(str(DOCS / "screenshot-chat.png"))

    editor = window.open_character_editor(window.character(window.sidebar.current_id()))
    await asyncio.sleep(0.5)
    editor.grab().save(str(DOCS / "screenshot-character-editor.png"))
    editor.reject()


def main() -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ["NEXUS_DATA_DIR"] = tempfile.mkdtemp(prefix="nexus-shots-")
    import qasync
    from PySide6.QtWidgets import QApplication

    from nexus_desktop.core import AppCore
    from nexus_desktop.ui.main_window import APP_PAGES, MainWindow
    from nexus_desktop.ui.theme import apply_theme

    app = QApplication(sys.argv)
    apply_theme(app)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    core = AppCore()
    core.settings = core.settings.model_copy(update={"threads": 1, "max_tokens": 90})
    from nexus_desktop.chat.personas import add_persona

    add_persona(core.store.engine, "Alex", make_default=True)
    window = MainWindow(reserved_pages=APP_PAGES)  # the page rail, as in the running app
    window.resize(1280, 800)
    window.show()
    with loop:
        loop.run_until_complete(run(window, core))
        loop.run_until_complete(core.aclose())
    print("wrote", DOCS / "screenshot-chat.png", DOCS / "screenshot-character-editor.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
