"""Run the real loop once in a throw-away data folder, for the dashboard screenshots.

    .venv/bin/python docs/run_loop_for_screenshots.py DATA_DIR
    QT_QPA_PLATFORM=offscreen .venv/bin/python docs/make_dashboard_screenshots.py --db DATA_DIR/nexus.db

Everything is real: the app core with the bundled modules in their sandboxes, the SmolLM2 model
through llama.cpp, the scheduler, the CPU trainer subprocess (.venv-train), the gate and the daily
report.  Only the person is simulated: a few chats with Vega under a policy, ratings, and 60
judgements of the intent router's picks (written from templates of our own, not from the router's
held-out suite), which put the router past its training threshold.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

CHATS = [
    "Hi Vega, how was the flight?",
    "/roll 2d6",
    "What do you see out of the window?",
    "Tell me about your ship.",
    "/roll 1d20",
    "Any plans for tonight?",
]
ROUTE_TEMPLATES = {
    "roll_dice": [
        "throw {n} dice for the ambush",
        "give me a d{n} result please",
        "random number from {n} sides",
    ],
    "remember_note": ["keep in mind that locker {n} is mine", "save a memo: call the dock at {n}"],
    "recall_note": ["what was the locker number I told you", "read back memo {n}"],
    "system_status": ["is my graphics card busy right now {n}", "how loaded is the processor {n}"],
    "chat": ["that sunset was lovely {n}", "I had a long day at work {n}"],
}


async def main(data_dir: Path) -> None:
    from nexus_desktop.control.policy import Policy
    from nexus_desktop.core import AppCore
    from nexus_desktop.training import examples as signals

    core = AppCore(data_dir / "nexus.db")
    core.settings = core.settings.model_copy(update={"max_tokens": 40, "temperature": 0.7})
    try:
        await core.start_modules(watch=False)
        await core.start_scheduler()
        vega = core.store.find_character("Vega")
        assert vega is not None and vega.id is not None
        core.governor.set_policy(
            vega.id,
            Policy(
                daily_token_budget=6000,
                max_reply_tokens=40,
                daily_tool_calls=10,
                tool_cooldowns={"dice.roll": 300},
            ),
        )
        chat, _ = await core.chat.new_chat(vega.id)
        assert chat.id is not None
        for number, text in enumerate(CHATS):
            events = [event async for event in core.chat.send(chat.id, text)]
            print(text, "->", type(events[-1]).__name__, flush=True)
            last = events[-1]
            message = getattr(last, "message", None)
            if message is not None and message.role == "assistant":
                await core.chat.rate_message(message.id, thumbs_up=number % 3 != 2)
        count = 0
        for label, templates in ROUTE_TEMPLATES.items():
            for template in templates:
                for n in range(6 if label != "chat" else 8):
                    core.collector.collect(signals.RouteDecided(template.format(n=n + 3), label))
                    count += 1
        core.collector.flush()
        print(f"{count} router judgements collected", flush=True)
        for task in ("training-check", "daily-cycle"):
            run = await core.scheduler.run_now(task)
            print(task, run.outcome, run.seconds, run.detail, flush=True)
    finally:
        await core.aclose()


if __name__ == "__main__":
    folder = Path(sys.argv[1]).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("NEXUS_DATA_DIR", str(folder))
    asyncio.run(main(folder))
