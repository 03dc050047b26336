"""The flywheel: does correcting the router in a new style teach it that style, without forgetting?

    .venv/bin/python benchmarks/flywheel.py            # ~40 min on 2 shared CPU cores

Everything goes through the product, in a private data folder:
1. ``nexus train run router``: the seed set trains a router, the gate promotes it.
2. Score it on a style set it never saw (terse slang with typos, ``flywheel_style.py``: 120
   messages) and on the general held-out suite; a bag-of-words baseline trained on the same data
   is scored beside it.
3. Feed 60 corrections in that style through ``nexus route --correct LABEL "message"``.
4. ``nexus scheduler run training-check``: the loop's own task trains, gates and promotes.
5. Score the new router and the new baseline again.

Targets: the style set rises by >= 15 points, the general suite drops by <= 2 points, and the
router beats the baseline on both.  Prints one JSON object and a verdict line per target.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

import flywheel_style  # noqa: E402


def nexus(*args: str) -> str:
    """One ``nexus`` command in a child process (the data folder comes from the environment)."""
    done = subprocess.run(
        [sys.executable, "-m", "nexus_desktop.cli", *args], capture_output=True, text=True, cwd=ROOT
    )
    if done.returncode != 0:
        raise SystemExit(f"nexus {' '.join(args[:3])} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return done.stdout


def latest_router(engine: Any) -> tuple[Path | None, Path]:
    """(the active router adapter, the training file of the job that made it)."""
    from sqlmodel import Session

    from nexus_desktop.training.registry import AdapterRegistry
    from nexus_desktop.training.tables import TrainingJob

    active = AdapterRegistry(engine).active("router")
    if active is None or active.job_id is None:
        raise SystemExit("No router was promoted; see the gate's decision with: nexus gate history")
    with Session(engine) as s:
        job = s.get(TrainingJob, active.job_id)
        assert job is not None and job.job_dir
    job_file = json.loads((Path(job.job_dir) / "job.json").read_text(encoding="utf-8"))
    return active.adapter_path, Path(job_file["dataset"])


def score(engine: Any, style_suite: Path) -> dict[str, float]:
    """The active router's and the baseline's accuracy on the style set and the general suite."""
    from nexus_desktop.training.benchsuite import load_suite
    from nexus_desktop.training.lexical import LexicalClassifier, rows_from_jsonl
    from nexus_desktop.training.pipeline import benchmark
    from nexus_desktop.training.zoo import get_spec

    spec = get_spec("router")
    assert spec.benchmark_path is not None
    adapter, dataset = latest_router(engine)
    baseline = LexicalClassifier.fit(rows_from_jsonl(dataset), spec.labels)
    figures: dict[str, float] = {}
    for name, suite in (("style", style_suite), ("general", spec.benchmark_path)):
        items = load_suite(suite, spec.system_prompt)
        rows = [(item.messages[-1].content, item.expected) for item in items]
        figures[f"{name}_baseline"] = baseline.accuracy(rows)
        swapped = dataclasses.replace(spec, benchmark=str(suite))
        figures[f"{name}_router"] = asyncio.run(benchmark(swapped, adapter, repeats=0))["accuracy"]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, help="keep the run's data here (default: a temp folder)")
    args = parser.parse_args()
    folder = args.data_dir or Path(tempfile.mkdtemp(prefix="nexus-flywheel-"))
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["NEXUS_DATA_DIR"] = str(folder)
    from nexus_desktop.db.store import Store
    from nexus_desktop.paths import database_path
    from nexus_desktop.training.registry import AdapterRegistry

    stream, heldout = flywheel_style.build()
    style_suite = folder / "style_heldout.jsonl"
    style_suite.write_text("".join(json.dumps({"text": t, "label": label}) + "\n" for t, label in heldout))

    store = Store(database_path())
    first_train: float | None = None
    if AdapterRegistry(store.engine).active("router") is None:  # a kept --data-dir resumes here
        started = time.monotonic()
        nexus("train", "run", "router", "--device", "cpu")
        first_train = time.monotonic() - started
    before = score(store.engine, style_suite)

    for text, label in stream:
        nexus("route", "--correct", label, text)
    started = time.monotonic()
    loop_output = nexus("scheduler", "run", "training-check")
    loop_seconds = time.monotonic() - started
    after = score(store.engine, style_suite)

    result = {
        "before": before,
        "after": after,
        "first_training_s": round(first_train) if first_train is not None else "reused",
        "loop_s": round(loop_seconds),
        "corrections": len(stream),
        "style_items": len(heldout),
        "loop": loop_output.strip().splitlines()[-3:],
        "data_dir": str(folder),
    }
    print(json.dumps(result, indent=2))
    checks = {
        "style rises >= 15 points": after["style_router"] - before["style_router"] >= 0.15,
        "general drops <= 2 points": before["general_router"] - after["general_router"] <= 0.02,
        "router beats the baseline on the style set": after["style_router"] > after["style_baseline"],
        "router beats the baseline on the general suite": after["general_router"] > after["general_baseline"],
    }
    for name, met in checks.items():
        print(f"{'MET   ' if met else 'MISSED'} {name}")


if __name__ == "__main__":
    main()
