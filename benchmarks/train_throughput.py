"""Training tokens/s through NEXUS (JobManager + trainer subprocess) against a plain PEFT loop.

    .venv/bin/python benchmarks/train_throughput.py [--steps 12] [--rounds 2]

Both sides train the router's LoRA on the same JOB.json (same SmolLM2-135M base, data, seed and
hyperparameters; export and verification off) in .venv-train, alternating, in this one run.
Tokens/s counts steps 2..N on each side: the trainer's own per-step timings as NEXUS stored them,
and the same span timed inside benchmarks/plain_peft_loop.py.  Target: ratio >= 0.95.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def nexus_run(manager, plan, steps: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """(tokens/s over steps 2..N as the trainer reported them, wall seconds submit -> done)."""
    hp = {**plan.hyperparameters, "max_steps": steps, "checkpoint_every": steps * 10}
    started = time.monotonic()
    job = manager.submit(
        "router", plan.base_model, plan.dataset, hp, device="cpu", export_gguf=False, verify=False
    )
    job = manager.wait(job.id, timeout=3600)
    wall = time.monotonic() - started
    if job.state != "DONE":
        raise SystemExit(f"The NEXUS job ended {job.state}: {job.error}")
    events = [json.loads(line) for line in (Path(job.job_dir) / "events.jsonl").read_text().splitlines()]
    stepped = [e for e in events if e.get("event") == "step" and e["step"] > 1]
    return sum(e["tokens"] for e in stepped) / sum(e["seconds"] for e in stepped), wall


def plain_run(job_json: Path, python: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [python, str(ROOT / "benchmarks/plain_peft_loop.py"), str(job_json)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(json.loads(out.stdout.strip().splitlines()[-1])["tokens_per_second"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("NEXUS_DATA_DIR", tempfile.mkdtemp(prefix="nexus-bench-train-"))
    # One torch thread on each side: on a shared machine two threads swing wildly (platform facts).
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    from nexus_desktop import paths
    from nexus_desktop.db.store import Store
    from nexus_desktop.training.jobs import JobManager, default_trainer_command
    from nexus_desktop.training.pipeline import prepare
    from nexus_desktop.training.zoo import get_spec

    store = Store(paths.database_path())
    command = default_trainer_command()
    plan = prepare(store.engine, get_spec("router"), paths.data_dir() / "datasets", device="cpu")
    manager = JobManager(store.engine, trainer_command=command)
    print(
        f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}; trainer: {command[0]}; "
        f"{args.steps} steps x {args.rounds} rounds; batch "
        f"{plan.hyperparameters['batch_size']}, seq {plan.hyperparameters['max_seq_len']}",
        flush=True,
    )
    # Warm-up: the first job converts the GGUF into the HF cache both sides then load from.
    nexus_run(manager, plan, 2)
    nexus, plain = [], []
    for round_number in range(args.rounds):
        rate, wall = nexus_run(manager, plan, args.steps)
        nexus.append(rate)
        job_json = max((paths.data_dir() / "training/jobs").glob("*/job.json"))
        plain.append(plain_run(job_json, command[0]))
        print(
            f"round {round_number + 1}: NEXUS {rate:.0f} tok/s (job wall {wall:.0f} s), "
            f"plain PEFT {plain[-1]:.0f} tok/s",
            flush=True,
        )
    manager.close()
    store.close()
    nexus_rate, plain_rate = sum(nexus) / len(nexus), sum(plain) / len(plain)
    print(f"NEXUS orchestrated: {nexus_rate:.0f} tok/s; plain PEFT loop: {plain_rate:.0f} tok/s")
    print(f"ratio NEXUS / plain = {nexus_rate / plain_rate:.3f} (target >= 0.95)")


if __name__ == "__main__":
    sys.exit(main())
