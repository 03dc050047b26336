"""``nexus train | gate | dataset | route``: the self-improvement loop from the command line.

``cli.py`` hooks these in with ``add_subcommands(subparsers)`` and dispatches with ``run(args)``;
``main(argv)`` runs them alone (the tests use it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from sqlalchemy import Engine

if TYPE_CHECKING:
    from nexus_desktop.training.jobs import JobManager
    from nexus_desktop.training.tables import TrainingJob

COMMANDS = ("train", "gate", "dataset", "route")


def add_subcommands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    train = subparsers.add_parser("train", help="train the zoo's small models on what you taught them")
    train_commands = train.add_subparsers(dest="action", required=True, metavar="ACTION")
    train_commands.add_parser("status", help="collected examples per model against its threshold")
    runner = train_commands.add_parser("run", help="train one model, benchmark it and gate it")
    runner.add_argument("model_id")
    runner.add_argument("--dry-run", action="store_true", help="write the data and show the plan only")
    runner.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    runner.add_argument("--max-steps", type=int, help="override the number of training steps")
    runner.add_argument("--trainer-python", help="the trainer's Python (default: .venv-train)")
    runner.add_argument("--no-gate", action="store_true", help="train only; skip benchmark and gate")
    train_commands.add_parser("jobs", help="list training jobs")
    cancel = train_commands.add_parser("cancel", help="cancel a queued or running job")
    cancel.add_argument("job_id", type=int)
    promote = train_commands.add_parser("promote", help="make an adapter active by hand (an override)")
    promote.add_argument("model_id")
    promote.add_argument("adapter", type=Path)
    rollback = train_commands.add_parser("rollback", help="go back to the previous adapter by hand")
    rollback.add_argument("model_id")

    gate = subparsers.add_parser("gate", help="the promotion gate's decisions")
    gate_commands = gate.add_subparsers(dest="action", required=True, metavar="ACTION")
    history = gate_commands.add_parser("history", help="every gate decision with its numbers")
    history.add_argument("model_id", nargs="?")

    dataset = subparsers.add_parser("dataset", help="export collected training data, or import your own")
    dataset_commands = dataset.add_subparsers(dest="action", required=True, metavar="ACTION")
    export = dataset_commands.add_parser("export", help="write a model's dataset as JSONL")
    export.add_argument("model_id")
    export.add_argument("--format", choices=["alpaca", "sharegpt", "dpo", "messages"], default="alpaca")
    export.add_argument("--out", type=Path, help="output file (default: stdout)")
    importer = dataset_commands.add_parser(
        "import", help="add your own examples from JSONL: Alpaca, ShareGPT or text/label rows"
    )
    importer.add_argument("model_id")
    importer.add_argument("file", type=Path)

    route = subparsers.add_parser("route", help="print the intent label of a message")
    route.add_argument("message")
    route.add_argument("--model", help="a GGUF base model instead of the router's own")
    route.add_argument(
        "--correct",
        metavar="LABEL",
        help="record what the message should have been routed to (training data for the router), "
        "as the chat's 'Was it right?' card does",
    )


def _engine() -> Engine:
    from nexus_desktop import paths
    from nexus_desktop.db.engine import open_engine

    return open_engine(paths.database_path())


def run(args: argparse.Namespace) -> int:
    engine = _engine()
    try:
        _settle(engine)
        if args.command == "train":
            return _train(engine, args)
        if args.command == "gate":
            return _gate_history(engine, args.model_id)
        if args.command == "dataset":
            return _import(engine, args) if args.action == "import" else _export(engine, args)
        if args.command == "route":
            return asyncio.run(_route(engine, args))
        return 2
    finally:
        engine.dispose()


def _train(engine: Engine, args: argparse.Namespace) -> int:
    if args.action == "status":
        return _status(engine)
    if args.action == "run":
        return _run(engine, args)
    from nexus_desktop.training.jobs import JobManager

    if args.action == "jobs":
        manager = JobManager(engine, recover=False)
        try:
            for job in manager.list_jobs():
                loss = f"{job.loss:.4f}" if job.loss is not None else "-"
                print(
                    f"{job.id:>4}  {job.model_id:<16} {job.state:<9} {job.step:>5}/{job.total:<5} "
                    f"loss {loss:<8} {job.error}"
                )
        finally:
            manager.close(stop_training=False)
        return 0
    if args.action == "cancel":
        manager = JobManager(engine, recover=False)
        try:
            job = manager.cancel(args.job_id)
        finally:
            manager.close(stop_training=False)
        print(f"Job {job.id}: {job.state}")
        return 0
    from nexus_desktop.training.registry import AdapterRegistry
    from nexus_desktop.training.zoo import get_spec

    spec = get_spec(args.model_id)
    registry = AdapterRegistry(engine)
    if args.action == "promote":
        registry.promote(
            spec.id, args.adapter, spec.base_model_path(), reason="Promoted by hand.", override=True
        )
        print(f"{spec.id} now uses {args.adapter}")
        return 0
    registry.rollback(spec.id)
    active = registry.active(spec.id)
    print(f"{spec.id} now uses {active.adapter_path if active else 'its base model'}")
    return 0


def _status(engine: Engine) -> int:
    from nexus_desktop.training.pipeline import new_candidates
    from nexus_desktop.training.registry import AdapterRegistry
    from nexus_desktop.training.zoo import load_zoo

    registry = AdapterRegistry(engine)
    print(f"{'MODEL':<16} {'TASK':<13} {'NEW/THRESHOLD':<14} {'READY':<6} ACTIVE")
    for spec in load_zoo().values():
        count = new_candidates(engine, spec)
        ready = "yes" if count >= spec.train_threshold else "no"
        active = registry.active(spec.id)
        shown = active.adapter_path.name if active else "base model"
        print(f"{spec.id:<16} {spec.task:<13} {f'{count}/{spec.train_threshold}':<14} {ready:<6} {shown}")
    return 0


def _run(engine: Engine, args: argparse.Namespace) -> int:
    from nexus_desktop import paths
    from nexus_desktop.training.jobs import JobManager, JobState, default_trainer_command
    from nexus_desktop.training.pipeline import prepare
    from nexus_desktop.training.zoo import get_spec

    spec = get_spec(args.model_id)
    folder = paths.data_dir() / "training" / "datasets"
    plan = prepare(engine, spec, folder, device=args.device)
    if args.max_steps:
        plan.hyperparameters["max_steps"] = args.max_steps
    command = default_trainer_command(args.trainer_python)
    if args.dry_run:
        print(json.dumps({**plan.describe(), "trainer": command}, indent=2))
        return 0
    manager = JobManager(engine, trainer_command=command)
    try:
        job = manager.submit(
            spec.id,
            plan.base_model,
            plan.dataset,
            plan.hyperparameters,
            eval_dataset=plan.eval_dataset,
            device=args.device,
        )
        assert job.id is not None
        print(
            f"Job {job.id} queued: {plan.train_examples} examples, {plan.hyperparameters['max_steps']} steps"
        )
        job = _follow(manager, job.id)
    finally:
        manager.close(stop_training=True)
    for other in manager.decided:
        if other != job.id:  # a trainer a killed run left going, re-attached and finished here
            _report_unwatched(engine, manager.get(other))
    if job.state != JobState.DONE:
        print(f"Job {job.id} {job.state.lower()}: {job.error}", file=sys.stderr)
        return 1
    print(f"Job {job.id} done: best loss {job.best_loss}, adapter {job.gguf_adapter}")
    if args.no_gate:
        return 0
    _gate(engine, job, sys.stdout)
    return 0


def _gate(engine: Engine, job: TrainingJob, out: TextIO) -> None:
    """Benchmark, gate and (when the spec allows) promote a finished job's adapter."""
    from nexus_desktop.control.metrics import MetricsRecorder
    from nexus_desktop.training.pipeline import judge
    from nexus_desktop.training.zoo import get_spec

    metrics = MetricsRecorder(engine)  # the benchmark's calls show on the Inference dashboard too
    try:
        verdict = asyncio.run(judge(engine, get_spec(job.model_id), job, record_call=metrics.record))
    finally:
        metrics.close()
    outcome = "promoted" if verdict.promotion else ("approved" if verdict.decision.promote else "rejected")
    from nexus_desktop.training.gate import figures

    print(f"Gate ({verdict.decision.policy}): {outcome}. {verdict.decision.reason}", file=out)
    print(f"  {figures(verdict.decision.numbers())}", file=out)


