"""Save screenshots of the Models page with a download in progress, against a fake Hugging Face
hub on loopback (tests/hub_server.py), on a throw-away data folder.

    QT_QPA_PLATFORM=offscreen .venv/bin/python docs/make_model_screenshots.py [--out DIR]

Writes to DIR (default docs/screenshots/), in the dark theme, from the real window with the page
rail as in the running app:

- model_library_downloads.png: Downloads, one download held mid-way (bytes, speed, time left)
  and one paused, as after Pause (or a restart);
- model_library_discover.png: Discover, a search's repos and one repo's files with quantisation,
  size, this PC's fit and Download ("In Downloads" for the two above);
- model_library_mine.png: My models, the bundled SmolLM2 (in use) and a downloaded model;
- model_library_800x500.png: Downloads again, the window at its smallest.

The files the fake hub serves are real GGUF files (``tiny_gguf``), small so the shot is quick; the
download is slowed to a few MB/s by holding its thread a moment at each progress report, and
held at about 40% while the shots are taken.  The fit badges are this machine's own verdicts.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
FULL, SMALL = (1280, 800), (800, 500)
MB = 1024 * 1024
CHAT_REPO = "nexus-demo/Tiny-Chat-GGUF"
STORY_REPO = "nexus-demo/Tiny-Story-GGUF"


class Throttle:
    """Listens to the download queue on the download threads: slows ``key``'s download to about
    ``mb_per_s`` and holds it once it is ``hold_at`` of the way, until ``release`` is set."""

    def __init__(self, key: str, *, hold_at: float, mb_per_s: float = 4.0) -> None:
        self.key, self.hold_at, self.delay = key, hold_at, 1.0 / mb_per_s
        self.held = threading.Event()
        self.release = threading.Event()

    def __call__(self, job: Any) -> None:
        if job.key != self.key or job.status != "downloading" or job.progress.done == 0:
            return
        if job.progress.fraction >= self.hold_at and not self.held.is_set():
            self.held.set()
            self.release.wait(120)
        elif not self.held.is_set():
            time.sleep(self.delay)  # one report per 1 MB chunk: a chunk every ``delay`` seconds


def serve_repos(hub: Any) -> None:
    from tests.hub_server import tiny_gguf

    chat = {
        "tiny-chat.Q4_K_M.gguf": tiny_gguf(name="Tiny Chat", payload_bytes=6 * MB, file_type=15),
        "tiny-chat.Q8_0.gguf": tiny_gguf(name="Tiny Chat", payload_bytes=12 * MB, file_type=7),
        "tiny-chat.F16.gguf": tiny_gguf(name="Tiny Chat", payload_bytes=22 * MB, file_type=1),
        "README.md": b"# Tiny Chat\n",
    }
    hub.add_repo(CHAT_REPO, chat, downloads=48_210)
    story = {
        "tiny-story.Q4_K_M.gguf": tiny_gguf(name="Tiny Story", licence="apache-2.0", payload_bytes=8 * MB)
    }
    hub.add_repo(STORY_REPO, story, downloads=9_304)
    hub.add_repo(
        "nexus-demo/Tiny-Chat-Instruct-GGUF", {"tiny.Q5_K_M.gguf": tiny_gguf(payload_bytes=MB)}, 1_877
    )


async def settle(seconds: float = 0.5) -> None:
    from nexus_desktop.ui.ops import wait_for_running_ops

    await wait_for_running_ops()
    await asyncio.sleep(seconds)


async def until(condition: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the Models page did not get there in time")
        await asyncio.sleep(0.05)


def save(window: Any, out: Path, name: str) -> None:
    path = out / name
    window.grab().save(str(path))
    print("wrote", path)


async def shoot(window: Any, core: Any, out: Path) -> None:
    from nexus_desktop.hub.search import repo_models
    from nexus_desktop.ui.model_library import ModelLibraryPage

    await window.attach(core)
    await window.ensure_model()  # the status line: the bundled model, ready
    page = ModelLibraryPage()
    page.bind(core, window.apply_settings)
    window.add_page("models", "Models", "chip", page)  # as the app adds it (ui/lifecycle.py)
    window.show_page("models")
    await until(lambda: page.queue is not None)
    queue = page.queue

    discover = page.discover
    page.show_tab("discover")
    discover.search_field.setText("tiny")
    discover.search()
    await until(lambda: discover.repo_list.count() == 3)
    discover.repo_list.setCurrentRow(0)  # the most downloaded: Tiny Chat
    await until(lambda: len(discover.rows) == 3)

    # The paused one: started, stopped at its first report, paused.
    story_key = f"{STORY_REPO}/tiny-story.Q4_K_M.gguf"
    story = Throttle(story_key, hold_at=0.0)
    queue.changes.subscribe(story)
    listing = await asyncio.to_thread(repo_models, STORY_REPO)
    page.download(listing.models[0])
    await until(story.held.is_set)
    queue.pause(story_key)
    story.release.set()
    await until(lambda: queue.job(story_key).status == "paused")

    # The running one, from Discover's Download button, held at about 40%.
    chat_key = f"{CHAT_REPO}/tiny-chat.Q8_0.gguf"
    chat = Throttle(chat_key, hold_at=0.4)
    queue.changes.subscribe(chat)
    discover.row("tiny-chat.Q8_0.gguf").download_button.click()
    await until(chat.held.is_set)
    await settle()

    save(window, out, "model_library_discover.png")
    page.show_tab("downloads")
    await settle()
    save(window, out, "model_library_downloads.png")
    window.resize(*SMALL)
    await settle(0.8)
    save(window, out, "model_library_800x500.png")
    window.resize(*FULL)
    page.show_tab("mine")
    await settle(0.8)
    save(window, out, "model_library_mine.png")

    chat.release.set()
    await asyncio.to_thread(page.close_downloads)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DOCS / "screenshots")
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ["NEXUS_DATA_DIR"] = tempfile.mkdtemp(prefix="nexus-model-shots-")
    sys.path.insert(0, str(ROOT))  # tests.hub_server
    import qasync
    from PySide6.QtWidgets import QApplication

    from nexus_desktop import paths
    from nexus_desktop.core import AppCore
    from nexus_desktop.ui.main_window import APP_PAGES, MainWindow
    from nexus_desktop.ui.theme import apply_theme
    from tests.hub_server import running_hub, tiny_gguf

    app = QApplication(sys.argv[:1])
    apply_theme(app)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    core = AppCore()
    core.settings = core.settings.model_copy(update={"threads": 1, "theme": "dark"})
    # A model downloaded earlier, so My models shows one beside the bundled model.
    earlier = paths.models_dir() / "nexus-demo__Tiny-Chat-GGUF" / "tiny-chat.Q4_K_M.gguf"
    earlier.parent.mkdir(parents=True)
    earlier.write_bytes(tiny_gguf(name="Tiny Chat", payload_bytes=6 * MB, file_type=15))
    window = MainWindow(reserved_pages=APP_PAGES)
    window.resize(*FULL)
    window.show()
    with running_hub() as hub, loop:
        os.environ["HF_ENDPOINT"] = hub.url
        serve_repos(hub)
        loop.run_until_complete(core.personas.add("Alex", "A player.", make_default=True))
        loop.run_until_complete(shoot(window, core, out))
        loop.run_until_complete(core.aclose())
    return 0


if __name__ == "__main__":
    sys.exit(main())
