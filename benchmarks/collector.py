"""Collector benchmark: what one ``collect`` call costs the chat, and how fast examples reach SQLite.

Targets: caller-side p99 of one call < 50 µs, sustained >= 20k events/s into SQLite, and no loss
over 100k events with a clean shutdown.  Run: ``.venv/bin/python benchmarks/collector.py``.
On a shared machine the wall-clock rate depends on the other load; ``cpu_us_per_event`` does not.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from nexus_desktop.db.store import Store
from nexus_desktop.training.collector import Collector
from nexus_desktop.training.examples import ReplyRated, RouteDecided, Signal

LABELS = ("chat", "roll_dice", "remember_note", "recall_note", "system_status", "build_module")
CONTEXT = (("system", "You are Vega, the ship's co-pilot."), ("user", "Any tips for this boss fight?"))


def signals(count: int) -> list[Signal]:
    made: list[Signal] = []
    for n in range(count):
        if n % 4 == 0:
            reply = f"Dodge right on wind-up {n}, then heal at thirty percent, Captain."
            made.append(ReplyRated("Vega", CONTEXT, reply, thumbs_up=True))
        else:
            made.append(RouteDecided(f"message number {n} about the evening plan", LABELS[n % len(LABELS)]))
    return made


def expected_rows(made: list[Signal]) -> int:
    # A thumbs-up stores two examples: the SFT chat and the reply-quality label.
    return sum(2 if isinstance(s, ReplyRated) else 1 for s in made)


def run(count: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        database = Path(folder) / "nexus.db"
        Store(database).close()
        made = signals(count)
        collector = Collector(database, max_pending=count + 1)
        timings: list[int] = []
        clock = time.perf_counter_ns
        started, cpu_started = time.perf_counter(), time.process_time()
        for signal in made:
            before = clock()
            collector.collect(signal)
            timings.append(clock() - before)
        queued = time.perf_counter()
        collector.flush(timeout=600)
        stored_at, cpu_stored = time.perf_counter(), time.process_time()
        collector.close()
        stats = collector.stats()
        rows = sqlite3.connect(database).execute("SELECT COUNT(*) FROM training_example").fetchone()[0]
    timings.sort()
    return {
        "events": count,
        "collect_p50_us": timings[len(timings) // 2] / 1000,
        "collect_p99_us": timings[int(len(timings) * 0.99)] / 1000,
        "collect_max_us": timings[-1] / 1000,
        "collect_mean_us": statistics.fmean(timings) / 1000,
        "caller_seconds": queued - started,
        "events_per_second_into_sqlite": count / (stored_at - started),
        # CPU the whole process spent per event (caller and writer): what a free core could sustain.
        "cpu_us_per_event": (cpu_stored - cpu_started) / count * 1e6,
        "rows_expected": expected_rows(made),
        "rows_stored": rows,
        "lost": expected_rows(made) - rows,
        "dropped": stats.dropped,
        "errors": stats.errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    for _ in range(args.runs):
        print(
            json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in run(args.events).items()})
        )


if __name__ == "__main__":
    main()
