"""A chat of 10,000 messages in the real window: how long it takes to open, and the longest
stall while scrolling from the newest message to the first.

The chat (varied Markdown: roleplay prose, lists, code blocks, tables, quotes) is written to a
real SQLite database, then opened in the real main window.  Printed:

- open: from the open request until the chat is painted (target < 300 ms), median of 5 opens;
- scroll: the longest gap of a 5 ms QTimer heartbeat while the view scrolls up a wheel step
  every 16 ms until the first message is on screen, earlier messages loading as it goes
  (target < 50 ms).  Also the idle gap, measured the same way, as a baseline for the machine.

    .venv/bin/python benchmarks/chat_history.py [--messages 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from _window import run_with_window
from ui_stall import Heartbeat, describe

OPEN_TARGET_MS = 300
STALL_TARGET_MS = 50
WHEEL_STEP = 120  # pixels, one notch of a mouse wheel
SCROLL_LIMIT_S = 600

MESSAGES = [
    '*leans on the console* "Course laid in, Captain. {i} light-years to go." She smiles.',
    "Here is the plan for day {i}:\n\n1. Refuel at **Kepler Station**\n2. Check the shields\n   - fore\n"
    "   - aft\n3. Rest",
    "```python\ndef jump(distance: float) -> float:\n    return distance * {i}  # warp factor\n```\n"
    "That should do it.",
    "| deck | crew | status |\n|---|--:|---|\n| bridge | {i} | green |\n| engines | 14 | *amber* |",
    '> Log {i}: the nebula is closer than charted.\n\n"We should turn back," you say.',
    "## Report {i}\n\nAll systems nominal. See [the manual](https://example.com/manual) for `diagnostics`.",
]


def fill_chat(core: Any, character_id: int, count: int) -> int:
    """A chat of ``count`` messages (the greeting and ``count - 1`` more), in one transaction."""
    from sqlmodel import Session

    from nexus_desktop.db.tables import Message

    chat = core.store.create_chat(character_id, ["Hello, traveller."])
    with Session(core.store.engine) as session:
        for position in range(1, count):
            text = MESSAGES[position % len(MESSAGES)].format(i=position)
            role = "user" if position % 2 else "assistant"
            session.add(Message(chat_id=chat.id, position=position, role=role, swipes=[text]))
        session.commit()
    return int(chat.id)


class Painted:
    """When the chat's message area is next painted."""

    def __init__(self, widget: Any) -> None:
        from PySide6.QtCore import QEvent, QObject

        self.at: float | None = None
        paint = QEvent.Type.Paint

        class Filter(QObject):
            def eventFilter(inner, watched: Any, event: Any) -> bool:
                if event.type() == paint and self.at is None:
                    self.at = time.perf_counter()
                return False

        self._filter = Filter()
        self._widget = widget
        widget.installEventFilter(self._filter)

    def reset(self) -> None:
        self.at = None


async def open_time(window: Any, character: Any, other: Any) -> float:
    chat = window.chat_view
    painted = Painted(chat.scroll_area.viewport())
    await chat.open_character(other)  # another chat is open before each measurement
    await asyncio.sleep(0.3)
    painted.reset()
    started = time.perf_counter()
    await chat.open_character(character)
    while painted.at is None:
        await asyncio.sleep(0.001)
    return painted.at - started


async def scroll_to_top(window: Any) -> tuple[list[float], int, float]:
    chat = window.chat_view
    bar = chat.scroll_area.verticalScrollBar()
    beat = Heartbeat()
    beat.start()
    started = time.perf_counter()
    while time.perf_counter() - started < SCROLL_LIMIT_S:
        bar.setValue(bar.value() - WHEEL_STEP)
        await asyncio.sleep(0.016)
        first = chat.widgets[0].message.position if chat.widgets else 0
        if bar.value() == 0 and first == 0:
            break
    return beat.stop(), chat.widgets[0].message.position, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=10_000)
    args = parser.parse_args()

    async def body(window: Any, core: Any) -> None:
        window.resize(1280, 800)
        characters = await core.db.call(core.store.list_characters)
        character, other = characters[1], characters[0]
        await core.db.call(fill_chat, core, character.id, args.messages)
        beat = Heartbeat()
        beat.start()
        await asyncio.sleep(2)
        print(f"idle: {describe(beat.stop())}")

        opens = [await open_time(window, character, other) for _ in range(5)]
        opened = statistics.median(opens) * 1000
        shown = len(window.chat_view.widgets)
        print(
            f"open {args.messages:,} messages: {', '.join(f'{t * 1000:.0f}' for t in opens)} ms "
            f"({shown} shown at first)"
        )
        await asyncio.sleep(1)
        gaps, first, seconds = await scroll_to_top(window)
        print(f"scroll to the first message: {describe(gaps)}, {seconds:.1f} s, reached position {first}")
        stall = max(gaps) * 1000
        print(
            f"open time (target < {OPEN_TARGET_MS} ms): {opened:.0f} ms, "
            f"{'met' if opened < OPEN_TARGET_MS else 'MISSED'}"
        )
        print(
            f"longest stall while scrolling (target < {STALL_TARGET_MS} ms): {stall:.1f} ms, "
            f"{'met' if stall < STALL_TARGET_MS and first == 0 else 'MISSED'}"
        )

    run_with_window(body)


if __name__ == "__main__":
    main()
