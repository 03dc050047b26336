"""Save screenshots of game mode, on a throw-away data folder, at 800x500.

    QT_QPA_PLATFORM=offscreen .venv/bin/python docs/make_game_screenshots.py [--out DIR]

Writes (default DIR: docs/screenshots/):
- DIR/game_mode.png: the window after the game-mode switch was turned on; the bundled model was
  loaded and is unloaded, and the status line says so;
- DIR/game_mode_settings.png: Settings → Game mode, with what the detectors saw on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path

DOCS = Path(__file__).resolve().parent
SIZE = (800, 500)


async def shoot(core, out: Path) -> None:  # type: ignore[no-untyped-def]
    from nexus_desktop.ui.main_window import APP_PAGES, MainWindow
    from nexus_desktop.ui.ops import wait_for_running_ops

    window = MainWindow(reserved_pages=APP_PAGES)
    window.resize(*SIZE)
    window.show()
    await window.attach(core)
    await core.sources.get()  # the model is loaded, as it is before a game starts
    await core.set_game_mode_switch(True)
    await core.game_mode.poll_now()
    await wait_for_running_ops()
    await asyncio.sleep(0.3)
    window.grab().save(str(out / "game_mode.png"))
    print(f"{out / 'game_mode.png'}: {window.game_mode_badge.label.text()}")

    dialog = window.open_settings("game")
    dialog.resize(*SIZE)
    await asyncio.sleep(0.3)
    dialog.grab().save(str(out / "game_mode_settings.png"))
    print(f"{out / 'game_mode_settings.png'}: {dialog.game_mode.probes.text()!r}")
    dialog.reject()
    await window.chat_view.stop_and_wait()
    await wait_for_running_ops()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DOCS / "screenshots")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ["NEXUS_DATA_DIR"] = tempfile.mkdtemp(prefix="nexus-game-shots-")
    sys.path.insert(0, str(DOCS.parent))
    import qasync
    from PySide6.QtWidgets import QApplication

    from nexus_desktop.chat.personas import add_persona
    from nexus_desktop.core import AppCore
    from nexus_desktop.ui.theme import apply_theme

    app = QApplication(sys.argv[:1])
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    core = AppCore()
    core.settings = core.settings.model_copy(update={"threads": 1})
    apply_theme(app)
    add_persona(core.store.engine, "Alex", make_default=True)  # no first-run name panel in the shot
    with loop:
        loop.run_until_complete(shoot(core, args.out))
        loop.run_until_complete(core.aclose())
    return 0


if __name__ == "__main__":
    sys.exit(main())
