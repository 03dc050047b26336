"""The longest gap of a 5 ms QTimer heartbeat on the Qt thread while a real, short training job runs
and the Training page streams its progress (500 ms polls, loss curve, log tail, job table).

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/ui_stall_training.py [--steps 12]

Target: < 50 ms.  Also prints the idle gaps (page bound, nothing training) as this machine's noise
baseline.  Needs .venv-train and the bundled SmolLM2 model; the gate is off (training only).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ui_stall import Heartbeat, describe

from nexus_desktop.ui.lifecycle import freeze_startup_heap


async def body(page, service, steps: int) -> None:  # type: ignore[no-untyped-def]
    page.bind(service)
    while page.zoo_list.count() == 0:
        await asyncio.sleep(0.05)
    page.zoo_list.setCurrentRow([row.model_id for row in page.zoo_rows].index("router"))
    freeze_startup_heap()  # as the app does once it has started
    beat = Heartbeat()
    beat.start()
    await asyncio.sleep(3)
    idle = beat.stop()
    job = await service.train_now("router", max_steps=steps, device="cpu")
    while (await service.job(job.id)).state == "PENDING":
        await asyncio.sleep(0.05)
    beat.start()
    started = time.monotonic()
    while not (await service.job(job.id)).finished:
        await asyncio.sleep(0.2)
    busy = beat.stop()
    offsets, elapsed = [], 0.0
    for gap in busy:
        elapsed += gap
        if gap > 0.05:
            offsets.append(f"{gap * 1000:.0f} ms at {elapsed:.0f} s")
    final = await service.job(job.id)
    points = len(page.loss_plot.steps)
    print(
        f"job {final.state.lower()} in {time.monotonic() - started:.0f} s, {points} loss points plotted live"
    )
    print(f"idle:     {describe(idle)}")
    print(f"training: {describe(busy)}")
    shown = ", ".join(offsets[:10]) or "none"
    print(f"gaps over 50 ms: {len(offsets)} ({shown}); load average {os.getloadavg()[0]:.1f}")
    print(f"longest heartbeat gap while training = {max(busy) * 1000:.1f} ms (target < 50 ms)")
    page.timer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=12)
    args = parser.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("NEXUS_DATA_DIR", tempfile.mkdtemp(prefix="nexus-bench-stall-"))
    import qasync
    from PySide6.QtWidgets import QApplication

    from nexus_desktop import paths
    from nexus_desktop.db.store import Store
    from nexus_desktop.training.service import TrainingService
    from nexus_desktop.ui.theme import apply_theme
    from nexus_desktop.ui.training_page import TrainingPage

    app = QApplication(sys.argv)
    apply_theme(app)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    store = Store(paths.database_path())
    service = TrainingService(store.engine, judge=None)
    page = TrainingPage()
    page.resize(1280, 800)
    page.show()
    with loop:
        loop.run_until_complete(body(page, service, args.steps))
        loop.run_until_complete(service.aclose())
    store.close()


if __name__ == "__main__":
    main()
