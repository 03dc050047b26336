"""``nexus scheduler | loop | report | governor``: the control plane from the command line.

    nexus scheduler status        the task grid: cadence, state, next due, last run, counters
    nexus scheduler run TASK      run a task now and print its outcome (exit 1 if it failed)
    nexus loop status             the loop's health label and why, and its last cycles
    nexus report daily            the latest daily improvement report (runs nothing)
    nexus governor show NAME      a character's policy, today's usage and cooldowns in force

``cli.py`` hooks these in with ``add_subcommands(subparsers)`` and dispatches with ``run(args)``;
``main(argv)`` runs them alone.  Every failure a user can cause is one line, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import datetime

from sqlalchemy import Engine

COMMANDS = ("scheduler", "loop", "report", "governor")
FAILED_RUNS = frozenset({"error", "timeout", "skipped"})


class ControlError(Exception):
    """A user-facing failure: printed as one line, exit status 1."""


def add_subcommands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    scheduler = subparsers.add_parser("scheduler", help="scheduled tasks: the grid, or run one now")
    scheduler_actions = scheduler.add_subparsers(dest="action", required=True, metavar="ACTION")
    scheduler_actions.add_parser("status", help="every task: cadence, state, next due, last run, counts")
    runner = scheduler_actions.add_parser("run", help="run a task now and print its outcome")
    runner.add_argument("task", help="a task name from `nexus scheduler status`")

    loop = subparsers.add_parser("loop", help="the self-improvement loop's health and ledger")
    loop_actions = loop.add_subparsers(dest="action", required=True, metavar="ACTION")
    status = loop_actions.add_parser("status", help="health label and why, and the last cycles")
    status.add_argument("--limit", type=int, default=15, help="how many ledger rows to show")

    report = subparsers.add_parser("report", help="the loop's reports")
    report_actions = report.add_subparsers(dest="action", required=True, metavar="ACTION")
    report_actions.add_parser("daily", help="print the latest daily improvement report")

    governor = subparsers.add_parser("governor", help="character policies and budgets")
    governor_actions = governor.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = governor_actions.add_parser("show", help="a character's policy, usage today and cooldowns")
    show.add_argument("character")


def _engine() -> Engine:
    from nexus_desktop import paths
    from nexus_desktop.db.engine import open_engine

    return open_engine(paths.database_path())


def run(args: argparse.Namespace) -> int:
    if args.command == "scheduler" and args.action == "run":
        return asyncio.run(_run_task(args.task))
    engine = _engine()
    try:
        if args.command == "scheduler":
            return _scheduler_status(engine)
        if args.command == "loop":
            return _loop_status(engine, args.limit)
        if args.command == "report":
            return _daily_report()
        if args.command == "governor":
            return _governor_show(engine, args.character)
        return 2
    finally:
        engine.dispose()


# nexus scheduler -------------------------------------------------------------------------------


def _scheduler_status(engine: Engine) -> int:
    from nexus_desktop.control.app_tasks import BUILTINS
    from nexus_desktop.control.scheduler import task_grid

    rows = {row.name: row for row in task_grid(engine)}
    print(
        f"{'TASK':<28} {'OWNER':<14} {'CADENCE':<18} {'STATE':<16} {'NEXT DUE':<16} {'LAST RUN':<16} "
        f"{'TOOK':>8} {'LAST':<8} RUNS/ERR/TIMEOUT/SKIP"
    )
    for builtin in BUILTINS:
        if builtin.name not in rows:  # the app has not registered it yet: show what it will be
            print(
                f"{builtin.name:<28} {'nexus':<14} {builtin.cadence:<18} {'not started':<16} {'-':<16} "
                f"{'never':<16} {'-':>8} {'-':<8} 0/0/0/0"
            )
    for row in rows.values():
        counts = f"{row.run_count}/{row.error_count}/{row.timeout_count}/{row.skipped_count}"
        took = f"{row.last_duration:.1f}s" if row.last_duration is not None else "-"
        print(
            f"{row.name:<28} {row.owner:<14} {row.cadence:<18} {row.state:<16} {_when(row.next_due):<16} "
            f"{_when(row.last_started, 'never'):<16} {took:>8} {row.last_outcome or '-':<8} {counts}"
        )
        if row.last_outcome in ("error", "timeout") and row.last_error:
            print(f"    last {row.last_outcome}: {row.last_error}")
    from nexus_desktop.coevolve.versions import summary

    print(f"\n{summary(engine)}")  # what module-coevolution has done, per template version
    print("\nTasks run while the app is open; run one now with: nexus scheduler run TASK")
    return 0


async def _run_task(name: str) -> int:
    from nexus_desktop.control.app_tasks import BUILTIN_NAMES
    from nexus_desktop.control.scheduler import UnknownTask
    from nexus_desktop.core import AppCore

    core = AppCore()
    try:
        core.tasks.add_builtins()
        if name not in BUILTIN_NAMES:
            # A module's task runs in the module's own process, so the modules must be running.
            await core.start_modules(watch=False)
            core.tasks.sync_modules()
        try:
            run = await core.scheduler.run_now(name)
        except UnknownTask:
            known = ", ".join([*sorted(BUILTIN_NAMES), *core.tasks.module_task_names()])
            raise ControlError(f"There is no task called {name}; known tasks: {known}.") from None
    finally:
        await core.aclose()
    took = f" in {run.seconds:.1f} s" if run.seconds is not None else ""
    if run.outcome in FAILED_RUNS:
        words = {"error": "failed", "timeout": "timed out", "skipped": "did not run"}[run.outcome]
        raise ControlError(f"{name} {words}{took}: {run.detail or 'no reason given'}")
    print(f"{name}: {run.outcome}{took}. {run.detail}".rstrip())
    return 0


# nexus loop status -----------------------------------------------------------------------------


def _loop_status(engine: Engine, limit: int) -> int:
    from nexus_desktop.control.health import loop_health
    from nexus_desktop.control.ledger import Cycle, read_cycles

    health = loop_health(engine)
    print(f"Loop: {health.label}. {health.reason}")
    page = read_cycles(engine, limit=max(1, limit))
    rows: list[tuple[int, Cycle | str]] = [(cycle.id, cycle) for cycle in page.cycles]
    rows += [(row.id, f"{row.label} ({row.why}); skipped") for row in page.unreadable]
    if not rows:
        print("\nNo cycles yet. The daily cycle runs at 04:00 while the app is open; run one now with:")
        print("  nexus scheduler run daily-cycle")
        return 0
    print(f"\n{'ID':>5}  {'CYCLE':<20} {'STARTED':<16} {'TOOK':>8}  {'OUTCOME':<9} SUMMARY")
    for row_id, item in sorted(rows, key=lambda pair: pair[0], reverse=True):
        if isinstance(item, str):
            print(f"{row_id:>5}  {item}")
            continue
        indent = "  " if item.parent is not None else ""
        took = _took(item.seconds)
        print(
            f"{row_id:>5}  {indent + item.words:<20} {_when(item.started_at):<16} {took:>8}  "
            f"{item.outcome:<9} {item.summary}".rstrip()
        )
        for change in item.changes if item.parent is None else ():
            print(f"{'':>7}+ {change}")
    return 0


# nexus report daily ----------------------------------------------------------------------------


def _daily_report() -> int:
    from nexus_desktop import paths
    from nexus_desktop.control.report import HOW_TO_MAKE_ONE, latest_daily_report, reports_dir

    path = latest_daily_report(reports_dir(paths.data_dir()))
    if path is None:
        raise ControlError(
            f"There is no daily report yet; the daily cycle writes one at 04:00, or now: {HOW_TO_MAKE_ONE}"
        )
    sys.stdout.write(path.read_text(encoding="utf-8"))
    return 0


# nexus governor show ---------------------------------------------------------------------------


def _governor_show(engine: Engine, character: str) -> int:
    from nexus_desktop.control.governor import describe_policy

    print(describe_policy(engine, character))
    return 0


# Formatting ------------------------------------------------------------------------------------


def _when(moment: datetime | None, missing: str = "-") -> str:
    if moment is None:
        return missing
    from nexus_desktop.control.ledger import as_utc

    return as_utc(moment).astimezone().strftime("%Y-%m-%d %H:%M")


def _took(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}min"
    return f"{seconds / 3600:.1f}h"
