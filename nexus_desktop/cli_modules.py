"""``nexus modules``: the module gallery from the command line, with the gallery's checks.

    nexus modules list                 name, version, state and why, one module a line
    nexus modules install PATH         install a folder, .zip or .whl; it awaits approval
    nexus modules validate NAME        the card's Validate: sandboxed checks and the module's tests
    nexus modules approve NAME [--yes] the approval dialog's list, then y/N (or --yes in scripts)
    nexus modules enable|disable NAME
    nexus modules release NAME         take a quarantined module out for review, then validate it
    nexus modules build "description" [--source NAME]   write a module, print each step

``cli.py`` hooks these in with ``add_subcommands(subparsers)`` and dispatches with ``run(args)``.
The command line never starts a module's process: an approved module starts with the app.
Every refusal is the lifecycle's own sentence (``ModuleView.refusal``), the one the gallery shows.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nexus_desktop.modules.review_text import (
    ENFORCED,
    NOTHING_ASKED,
    TRUST_NOTE,
    TRUST_NOTE_WEAKER,
    report_lines,
)

if TYPE_CHECKING:
    from nexus_desktop.builder.loop import BuildUpdate
    from nexus_desktop.builder.service import BuildService
    from nexus_desktop.core import AppCore
    from nexus_desktop.modules.registry import ApprovalRequest
    from nexus_desktop.modules.service import ModuleService

COMMANDS = ("modules",)


class ValidationFailed(Exception):
    """The module's validation failed: one line, exit status 1."""


def add_subcommands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    modules = subparsers.add_parser("modules", help="list, install, validate, approve or build modules")
    actions = modules.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", help="every module: name, version, state and why")
    install = actions.add_parser("install", help="install a module from a folder, .zip or .whl")
    install.add_argument("path", type=Path)
    for action, text in (
        ("validate", "run a module's checks and tests in the sandbox"),
        ("enable", "turn an approved module back on"),
        ("disable", "turn a module off"),
        ("release", "take a quarantined module out for review and validate it again"),
    ):
        actions.add_parser(action, help=text).add_argument("name")
    approve = actions.add_parser("approve", help="show what a module asks for, then approve it")
    approve.add_argument("name")
    approve.add_argument("--yes", action="store_true", help="approve without asking (read the list first)")
    approve.add_argument(
        "--accept-weaker-guarantee",
        action="store_true",
        help="with --yes: approve although this PC cannot enforce part of what it asks",
    )
    build = actions.add_parser("build", help="write a module from a description and test it in the sandbox")
    build.add_argument("description", help='what the module should do, e.g. "roll D&D ability scores"')
    build.add_argument("--source", metavar="NAME", help="the model source to write it with (default: routed)")


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_run(args))


async def _run(args: argparse.Namespace) -> int:
    from nexus_desktop.core import AppCore

    core = AppCore()
    core.modules.start_modules = False  # the command line never runs a module's code
    try:
        await core.modules.refresh()
        if args.action == "build":
            return await _build(core, args.description, args.source)
        service = core.modules
        if args.action == "list":
            return await _list(service)
        if args.action == "install":
            return await _install(service, args.path)
        if args.action == "validate":
            return await _validate(service, args.name)
        if args.action == "approve":
            return await _approve(
                service, args.name, yes=args.yes, accept_weaker=args.accept_weaker_guarantee
            )
        if args.action in ("enable", "disable"):
            return await _switch(service, args.name, args.action)
        return await _release(service, args.name)
    finally:
        await core.aclose()


async def _list(service: ModuleService) -> int:
    views = await service.list()
    print(f"{'NAME':<24} {'VERSION':<10} {'STATE':<18} REASON")
    for view in views:
        card = view.card
        print(f"{card.name:<24} {card.version:<10} {card.state:<18} {card.reason}".rstrip())
    if not views:
        print("No modules. Install one with: nexus modules install PATH")
    return 0


