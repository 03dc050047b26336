"""Run a real, short router fine-tune on a throw-away data folder and photograph the Training page.

    QT_QPA_PLATFORM=offscreen .venv/bin/python docs/make_training_screenshots.py

Needs .venv-train (installers/setup-trainer.sh) and the bundled SmolLM2 model.  Writes
docs/screenshot-training.png (mid-job, live loss curve) and docs/screenshot-gate.png (the gate's
decision on that job; the benchmark uses a 48-item slice of the held-out suite to stay quick).
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
STEPS = 12
SNAPSHOT_AT = 7
"""Photograph the live curve once this many steps are plotted."""


def make_zoo(folder: Path) -> Path:
    """The shipped zoo, with the router trimmed to a short run and a small benchmark slice."""
    zoo = folder / "zoo"
    zoo.mkdir(parents=True)
    suite = (ROOT / "resources/benchmarks/router_heldout.jsonl").read_text(encoding="utf-8").splitlines()
    small = folder / "router_heldout_small.jsonl"
    small.write_text("\n".join(suite[::4][:48]) + "\n", encoding="utf-8")
    for spec in sorted((ROOT / "resources/zoo").glob("*.toml")):
        text = spec.read_text(encoding="utf-8")
        if spec.stem == "router":
            text = text.replace('benchmark = "benchmarks/router_heldout.jsonl"', f'benchmark = "{small}"')
            text = text.replace("max_steps = 100", f"max_steps = {STEPS}\ncheckpoint_every = 6")
        (zoo / spec.name).write_text(text, encoding="utf-8")
    return zoo


def collect_examples(engine: object) -> None:
    """Some collected data, so the zoo's bars show real counts against their thresholds."""
    from sqlmodel import Session

    from nexus_desktop.training.tables import TrainingExample

    rows = [
        ("router", "classification", "route_confirmed", {"text": f"roll {n}d6", "label": "roll_dice"})
        for n in range(37)
    ]
    rows += [("persona:Vega", "sft", "thumbs_up", {"messages": []})] * 132
    rows += [("reply-quality", "classification", "thumbs_up", {"text": "x", "label": "good"})] * 18
    with Session(engine) as s:  # type: ignore[call-overload]
        for n, (dataset, kind, signal, payload) in enumerate(rows):
            s.add(
                TrainingExample(
                    dataset=dataset, kind=kind, signal=signal, content_hash=f"h{n}", payload=payload
                )
            )
        s.commit()


async def wait_until(predicate, timeout: float = 1800.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the screenshot run took too long")
        await asyncio.sleep(0.2)


async def run(page, service) -> None:  # type: ignore[no-untyped-def]
    page.bind(service)
    await wait_until(lambda: page.zoo_list.count() > 0)
    ids = [row.model_id for row in page.zoo_rows]
    page.zoo_list.setCurrentRow(ids.index("router"))
    page.train_button.click()
    await wait_until(lambda: len(page.loss_plot.steps) >= SNAPSHOT_AT)
    await asyncio.sleep(0.6)
    page.grab().save(str(DOCS / "screenshot-training.png"))
    print("saved screenshot-training.png", flush=True)
    await wait_until(lambda: page.gate_view.view is not None)
    page.tabs.setCurrentIndex(1)
    await asyncio.sleep(0.6)
    page.grab().save(str(DOCS / "screenshot-gate.png"))
    print(
        "saved screenshot-gate.png:", page.gate_view.verdict.text(), page.gate_view.reason.text(), flush=True
    )
    page.timer.stop()


def main() -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    folder = Path(tempfile.mkdtemp(prefix="nexus-train-shots-"))
    os.environ["NEXUS_DATA_DIR"] = str(folder / "data")
    import qasync
    from PySide6.QtWidgets import QApplication

    from nexus_desktop import paths
    from nexus_desktop.db.store import Store
    from nexus_desktop.training import pipeline
    from nexus_desktop.training.service import TrainingService
    from nexus_desktop.ui.theme import apply_theme
    from nexus_desktop.ui.training_page import TrainingPage

    app = QApplication(sys.argv)
    apply_theme(app)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    store = Store(paths.database_path())
    collect_examples(store.engine)
    service = TrainingService(
        store.engine,
        zoo_folder=make_zoo(folder),
        judge=partial(pipeline.judge, repeats=1, consistency_items=8),
    )
    page = TrainingPage()
    page.resize(1280, 800)
    page.show()
    with loop:
        loop.run_until_complete(run(page, service))
        loop.run_until_complete(service.aclose())
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