def _settle(engine: Engine) -> None:
    """Every command first decides the jobs whose trainer exited while no NEXUS watched it (a
    killed `nexus train run`: the trainer runs in its own session and goes on), so what it shows
    is true.  Cheap when there is nothing to settle: one query."""
    from nexus_desktop.training.jobs import JobManager

    manager = JobManager(engine, recover=False)
    for job in manager.settle():
        _report_unwatched(engine, job)


def _report_unwatched(engine: Engine, job: TrainingJob) -> None:
    """Say how a job nobody followed ended, and gate a finished one as its own run would have."""
    from nexus_desktop.training.jobs import JobState

    if job.state != JobState.DONE:
        print(f"Job {job.id} ({job.model_id}) {job.state.lower()}: {job.error}", file=sys.stderr)
        return
    print(f"Job {job.id} ({job.model_id}) finished: adapter {job.gguf_adapter}", file=sys.stderr)
    try:
        _gate(engine, job, sys.stderr)
    except Exception as error:  # the command the user asked for still runs
        print(f"Job {job.id}: the gate could not judge it: {error}", file=sys.stderr)


def _follow(manager: JobManager, job_id: int) -> TrainingJob:
    import time

    from nexus_desktop.training.jobs import FINISHED

    shown = -1
    while True:
        job = manager.get(job_id)
        if job.step != shown and job.step:
            shown = job.step
            loss = f"{job.loss:.4f}" if job.loss is not None else "-"
            print(f"  step {job.step}/{job.total}  loss {loss}", file=sys.stderr)
        if job.state in FINISHED:
            return job
        time.sleep(0.5)


