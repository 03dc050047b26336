"""Start the real app on a throw-away data folder, give Vega a few memories (real embeddings) and
save a screenshot of the character editor's Memories page.

    QT_QPA_PLATFORM=offscreen .venv/bin/python docs/make_memories_screenshots.py [--size WxH] [--out FILE]

Writes FILE (default docs/screenshot-memories.png) at the window size given (default 1280x800);
``--size 800x500`` shows the page at the smallest size it must work at.
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
MEMORIES = [
    ("The user's sister Ana lives in Porto and teaches the cello.", "chat", False),
    ("The user is allergic to peanuts.", "notes", False),
    ("The user is learning the violin, badly, but with joy.", "user", False),
    ("Everyone on the station eats together at noon.", "user", True),
]


async def run(window: Any, core: Any, out: Path, size: tuple[int, int]) -> None:
    from nexus_desktop.ui.ops import wait_for_running_ops

    await window.attach(core, load_model=False)
    await wait_for_running_ops()
    vega = next(c for c in window.characters if c.name == "Vega")
    for text, source, shared in MEMORIES:
        await core.engram.imprint(vega.id, text, source=source, shared=shared)
    editor = window.open_character_editor(vega)
    editor.resize(min(1040, size[0] - 40), min(720, size[1] - 40))
    editor.tabs.setCurrentWidget(editor.memories)
    while editor.memories.table.rowCount() < len(MEMORIES):
        await asyncio.sleep(0.05)
    editor.memories.table.selectRow(1)
    editor.memories.new_text.setText("The user's cat is called Pixel.")
    await asyncio.sleep(0.5)
    editor.grab().save(str(out))
    editor.reject()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="1280x800", help="the main window's size, WxH")
    parser.add_argument("--out", type=Path, default=DOCS / "screenshot-memories.png")
    args = parser.parse_args()
    width, height = (int(part) for part in args.size.lower().split("x"))
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ["NEXUS_DATA_DIR"] = tempfile.mkdtemp(prefix="nexus-shots-")
    import qasync
    from PySide6.QtWidgets import QApplication

    from nexus_desktop.chat.personas import add_persona
    from nexus_desktop.core import AppCore
    from nexus_desktop.ui.main_window import APP_PAGES, MainWindow
    from nexus_desktop.ui.theme import apply_theme

    app = QApplication(sys.argv)
    apply_theme(app)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    core = AppCore()
    add_persona(core.store.engine, "Alex", make_default=True)
    window = MainWindow(reserved_pages=APP_PAGES)
    window.resize(width, height)
    window.show()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with loop:
        loop.run_until_complete(run(window, core, args.out, (width, height)))
        loop.run_until_complete(core.aclose())
    print("wrote", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
