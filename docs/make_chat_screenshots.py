"""Start the real app on a throw-away data folder and save the chat screenshots of issue 12.

    QT_QPA_PLATFORM=offscreen .venv/bin/python docs/make_chat_screenshots.py

Writes, from one window with the page rail (as in the running app), in the dark theme unless said:

- docs/screenshot-chat-list.png: Vega's chats (titled ones, an untitled one and a branch), the
  chat list open over the window;
- docs/screenshot-markdown.png: a reply with a table and a code block;
- docs/screenshot-light-theme.png: the chat screen in the light theme;
- docs/screenshot-800x500.png: the same chat with the window at its smallest, 800x500;
- docs/screenshot-group-chat.png: a group of three with one muted, answering a message.

Chats are seeded through the app's own services (``core.chat``, ``core.history``, ``core.groups``,
``core.personas``, ``store.add_message``).  The replies in the light-theme, 800x500 and group
shots are written by SmolLM2-135M, live; the older turns of the seeded chats and the Markdown
reply are written here (a 135M model does not write tables); those show no speed line.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parent
FULL, SMALL = (1280, 800), (800, 500)

# Vega's older chats for the chat list: (title, turns after the greeting).  "" keeps the title
# the app gives an unnamed chat ("Chat from <date>").
VEGA_CHATS: list[tuple[str, list[str]]] = [
    (
        "Charting the Perseus Arm",
        [
            "Plot us a course through the Perseus Arm, Vega.",
            "Course laid in. Three jumps, one refuel at Kepler Station, and a detour around the dust lane.",
        ],
    ),
    (
        "Engine trouble near Io",
        [
            "The port engine is coughing again.",
            "Coolant pressure is low. Suit up, we're venting the manifold.",
            "On my way down to the engine room.",
            "Careful with the third valve — it sticks when it's cold.",
        ],
    ),
    (
        "Stargazing on the observation deck",
        [
            "Which of those stars is the oldest?",
            "See the faint red one low on the left? Eleven billion years and still burning.",
        ],
    ),
    ("", ["Quick one: how much fuel is left?", "Sixty-two percent. Enough for Io and back, twice."]),
]
BRANCHED = "Engine trouble near Io"  # branched from its third message, as "Branch from here" does

MARKDOWN_QUESTION = "Can you give me the jump table and the script that plots the course?"
MARKDOWN_REPLY = """*pulls the numbers up on the main screen* "Here you go, Captain. Shortest jump first:"

| Jump | From | To | Distance (ly) | Fuel |
|---|---|---|--:|--:|
| 1 | Kepler Station | Vesta Gate | 4.2 | 12% |
| 2 | Vesta Gate | Orion Drift | 7.9 | 21% |
| 3 | Orion Drift | The Nebula | 11.4 | 33% |

And the plotting script, as you asked:

```python
def plot_course(jumps: list[tuple[str, str, float]]) -> float:
    \"\"\"Add up the distance; warn about long jumps.\"\"\"
    total = 0.0
    for start, end, distance in jumps:
        if distance > 10:
            print(f"Long jump: {start} -> {end}")
        total += distance
    return total
```

> Fuel stays above **30%** the whole way. I'd still top up at *Vesta Gate*, just in case."""

LIVE_PROMPT = "Vega, can you check the reactor before we jump?"
GROUP_PROMPT = "Evening, everyone! Vega, Bramble: what's the plan for tonight?"


async def seed_vega_chats(core: Any, vega_id: int) -> int:
    """Vega's older chats, a branch and a renamed one; returns the chat the list opens over."""
    store = core.store
    chat_ids: dict[str, int] = {}
    for title, turns in VEGA_CHATS:
        chat, _greeting = await core.chat.new_chat(vega_id)
        for index, text in enumerate(turns):
            role = "user" if index % 2 == 0 else "assistant"
            await core.db.call(store.add_message, chat.id, role, text)
        if title:
            await core.history.rename(chat.id, title)
        chat_ids[title] = chat.id
    messages = await core.db.call(store.list_messages, chat_ids[BRANCHED])
    await core.history.branch(messages[3].id)
    return chat_ids["Stargazing on the observation deck"]


