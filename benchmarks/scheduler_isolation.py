"""Does one bad task delay the others?  100 tasks due every second, each in a thread of its own
(``runners.in_thread``): one hangs forever (abandoned at its 2 s timeout, again and again), one
raises every time, 98 do a little work.  For the 98, how late each run started against its due
time, two ways:

- dispatch: the scheduler's ``started_at`` against ``due_at`` (the run's row);
- in its thread: when the task's own code began, against ``due_at``.

Target: none later than one tick (``tick_seconds``, 1 s) plus 50 ms.  The hang, three ways:

- ``sleep``: blocked forever in a thread (``in_thread``): the issue's case;
- ``process``: a pure-Python endless loop in a child process (``in_process``), killed at its
  timeout: where CPU-bound work belongs;
- ``spin``: the same endless loop in a thread, for contrast: Python cannot stop a thread, and
  each abandoned spinning thread keeps taking its share of the GIL from every other thread.

    .venv/bin/python benchmarks/scheduler_isolation.py [--seconds 10] [--hang sleep|process|spin|all]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TASKS = 100
TICK = 1.0
TARGET = TICK + 0.050
HANGS = {
    "sleep": "a thread blocked forever",
    "process": "an endless Python loop in a child process, killed at the timeout",
    "spin": "an endless Python loop in a thread, abandoned at the timeout",
}


def percentile(ordered: list[float], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


async def scenario(root: Path, hang_kind: str, seconds: float) -> None:
    from nexus_desktop.control.runners import Runner, abandoned_threads, in_process, in_thread
    from nexus_desktop.control.scheduler import Scheduler, Task, recent_runs, task_grid
    from nexus_desktop.db.engine import open_engine

    engine = open_engine(root / f"bench-{hang_kind}.db")
    stop = threading.Event()
    began: dict[str, list[datetime]] = {}
    lock = threading.Lock()

    def worker(name: str) -> object:
        def work() -> str:
            moment = datetime.now(UTC)
            total = sum(range(2000))  # a little work, as a real check would do
            with lock:
                began.setdefault(name, []).append(moment)
            return f"{name} {total}"

        return work

    def hang() -> None:
        if hang_kind == "spin":
            while not stop.is_set():
                pass
        else:
            stop.wait()

    def fail() -> None:
        raise RuntimeError("this task raises every time")

    scheduler = Scheduler(engine, tick_seconds=TICK)
    hanging: Runner = in_thread(hang, name="hangs")
    if hang_kind == "process":
        hanging = in_process([sys.executable, "-c", "while True: pass"])
    scheduler.add(Task("hangs", "every 1s", hanging, timeout_seconds=2.0))
    scheduler.add(Task("raises", "every 1s", in_thread(fail, name="raises")))
    names = [f"task-{index:02d}" for index in range(TASKS - 2)]
    for name in names:
        scheduler.add(Task(name, "every 1s", in_thread(worker(name), name=name)))
    start = datetime.now(UTC)
    await scheduler.start()
    await asyncio.sleep(seconds)
    await scheduler.aclose()
    left_behind = abandoned_threads()
    stop.set()

    rows = recent_runs(engine, start - timedelta(seconds=1), limit=100_000)
    grid = {row.name: row for row in task_grid(engine)}
    engine.dispose()
    ours = [r for r in rows if r.task in set(names) and r.due_at is not None]
    ran = [r for r in ours if r.outcome != "skipped"]
    dispatch = sorted((r.started_at - r.due_at).total_seconds() for r in ran)  # type: ignore[operator]
    # Match each run to the moment its code began: the first "began" of that task after dispatch.
    in_thread_late: list[float] = []
    for run in ran:
        after = [m for m in began.get(run.task, []) if m >= run.started_at]
        if after and run.due_at is not None:
            in_thread_late.append((min(after) - run.due_at).total_seconds())
    in_thread_late.sort()

    print(f"\nHang: {hang_kind} ({HANGS[hang_kind]})")
    print(
        f"  {len(ran)} runs of the 98 others in {seconds:g} s; "
        f"outcomes: {sorted({r.outcome for r in ours})}; skipped {len(ours) - len(ran)}"
    )
    print(
        f"  hanging task: {grid['hangs'].timeout_count} timeouts; raising task: "
        f"{grid['raises'].error_count} errors; threads left behind at the end: {left_behind}"
    )
    for label, values in (("dispatch", dispatch), ("in its thread", in_thread_late)):
        if not values:
            print(f"  {label}: no samples")
            continue
        worst = values[-1]
        verdict = "meets" if worst <= TARGET else "MISSES"
        print(
            f"  {label:>14}: late p50 {statistics.median(values) * 1000:7.2f} ms, "
            f"p95 {percentile(values, 0.95) * 1000:7.2f} ms, max {worst * 1000:7.2f} ms "
            f"-> {verdict} the target (<= {TARGET * 1000:.0f} ms)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--hang", choices=[*HANGS, "all"], default="all")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nexus-bench-") as folder:
        os.environ.setdefault("NEXUS_DATA_DIR", folder)
        kinds = list(HANGS) if options.hang == "all" else [options.hang]
        print(f"{TASKS} tasks due every second (tick {TICK:g} s), {options.seconds:g} s each")
        for kind in kinds:
            asyncio.run(scenario(Path(folder), kind, options.seconds))


if __name__ == "__main__":
    main()
