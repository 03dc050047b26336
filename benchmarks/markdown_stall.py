"""The longest gap of a 5 ms QTimer heartbeat while hostile Markdown is shown in the real window.

Each message is shown twice in the real chat view: streamed in as a reply (through the view's own
33 ms painting) and then opened with its chat.  The messages: a table of 10,000 rows, a list
nested 1,000 levels deep, a 1 MB code block, a 2 MB paragraph and a long ordinary reply.
Target: < 50 ms for each.  Also prints the idle gap, measured the same way, as a baseline for
this machine's noise.

    .venv/bin/python benchmarks/markdown_stall.py
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from _window import run_with_window
from ui_stall import Heartbeat, describe

TARGET_MS = 50


def hostile_messages() -> list[tuple[str, str]]:
    table = "| n | name | status |\n|---|---|---|\n" + "\n".join(
        f"| {i} | crew member {i} | *on duty* |" for i in range(10_000)
    )
    nested = "\n".join("  " * i + f"- level {i}" for i in range(1_000))
    code = (
        "```python\n"
        + "\n".join(f"value_{i} = compute({i}) * 2  # step {i}" for i in range(26_000))
        + "\n```"
    )
    paragraph = " ".join(f'word{i} *act* "said"' for i in range(100_000))
    ordinary = "\n\n".join(
        f'*nods* "Point {i}, Captain." The **reactor** reads `{i}%`.\n\n- fore\n- aft\n\n> log {i}'
        for i in range(120)
    )
    return [
        ("table, 10,000 rows", table),
        ("list, 1,000 levels", nested),
        (f"code block, {len(code) / 1e6:.1f} MB", code),
        (f"paragraph, {len(paragraph) / 1e6:.1f} MB", paragraph),
        (f"ordinary reply, {len(ordinary) / 1e3:.0f} KB", ordinary),
    ]


async def settled(chat: Any) -> None:
    """Until every message's text is rendered and painted."""
    while any(getattr(getattr(w, "text_label", None), "rendering", False) for w in chat.widgets):
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.3)


async def streamed(chat: Any, core: Any, text: str) -> None:
    from nexus_desktop.chat.events import ReplySaved, ReplyToken
    from nexus_desktop.llm.contract import ChatOutput, ReplyStats

    step = max(200, len(text) // 100)

    async def reply() -> AsyncIterator[object]:
        for start in range(0, len(text), step):
            yield ReplyToken(text[start : start + step])
            await asyncio.sleep(0.01)
        saved = await core.db.call(core.store.add_message, chat.chat_id, "assistant", text)
        yield ReplySaved(saved, ChatOutput(text, ReplyStats(100, 100, 1.0, 0.1, 4096, "stop")))

    chat._start(chat._consume(reply(), sent_text=None, target=None))
    while chat.busy:
        await asyncio.sleep(0.01)
    await settled(chat)


def main() -> None:
    async def body(window: Any, core: Any) -> None:
        chat = window.chat_view
        window.resize(1280, 800)
        await asyncio.sleep(1)
        beat = Heartbeat()
        beat.start()
        await asyncio.sleep(2)
        print(f"idle: {describe(beat.stop())}")
        worst = 0.0
        for name, text in hostile_messages():
            await chat.open_character(chat.character, new_chat=True)
            await settled(chat)
            beat.start()
            await streamed(chat, core, text)
            streaming = beat.stop()
            beat.start()
            await chat.open_character(chat.character)
            await settled(chat)
            opening = beat.stop()
            worst = max(worst, *streaming, *opening)
            print(f"{name}:")
            print(f"  streamed: {describe(streaming)}")
            print(f"  opened:   {describe(opening)}")
        verdict = "met" if worst * 1000 < TARGET_MS else "MISSED"
        print(
            f"longest UI stall over all messages (target < {TARGET_MS} ms): {worst * 1000:.1f} ms, {verdict}"
        )

    run_with_window(body)


if __name__ == "__main__":
    main()
