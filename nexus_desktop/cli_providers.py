"""``nexus providers``: which source each kind of work runs on now, why, and how each source has
done so far.

    nexus providers    each task's choice (chat, routing, codegen, judging) with its reason and
                       any warning, then the recorded success rate per source and task

``cli.py`` hooks this in with ``add_subcommands(subparsers)`` and dispatches with ``run(args)``.
"""

from __future__ import annotations

import argparse
import asyncio

from nexus_desktop.providers import TASK_TYPES, RouteDecision, SourceRate, TaskRouter

COMMANDS = ("providers",)


def add_subcommands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    subparsers.add_parser(
        "providers", help="show which source each task (chat, routing, codegen, judging) runs on, and why"
    )


def run(_args: argparse.Namespace) -> int:
    from nexus_desktop import paths
    from nexus_desktop.db.store import Store
    from nexus_desktop.secrets import SecretStore

    store = Store(paths.database_path())
    try:
        settings = store.load_settings()
        router = TaskRouter(store.engine, lambda: settings, SecretStore().get)
        for line in asyncio.run(report_lines(router)):
            print(line)
    finally:
        store.close()
    return 0


async def report_lines(router: TaskRouter) -> list[str]:
    """What ``nexus providers`` prints: one block per task, then the success rates."""
    lines: list[str] = []
    for task in TASK_TYPES:
        try:
            decision = await router.preview(task)
        except LookupError as error:
            lines.append(f"{task}: no source ({error})")
            continue
        lines += decision_lines(decision)
    lines += ["", *rate_lines(await router.success_rates())]
    return lines


def decision_lines(decision: RouteDecision) -> list[str]:
    lines = [f"{decision.task}: {decision.source_name}", f"  why: {decision.reason}"]
    if decision.warning:
        lines.append(f"  warning: {decision.warning}")
    return lines


def rate_lines(rates: list[SourceRate]) -> list[str]:
    if not rates:
        return ["Success rates: no outcomes recorded yet."]
    lines = ["Success rates:"]
    for rate in rates:
        lines.append(f"  {rate.task:<8} {rate.source_name}: {rate.ok} of {rate.total} ok ({rate.rate:.0%})")
    return lines
