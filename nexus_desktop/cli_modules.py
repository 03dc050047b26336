"""``nexus modules``: the module gallery from the command line.

    nexus modules list            name, version, state and why, one module a line
    nexus modules release NAME    take a quarantined module out for review, then validate it

``cli.py`` hooks these in with ``add_subcommands(subparsers)`` and dispatches with ``run(args)``.
Nothing here starts a module's process: approving (which runs it) stays in the app, where the
approval dialog shows what it asks for and why it was quarantined.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nexus_desktop.modules.service import ModuleService

COMMANDS = ("modules",)


class ValidationFailed(Exception):
    """Released, but the validation failed: one line, exit status 1."""


def add_subcommands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    modules = subparsers.add_parser("modules", help="list modules, release a quarantined one")
    actions = modules.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", help="every module: name, version, state and why")
    release = actions.add_parser(
        "release", help="take a quarantined module out for review and validate it again"
    )
    release.add_argument("name")


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_run(args))


async def _run(args: argparse.Namespace) -> int:
    from nexus_desktop.core import AppCore

    core = AppCore()
    core.modules.start_modules = False  # the command line never runs a module's code
    try:
        await core.modules.refresh()
        if args.action == "list":
            return await _list(core.modules)
        return await _release(core.modules, args.name)
    finally:
        await core.aclose()


async def _list(service: ModuleService) -> int:
    views = await service.list()
    print(f"{'NAME':<24} {'VERSION':<10} {'STATE':<18} REASON")
    for view in views:
        card = view.card
        print(f"{card.name:<24} {card.version:<10} {card.state:<18} {card.reason}".rstrip())
    if not views:
        print("No modules. Install one in the app's Modules page.")
    return 0


async def _release(service: ModuleService, name: str) -> int:
    card = await service.release(name)
    print(f"Released {card.name} {card.version} from quarantine; validating it…", flush=True)
    # The same validation as the card's Validate button: sandboxed checks and its own tests.
    report = await service.validate(name)
    if not report.get("ok"):
        error = str(report.get("error") or "a check failed").rstrip(".")
        raise ValidationFailed(
            f"{name} was released but failed validation ({error}); fix it, then validate it in Modules."
        )
    print(f"{name} passed validation; approve it in Modules to turn it on again.")
    return 0
