"""The longest gap of a 5 ms QTimer heartbeat while a reply streams into the real window.

Target: < 50 ms.  Also prints the idle gap before the reply, measured the same way, as a
baseline for this machine's noise.

    .venv/bin/python benchmarks/ui_stall.py [--tokens 200]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from _window import run_with_window, send_and_wait


class Heartbeat:
    def __init__(self) -> None:
        from PySide6.QtCore import QTimer

        self.gaps: list[float] = []
        self._last = time.perf_counter()
        self.timer = QTimer()
        self.timer.setInterval(5)
        self.timer.timeout.connect(self._tick)

    def _tick(self) -> None:
        now = time.perf_counter()
        self.gaps.append(now - self._last)
        self._last = now

    def start(self) -> None:
        self.gaps.clear()
        self._last = time.perf_counter()
        self.timer.start()

    def stop(self) -> list[float]:
        self.timer.stop()
        return list(self.gaps)


def describe(gaps: list[float]) -> str:
    ordered = sorted(gaps)
    p99 = ordered[int(len(ordered) * 0.99) - 1] if ordered else 0.0
    return f"{len(gaps)} beats, p99 {p99 * 1000:.1f} ms, max {max(gaps) * 1000:.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", type=int, default=200)
    args = parser.parse_args()

    async def body(window: Any, core: Any) -> None:
        beat = Heartbeat()
        beat.start()
        await asyncio.sleep(2)
        idle = beat.stop()
        beat.start()
        await send_and_wait(window, "Describe your ship from bow to stern, every deck.")
        streaming = beat.stop()
        tokens = (window.chat_view.widgets[-1].message.stats or {}).get("completion_tokens")
        print(f"idle:      {describe(idle)}")
        print(f"streaming: {describe(streaming)} ({tokens} tokens)")
        print(f"longest UI stall while streaming (target < 50 ms): {max(streaming) * 1000:.1f} ms")

    run_with_window(body, threads=1, max_tokens=args.tokens, temperature=0.7)


if __name__ == "__main__":
    main()
