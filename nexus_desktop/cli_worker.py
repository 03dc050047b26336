"""``nexus worker``: serve this machine's model and/or its modules' tools to another PC.

    nexus worker --connect nats://HOST:4222 --credentials FILE [--serve model,tools]
                 [--name NAME] [--tls-ca FILE] [--model PATH]

It prints one line saying what it serves, as which name, on which server, and runs until Ctrl+C
(SIGINT) or SIGTERM, which deregister it (callers stop sending at once) and exit 0.  A server it
cannot reach or credentials the server refuses end it with one line and exit 1.
The gaming PC then picks Models → Remote worker (docs/second-pc.md).

``cli.py`` hooks this in with ``add_subcommands(subparsers)`` and dispatches with ``run(args)``.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import socket
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nexus_desktop.bus.worker_service import WorkerPlan

COMMANDS = ("worker",)
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def add_subcommands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    worker = subparsers.add_parser(
        "worker", help="serve this PC's model and/or modules' tools to another PC over a NATS server"
    )
    worker.add_argument("--connect", required=True, metavar="URL", help="the NATS server: nats://HOST:4222")
    worker.add_argument(
        "--credentials", type=Path, metavar="FILE", help="a .creds file, an NKey seed, or user:password"
    )
    worker.add_argument("--serve", default="model,tools", help="model, tools or model,tools (default both)")
    worker.add_argument("--name", help="the name the app shows for this PC (default: its host name)")
    worker.add_argument("--tls-ca", type=Path, metavar="FILE", help="CA certificate of a tls:// server")
    worker.add_argument(
        "--model", type=Path, metavar="PATH", help="a GGUF file instead of the configured one"
    )


def default_name() -> str:
    """This PC's host name, as a subject-safe word."""
    from nexus_desktop.bus.directory import subject_token

    return subject_token(socket.gethostname().split(".")[0])


def run(args: argparse.Namespace) -> int:
    from nexus_desktop.bus.synapse import Connection
    from nexus_desktop.bus.worker_service import WorkerPlan, parse_serve
    from nexus_desktop.cli import CliError

    name = args.name or default_name()
    if not _NAME.match(name):
        raise CliError(f"--name {name!r} may use only letters, digits, - and _ (up to 64)")
    for flag, path in (
        ("--credentials", args.credentials),
        ("--tls-ca", args.tls_ca),
        ("--model", args.model),
    ):
        if path is not None and not path.expanduser().is_file():
            raise CliError(f"{flag} {path}: no such file. Check the path.")
    try:
        serve = parse_serve(args.serve)
    except ValueError as error:
        raise CliError(str(error)) from None
    plan = WorkerPlan(
        Connection(
            args.connect,
            credentials=args.credentials.expanduser() if args.credentials else None,
            tls_ca=args.tls_ca.expanduser() if args.tls_ca else None,
            name=name,
        ),
        serve,
        model_path=args.model.expanduser() if args.model else None,
    )
    return asyncio.run(_serve(plan))


async def _serve(plan: WorkerPlan) -> int:
    from nexus_desktop import paths
    from nexus_desktop.bus.synapse import BusError
    from nexus_desktop.bus.worker_service import WorkerService, describe
    from nexus_desktop.cli import CliError
    from nexus_desktop.db.store import Store

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(number, stop.set)
    store = await asyncio.to_thread(Store, paths.database_path())
    service = WorkerService(plan, store)
    try:
        try:
            await service.start()
        except BusError as error:
            raise CliError(str(error)) from None
        print(describe(service), flush=True)
        await stop.wait()
    finally:
        await service.aclose()
        await asyncio.to_thread(store.close)
    print("Worker stopped.", flush=True)
    return 0
