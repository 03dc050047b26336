"""Save screenshots of a module build, on a throw-away data folder, with the code written by the
replay server (``tests/replay_server.py``: a real OpenAI-compatible server on loopback standing in
for a remote provider; round 1 fails its tests, round 2 repairs it).

    QT_QPA_PLATFORM=offscreen .venv/bin/python docs/make_build_screenshots.py [--out DIR] [--size WxH]

Writes DIR/build_card.png (default DIR: docs/screenshots/): the chat's build card mid-build, in
repair round 2 while the sandbox tests it; and DIR/approval_generated.png: the approval dialog of
the generated module once it passed.  The intent router is scripted to say ``build_module`` for
"build me …" (a trained router adapter is not what is shown).
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
REQUEST = "build me a dice roller that rolls D&D ability scores"


async def wait_for(condition: Any, what: str, seconds: float = 300) -> None:
    for _ in range(int(seconds / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise TimeoutError(f"Timed out waiting for {what}.")


async def shoot(core: Any, window: Any, out: Path) -> None:
    from nexus_desktop.ui.build_card import BuildCard
    from nexus_desktop.ui.ops import wait_for_running_ops

    await window.attach(core, load_model=False)
    await wait_for_running_ops()
    chat = window.chat_view

    async def no_model() -> None:
        return None

    chat.ensure_model = no_model  # the hand-off to the builder needs no chat model
    chat.send(REQUEST)
    await wait_for(lambda: any(isinstance(w, BuildCard) for w in chat.widgets), "the build card")
    card = next(w for w in chat.widgets if isinstance(w, BuildCard))

    def in_repair_round_2() -> bool:
        shown = card.shown_build
        if shown is None or len(shown.build.rounds) < 2:
            return False
        last = shown.build.rounds[-1]
        return shown.build.status == "validating" and last.seconds is None  # tested right now

    await wait_for(in_repair_round_2, "repair round 2 in the sandbox")
    await asyncio.sleep(0.3)
    window.grab().save(str(out / "build_card.png"))
    print(f"{out / 'build_card.png'}: " + " | ".join(card.step_texts()))

    await wait_for(lambda: card.shown_build is not None and card.shown_build.build.finished, "the result")
    opened: list[Any] = []
    card.dialog_opened.connect(opened.append)
    card.open_approval()
    await wait_for(lambda: bool(opened), "the approval dialog")
    dialog = opened[0]
    dialog.resize(dialog.width(), min(window.height(), 760))
    await asyncio.sleep(0.3)
    dialog.grab().save(str(out / "approval_generated.png"))
    print(f"{out / 'approval_generated.png'}: {dialog.passed_tests}")
    dialog.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DOCS / "screenshots")
    parser.add_argument("--size", default="1180x760", help="the window's size, e.g. 800x500")
    args = parser.parse_args()
    width, height = (int(n) for n in args.size.split("x"))
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ["NEXUS_DATA_DIR"] = tempfile.mkdtemp(prefix="nexus-build-shots-")
    sys.path.insert(0, str(DOCS.parent))
    import qasync
    from PySide6.QtWidgets import QApplication

    from nexus_desktop.builder.request import module_name_for
    from nexus_desktop.chat.personas import add_persona
    from nexus_desktop.chat.routing import IntentRouter
    from nexus_desktop.core import AppCore
    from nexus_desktop.ui.main_window import APP_PAGES, MainWindow
    from nexus_desktop.ui.theme import apply_theme
    from tests.replay_server import MODEL, failing_dice_module, good_dice_module, running_replay_server

    async def scripted_route(_self: IntentRouter, text: str) -> str:
        return "build_module" if text.lower().startswith("build me") else "chat"

    IntentRouter.route = scripted_route  # type: ignore[method-assign]
    app = QApplication(sys.argv[:1])
    apply_theme(app)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    with running_replay_server() as server:
        name = module_name_for(REQUEST)
        server.script("dice roller", [failing_dice_module(name), good_dice_module(name)])
        core = AppCore()
        core.settings = core.settings.model_copy(
            update={"remote_base_url": server.base_url, "remote_model": MODEL}
        )
        core.store.save_settings(core.settings)
        add_persona(core.store.engine, "Alex", make_default=True)
        window = MainWindow(reserved_pages=APP_PAGES)
        window.resize(width, height)
        window.show()
        with loop:
            loop.run_until_complete(shoot(core, window, args.out))
            loop.run_until_complete(core.aclose())
    return 0


if __name__ == "__main__":
    sys.exit(main())