async def seed_markdown_chat(core: Any, vega_id: int) -> int:
    chat, _greeting = await core.chat.new_chat(vega_id)
    await core.db.call(core.store.add_message, chat.id, "user", MARKDOWN_QUESTION)
    await core.db.call(core.store.add_message, chat.id, "assistant", MARKDOWN_REPLY)
    await core.history.rename(chat.id, "The jump table")
    return int(chat.id)


async def settle(seconds: float = 0.6) -> None:
    """Let the ops finish and the widgets lay out and paint."""
    from nexus_desktop.ui.ops import wait_for_running_ops

    await wait_for_running_ops()
    await asyncio.sleep(seconds)


async def send_and_wait(window: Any, text: str) -> None:
    """Type and press Send, then wait until every reply (a group's too) has finished."""
    view = window.chat_view
    before = view.generation_task
    view.composer.input.setPlainText(text)
    view.composer.send_button.click()
    while view.generation_task is before or not view.generation_task.done() or view.busy:
        await asyncio.sleep(0.1)
    await settle()


def save(widget: Any, name: str) -> None:
    path = DOCS / name
    widget.grab().save(str(path))
    print("wrote", path)


def save_with_dialog(window: Any, dialog: Any, name: str) -> None:
    """The window with the dialog over its middle, the window dimmed as desktops dim a dialog's
    parent (offscreen, each top-level window is painted apart)."""
    from PySide6.QtGui import QColor, QPainter

    from nexus_desktop.ui.theme import COLORS

    shot = window.grab()
    painter = QPainter(shot)
    painter.fillRect(shot.rect(), QColor(0, 0, 0, 110))
    top_left = shot.rect().center() - dialog.rect().center()
    painter.drawPixmap(top_left, dialog.grab())
    painter.setPen(QColor(COLORS.border_strong))
    painter.drawRect(dialog.rect().translated(top_left).adjusted(-1, -1, 0, 0))
    painter.end()
    path = DOCS / name
    shot.save(str(path))
    print("wrote", path)


async def run(window: Any, core: Any) -> None:
    from nexus_desktop.ui.theme import set_appearance

    await window.attach(core)
    await settle()
    vega = core.store.find_character("Vega")
    list_over = await seed_vega_chats(core, vega.id)
    markdown_chat = await seed_markdown_chat(core, vega.id)
    await window.ensure_model()

    await window.open_chat(vega.id, list_over)
    await settle()
    dialog = window.show_chat_list()
    await settle(1.0)
    save_with_dialog(window, dialog, "screenshot-chat-list.png")
    dialog.close()

    await window.open_chat(vega.id, markdown_chat)
    await settle()
    save(window, "screenshot-markdown.png")

    await window.open_chat(vega.id, list_over)
    await settle()
    await send_and_wait(window, LIVE_PROMPT)
    set_appearance("light", 100)  # what Settings → Appearance → Light does
    await settle()
    save(window, "screenshot-light-theme.png")
    set_appearance("dark", 100)
    window.resize(*SMALL)
    await settle()
    save(window, "screenshot-800x500.png")

    window.resize(*FULL)
    names = ("Vega", "Bramble", "Wren Calloway")
    members = [core.store.find_character(name).id for name in names]
    group = await core.groups.create("Late shift", members, "natural")
    await core.groups.set_muted(group.id, members[2], True)  # Wren listens tonight
    await window.group_chats.open_group(group.id)
    await settle()
    await send_and_wait(window, GROUP_PROMPT)
    save(window, "screenshot-group-chat.png")


def main() -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ["NEXUS_DATA_DIR"] = tempfile.mkdtemp(prefix="nexus-chat-shots-")
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
    # Short replies on one thread (the reference machine has two cores), a fixed seed so a rerun
    # writes the same replies, and the dark theme whatever the desktop says.
    update = {"threads": 1, "max_tokens": 80, "seed": 7, "theme": "dark"}
    core.settings = core.settings.model_copy(update=update)
    window = MainWindow(reserved_pages=APP_PAGES)  # the page rail, as in the running app
    window.resize(*FULL)
    window.show()
    with loop:
        loop.run_until_complete(core.personas.add("Alex", "A freighter captain.", make_default=True))
        loop.run_until_complete(run(window, core))
        loop.run_until_complete(core.aclose())
    return 0


if __name__ == "__main__":
    sys.exit(main())