def _gate_history(engine: Engine, model_id: str | None) -> int:
    from nexus_desktop.training.gate import decision_history, figures

    decisions = decision_history(engine, model_id)
    if not decisions:
        print("No gate decisions yet.")
    for record in decisions:
        verdict = "APPROVED" if record.promote else "REJECTED"
        print(
            f"{record.at:%Y-%m-%d %H:%M}  {record.model_id:<16} {record.policy:<18} {verdict:<9} "
            f"{record.reason}"
        )
        print(f"    {json.dumps(record.numbers, sort_keys=True)}")
        print(f"    {figures(record.numbers or {})}")
    return 0


def _export(engine: Engine, args: argparse.Namespace) -> int:
    from nexus_desktop.training.datasets import write_dataset_info, write_jsonl
    from nexus_desktop.training.zoo import export_records, get_spec

    spec = get_spec(args.model_id)
    records = export_records(engine, spec, args.format)
    if args.out is None:
        for record in records:
            print(json.dumps(record, ensure_ascii=False))
        return 0
    count = write_jsonl(records, args.out)
    info = write_dataset_info(args.out, args.format, f"nexus_{spec.id}_{args.format}".replace("-", "_"))
    print(
        f"Wrote {count} {args.format} records to {args.out}"
        + (f" (LLaMA-Factory entry in {info.name})" if info else "")
    )
    return 0


def _import(engine: Engine, args: argparse.Namespace) -> int:
    from nexus_desktop.training.importer import import_file
    from nexus_desktop.training.zoo import get_spec

    spec = get_spec(args.model_id)
    report = import_file(engine, spec, args.file.expanduser())
    print(report.summary(spec.id))
    return 0


async def _route(engine: Engine, args: argparse.Namespace) -> int:
    from nexus_desktop.llm.contract import ChatMessage
    from nexus_desktop.llm.local import LocalLlamaSource
    from nexus_desktop.training.benchsuite import classify
    from nexus_desktop.training.in_use import lexical_router
    from nexus_desktop.training.registry import AdapterRegistry
    from nexus_desktop.training.zoo import get_spec

    spec = get_spec("router")
    if args.correct is not None and args.correct not in spec.labels:
        raise ValueError(f"{args.correct!r} is not a router label; use one of {', '.join(spec.labels)}.")
    active = AdapterRegistry(engine).active(spec.id)
    words = lexical_router(engine) if active is None and not args.model else None
    if words is not None:
        label = words.predict(args.message)
        print(label)
        print(
            "(the bag-of-words router: the last gate decision found it as good as the learned one)",
            file=sys.stderr,
        )
    else:
        base = Path(args.model).expanduser() if args.model else spec.base_model_path()
        adapter = active.adapter_path if active is not None and not args.model else None
        source = LocalLlamaSource(base, context_size=1024, threads=1, lora_path=adapter)
        try:
            messages = [ChatMessage("system", spec.system_prompt), ChatMessage("user", args.message)]
            label = await classify(source, messages, spec.labels)
        finally:
            await source.aclose()
        print(label)
    if args.correct is not None:
        _record_route(args.message, label, args.correct)
    return 0


def _record_route(text: str, label: str, corrected: str) -> None:
    """The example the chat's card records: a confirmation when the router was right, else a
    correction (``route_corrected``), stored through the app's own collector."""
    from nexus_desktop import paths
    from nexus_desktop.training.collector import Collector
    from nexus_desktop.training.examples import RouteDecided

    right = label == corrected
    collector = Collector(paths.database_path())
    try:
        collector.collect(RouteDecided(text, label, right, None if right else corrected))
    finally:
        collector.close()
    stats = collector.stats()
    if stats.stored + stats.duplicates == 0:
        raise RuntimeError("The correction could not be stored; see the log file (nexus doctor shows where).")
    kind = "confirmation" if right else f"correction ({label} -> {corrected})"
    note = " (already recorded)" if stats.duplicates else ""
    print(f"Recorded a router {kind}{note}; it trains the router at the next training check.")


def main(argv: Sequence[str] | None = None) -> int:
    """These commands alone, with the same one-line errors as ``nexus``."""
    import os
    import traceback

    parser = argparse.ArgumentParser(prog="nexus")
    add_subcommands(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    args = parser.parse_args(argv)
    try:
        return run(args)
    except KeyboardInterrupt:
        return 130
    except Exception as error:
        if os.environ.get("NEXUS_DEBUG"):
            traceback.print_exc()
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        print(f"nexus: error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
