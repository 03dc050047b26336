"""Start the real app on a throw-away data folder with a module that registers a character, and
save screenshots of the sidebar and of the character editor's Limits page.

    QT_QPA_PLATFORM=offscreen .venv/bin/python docs/make_limits_screenshots.py [--small] [--out DIR]

Writes DIR/screenshot-character-limits.png (default DIR: docs/): the editor's Limits page over the
main window, whose sidebar shows the module's character with "from harbor-tales".  ``--small``
uses the window's smallest size (900x560) instead of 1280x800.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path

DOCS = Path(__file__).resolve().parent
MODULE = "harbor-tales"
CODE = """
from nexus_desktop.modules.hookspecs import hookimpl

SANNE = {"spec": "chara_card_v2", "spec_version": "2.0", "data": {
    "name": "Sanne", "tags": ["sea", "navigator"],
    "description": "The harbour's navigator; she reads tides and rumours.",
    "first_mes": "*taps the tide table* You're late, {{user}}. The evening tide waits for no one."}}


class Plugin:
    @hookimpl
    def register_characters(self, register):
        register(SANNE)


plugin = Plugin()
"""


def write_module(folder: Path) -> None:
    package = folder / "harbor_tales"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "main.py").write_text(CODE)
    manifest = {
        "name": MODULE,
        "version": "1.0.0",
        "display_name": "Harbor tales",
        "description": "Characters from the harbour.",
        "author": "NEXUS",
        "category": "characters",
        "entry_point": "harbor_tales.main:plugin",
        "hooks": ["register_characters"],
    }
    (folder / "nexus-module.json").write_text(json.dumps(manifest))


async def run(window, core, out: Path, size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtWidgets import QScrollArea

    from nexus_desktop.control.policy import Policy
    from nexus_desktop.ui.ops import wait_for_running_ops

    await window.attach(core, load_model=False)
    await core.start_modules(watch=False)
    await core.modules.approve(await core.modules.review(MODULE))
    await core.module_characters.wait()
    await wait_for_running_ops()
    sanne = next(c for c in window.characters if c.name == "Sanne")
    vega = next(c for c in window.characters if c.name == "Vega")
    policy = Policy(
        max_reply_tokens=400,
        tool_rounds_per_reply=2,
        daily_token_budget=50_000,
        tool_cooldowns={"dice.roll": 30},
        tool_prerequisites={"notes.save": ["notes.recall"]},
    )
    await core.db.call(core.chat.governor.set_policy, vega.id, policy)
    window.sidebar.select(sanne.id)  # opens her chat, as a click would
    while window.chat_view.character is None or window.chat_view.character.name != "Sanne":
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    window.grab().save(str(out / "screenshot-sidebar-module-character.png"))

    editor = window.open_character_editor(vega)
    editor.resize(min(1040, size[0] - 40), min(720, size[1] - 40))
    while not editor.limits.isEnabled():
        await asyncio.sleep(0.05)
    editor.tabs.setCurrentWidget(editor.limits)
    await asyncio.sleep(0.5)
    editor.grab().save(str(out / "screenshot-character-limits.png"))
    if "--check-scroll" in sys.argv:  # the tool rules at the bottom of the page, for a look
        scroll = editor.limits.findChild(QScrollArea)
        scroll.verticalScrollBar().setValue(scroll.verticalScrollBar().maximum())
        await asyncio.sleep(0.3)
        editor.grab().save(str(out / "screenshot-character-limits-tools.png"))
    editor.reject()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", action="store_true", help="the window's smallest size, 900x560")
    parser.add_argument("--out", type=Path, default=DOCS)
    parser.add_argument("--check-scroll", action="store_true", help="also the page scrolled down")
    args = parser.parse_args()
    size = (900, 560) if args.small else (1280, 800)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    data = Path(tempfile.mkdtemp(prefix="nexus-shots-"))
    os.environ["NEXUS_DATA_DIR"] = str(data / "data")
    os.environ["NEXUS_LOAD_MODULES"] = f"{MODULE},dice,notes"
    write_module(data / "dev" / MODULE)
    import qasync
    from PySide6.QtWidgets import QApplication

    from nexus_desktop import paths
    from nexus_desktop.core import AppCore
    from nexus_desktop.db.store import Store
    from nexus_desktop.settings import Settings
    from nexus_desktop.ui.main_window import APP_PAGES, MainWindow
    from nexus_desktop.ui.theme import apply_theme

    store = Store(paths.database_path())
    store.save_settings(Settings(modules_developer_dir=str(data / "dev")))
    from nexus_desktop.chat.personas import add_persona

    add_persona(store.engine, "Alex", make_default=True)
    store.close()
    app = QApplication(sys.argv)
    apply_theme(app)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    core = AppCore()
    window = MainWindow(reserved_pages=APP_PAGES)
    window.resize(*size)
    window.show()
    args.out.mkdir(parents=True, exist_ok=True)
    with loop:
        loop.run_until_complete(run(window, core, args.out, size))
        loop.run_until_complete(core.aclose())
    print(
        "wrote",
        args.out / "screenshot-character-limits.png",
        args.out / "screenshot-sidebar-module-character.png",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
