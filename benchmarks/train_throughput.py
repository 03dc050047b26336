"""Train now -> a verified GGUF adapter through NEXUS, against one plain script doing the same work.

    .venv/bin/python benchmarks/train_throughput.py [--steps 6] [--checkpoint-every 3] [--rounds 2]

NEXUS side: ``TrainingService.train_now`` (what the Training page's Train now calls: the router's
dataset written from the database and its seed file, hyperparameters chosen, the job queued in
SQLite), the JobManager starting ``training/train.py`` in its sandbox at the service's lowered
priority, the watcher storing every event, checkpoints every ``--checkpoint-every`` steps with an
eval loss, the GGUF export and the llama.cpp check.  The clock runs from the call until the job
reads DONE with a verified adapter.  The gate (benchmark and promotion) is left out: it is the
step after this one.

Plain side: benchmarks/plain_peft_loop.py in .venv-train on the same JOB.json (same data, steps,
hyperparameters, checkpoints, export and check), timed from its start to its exit.

Both sides run in this one process's run, alternating which goes first each round, after a
discarded warm-up job (it converts the GGUF base into the cache both sides load from).  One torch
thread on each side (OMP_NUM_THREADS=1): two threads on a shared 2-core machine swing wildly.
Prints each round and the ratio plain time / NEXUS time (target >= 0.95).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def bench_zoo(steps: int, every: int) -> Path:
    """The shipped router spec with a short run's step count and checkpoint interval."""
    folder = Path(tempfile.mkdtemp(prefix="nexus-bench-zoo-"))
    text = (ROOT / "resources/zoo/router.toml").read_text(encoding="utf-8")
    head, _, _ = text.partition("[hyperparameters]")
    (folder / "router.toml").write_text(
        f"{head}[hyperparameters]\nmax_steps = {steps}\ncheckpoint_every = {every}\n", encoding="utf-8"
    )
    return folder


async def nexus_run(service, max_steps: int | None = None) -> tuple[float, Path, dict]:  # type: ignore[no-untyped-def]
    """Seconds from Train now to the job DONE with a verified adapter; its folder; its events."""
    started = time.monotonic()
    view = await service.train_now("router", device="cpu", max_steps=max_steps)
    while not view.finished:
        await asyncio.sleep(0.05)
        view = await service.job(view.id)
    seconds = time.monotonic() - started
    from nexus_desktop import paths

    job_dir = next((paths.data_dir() / "training/jobs").glob(f"{view.id:05d}-*"))
    lines = [json.loads(line) for line in (job_dir / "events.jsonl").read_text(encoding="utf-8").splitlines()]
    events = {e["event"]: e for e in lines}
    if view.state != "DONE" or "verified" not in events or not view.gguf_adapter:
        raise SystemExit(f"The NEXUS job ended {view.state} without a verified adapter: {view.error}")
    events["checkpoints"] = sum(1 for e in lines if e["event"] == "checkpoint")
    events["step_seconds"] = sum(e["seconds"] for e in lines if e["event"] == "step")
    return seconds, job_dir, events


def plain_run(job_dir: Path, python: str) -> tuple[float, dict]:
    out = Path(tempfile.mkdtemp(prefix="plain-", dir=job_dir.parent))
    # Offline like the trainer's own environment (this machine has no network in any case).
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    command = [python, str(ROOT / "benchmarks/plain_peft_loop.py"), str(job_dir / "job.json"), str(out)]
    started = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"The plain script failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["checkpoints"] = len(list((out / "checkpoints").glob("step-*")))
    return seconds, result


async def main_async(args: argparse.Namespace) -> None:
    from nexus_desktop import paths
    from nexus_desktop.db.store import Store
    from nexus_desktop.training.jobs import default_trainer_command
    from nexus_desktop.training.service import TrainingService

    store = Store(paths.database_path())
    # judge=None: the gate runs after the adapter is verified, outside what is timed here.
    service = TrainingService(
        store.engine, zoo_folder=bench_zoo(args.steps, args.checkpoint_every), judge=None
    )
    python = default_trainer_command()[0]
    print(
        f"trainer {python}; {args.steps} steps, checkpoint + eval every {args.checkpoint_every}, "
        f"{args.rounds} rounds; OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}; "
        f"load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    warm, _, _ = await nexus_run(service, max_steps=1)
    print(f"warm-up job (1 step, converts the base once): {warm:.1f} s, not counted", flush=True)
    app_times: list[float] = []
    plain_times: list[float] = []
    job_dir: Path | None = None  # the plain script runs round 1's JOB.json (every round's is the same)
    for round_number in range(args.rounds):
        nexus_first = round_number % 2 == 0
        if not nexus_first:
            assert job_dir is not None
            seconds, plain = plain_run(job_dir, python)
            plain_times.append(seconds)
        app, this_job, events = await nexus_run(service)
        app_times.append(app)
        job_dir = job_dir or this_job
        if nexus_first:
            seconds, plain = plain_run(job_dir, python)
            plain_times.append(seconds)
        print(
            f"round {round_number + 1} ({'NEXUS' if nexus_first else 'plain'} first): "
            f"NEXUS {app:.1f} s ({events['checkpoints']} checkpoints, top-1 agreement "
            f"{events['verified']['top1_agreement']:.3f}, steps {events['step_seconds']:.1f} s), "
            f"plain {plain_times[-1]:.1f} s ({plain['checkpoints']} checkpoints, top-1 agreement "
            f"{plain['top1_agreement']:.3f}, steps {plain['step_seconds']:.1f} s); "
            f"ratio {plain_times[-1] / app:.3f}; load average {os.getloadavg()[0]:.1f}",
            flush=True,
        )
    await service.aclose()
    store.close()
    app_median, plain_median = statistics.median(app_times), statistics.median(plain_times)
    print(f"NEXUS Train now -> verified GGUF: median {app_median:.1f} s; plain script: {plain_median:.1f} s")
    print(f"ratio plain / NEXUS = {plain_median / app_median:.3f} (target >= 0.95)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--checkpoint-every", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("NEXUS_DATA_DIR", tempfile.mkdtemp(prefix="nexus-bench-train-"))
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