async def _install(service: ModuleService, path: Path) -> int:
    card = await service.install(path.expanduser())
    if card.state != "awaiting_approval":  # these very files were installed (and approved) before
        print(f"{card.name} {card.version} is installed already; it is {card.state}.")
        return 0
    print(f"Installed {card.name} {card.version}; it awaits approval.")
    print(f"Next: nexus modules validate {card.name}, then nexus modules approve {card.name}")
    return 0


async def _validate(service: ModuleService, name: str) -> int:
    await service.get(name)  # an unknown name is refused before anything runs
    print(f"Validating {name} in the sandbox…", flush=True)
    report = await service.validate(name)
    for line in report_lines(report):
        print(f"  {line}")
    if not report.get("ok"):
        error = str(report.get("error") or "a check failed").rstrip(".")
        raise ValidationFailed(f"{name} failed validation ({error}); fix it, then validate it again.")
    state = (await service.get(name)).state
    advice = f"approve it with: nexus modules approve {name}" if state != "enabled" else "it is enabled"
    print(f"{name} passed validation; {advice}.")
    return 0


async def _approve(service: ModuleService, name: str, *, yes: bool, accept_weaker: bool) -> int:
    from nexus_desktop.cli import CliError

    view = await service.get(name)
    refusal = view.refusal("approve")
    if refusal is not None:
        raise CliError(refusal)
    request = await service.review(name)
    report = await service.report(name)
    if not _passed_for(report, request.content_hash):
        raise CliError(f"{name} has not passed validation as it is now; run: nexus modules validate {name}")
    for line in approval_lines(request, report):
        print(line)
    if not _confirmed(request, yes=yes, accept_weaker=accept_weaker):
        raise CliError(f"Not approved; nothing changed for {name}.")
    if request.unenforced:
        request = request.accepting_weaker_guarantee()  # asked for in words above, or by the flag
    card = await service.approve(request)
    print(f"Approved {card.name} {card.version}; it is {card.state} and starts with the app.")
    return 0


def _passed_for(report: dict[str, Any] | None, content_hash: str) -> bool:
    """A passing validation of exactly the files under review (not of an earlier edit)."""
    return bool(
        report
        and report.get("kind") == "validation"
        and report.get("ok")
        and report.get("content_hash") == content_hash
    )


def _confirmed(request: ApprovalRequest, *, yes: bool, accept_weaker: bool) -> bool:
    from nexus_desktop.cli import CliError

    if yes:
        if request.unenforced and not accept_weaker:
            raise CliError(
                f"This PC cannot enforce part of what {request.name} asks (listed above); "
                "add --accept-weaker-guarantee to approve it anyway."
            )
        return True
    if not sys.stdin.isatty():
        raise CliError(
            f"Not approved: no terminal to ask on; read the list above, "
            f"then pass --yes to approve {request.name}."
        )
    question = "Approve it with the weaker guarantee" if request.unenforced else "Approve and enable it"
    try:
        answer = input(f"{question}? [y/N] ")
    except EOFError:
        answer = ""
    return answer.strip().lower() in ("y", "yes")


def approval_lines(request: ApprovalRequest, report: dict[str, Any] | None) -> list[str]:
    """What the approval dialog shows, in the same order, as terminal lines."""
    origin = {"built-in": "built-in", "generated": "generated"}.get(request.origin, "installed by you")
    lines = [
        f"Approve {request.display_name}?",
        f"{request.name} {request.version} · by {request.author or 'an unknown author'} · {origin}",
    ]
    if request.quarantined_because:
        lines += ["", "Why it was quarantined:", *(f"  {line}" for line in request.quarantined_because)]
    lines += ["", "It asks for:", *(f"  •  {line}" for line in request.access or [NOTHING_ASKED])]
    if request.credentials:
        lines += ["", "Secrets it needs (kept in your OS keyring):"]
        lines += [f"  {name}: {how}" for name, how in request.credentials]
    if request.unenforced:
        lines += ["", "Not enforced on this PC:", *(f"  •  {gap}." for gap in request.unenforced)]
    else:
        lines += ["", f"Enforced by the operating system: {ENFORCED}"]
    lines += ["", "Validation:", *(f"  {line}" for line in report_lines(report))]
    trust = TRUST_NOTE_WEAKER if request.unenforced else TRUST_NOTE
    lines += ["", f"Content hash (what you approve): {request.content_hash}", "", trust]
    return lines


async def _switch(service: ModuleService, name: str, action: str) -> int:
    from nexus_desktop.cli import CliError

    refusal = (await service.get(name)).refusal(action)
    if refusal is not None:
        raise CliError(refusal)
    card = await (service.enable(name) if action == "enable" else service.disable(name))
    print(f"{card.name} is {card.state}." + (" It starts with the app." if action == "enable" else ""))
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
    print(f"{name} passed validation; approve it in Modules or with: nexus modules approve {name}")
    return 0


async def _build(core: AppCore, description: str, source: str | None) -> int:
    """Run one build to its end, printing each step as it happens (``BuildService.build``)."""
    from nexus_desktop.cli import CliError

    seen: list[BuildUpdate] = []
    updates: asyncio.Queue[BuildUpdate | None] = asyncio.Queue()
    printer = asyncio.create_task(_print_steps(core.builds, updates))

    def on_step(update: BuildUpdate) -> None:
        seen.append(update)
        updates.put_nowait(update)

    try:
        view = await core.builds.build(description, source=source, on_step=on_step)
    except asyncio.CancelledError:  # Ctrl+C: the builder stores the build as stopped; say where
        printer.cancel()
        if seen:
            kept = await core.builds.get(seen[-1].build_id)
            where = f" in {kept.staging_path}" if kept.staging_path else ""
            print(f"Stopped build {kept.id}; its plan and {len(kept.rounds)} round(s) are kept{where}.")
        raise
    updates.put_nowait(None)
    await printer
    if view.status == "awaiting_approval":
        print(f"Built {view.module_name} in {len(view.rounds)} round(s); its files: {view.staging_path}")
        print(f"Review and approve it with: nexus modules approve {view.module_name}")
        return 0
    if view.status == "refused":
        raise CliError(view.reason)
    where = f"; its rounds are kept in {view.staging_path}" if view.staging_path else ""
    raise CliError(f"Build {view.id} failed: {view.reason.rstrip('.')}{where}.")


async def _print_steps(builds: BuildService, updates: asyncio.Queue[BuildUpdate | None]) -> None:
    """Print each step in order; after a failed round, the test lines that say what failed."""
    shown: set[int] = set()
    while (update := await updates.get()) is not None:
        print(step_line(update), flush=True)
        if update.step != "validate":
            continue
        for summary in (await builds.get(update.build_id)).rounds:
            finished = summary.seconds is not None
            if finished and not summary.passed and summary.round_no not in shown:
                shown.add(summary.round_no)
                detail = await builds.round_detail(update.build_id, summary.round_no)
                for line in failure_lines(detail.test_report):
                    print(f"{'':<11}{line}", flush=True)


def failure_lines(report: dict[str, Any] | None, limit: int = 8) -> list[str]:
    """The lines of a failed validation that say what failed: each failing test and its assertion."""
    lines: list[str] = []
    for check in (report or {}).get("checks") or []:
        if check.get("ok"):
            continue
        lines += [str(problem) for problem in (check.get("problems") or [])[1:]]
        lines += [str(line) for line in check.get("output") or [] if str(line).startswith(("E ", "FAILED "))]
    return lines[:limit]


def step_line(update: BuildUpdate) -> str:
    """``[step]     text``, with a text's further lines (a plan, an error) indented under it."""
    first, *rest = update.text.strip().splitlines() or [""]
    head = f"[{update.step}]"
    return "\n".join([f"{head:<11}{first}", *(f"{'':<11}{line}" for line in rest)])
