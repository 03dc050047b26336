"""``nexus gateway key|serve``: the OpenAI-compatible gateway from the command line.

    nexus gateway key       print the key other apps send (made and kept in the keyring if there is
                            none yet), alone on its line, so scripts can read it
    nexus gateway serve     serve the active model and the characters on 127.0.0.1 until Ctrl+C,
                            whatever Settings → Other apps says (--port: another port)

``cli.py`` hooks this in with ``add_subcommands(subparsers)`` and dispatches with ``run(args)``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

COMMANDS = ("gateway",)


def add_subcommands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    gateway = subparsers.add_parser("gateway", help="serve other apps through the OpenAI-compatible gateway")
    actions = gateway.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("key", help="print the gateway's API key")
    serve = actions.add_parser("serve", help="serve other apps until Ctrl+C, without the window")
    serve.add_argument("--port", type=int, help="port on 127.0.0.1 (default: the one in Settings)")


def run(args: argparse.Namespace) -> int:
    from nexus_desktop.cli import CliError
    from nexus_desktop.gateway.key import gateway_key
    from nexus_desktop.secrets import KeyringUnavailableError, SecretStore

    if args.action == "key":
        try:
            print(gateway_key(SecretStore()))
        except KeyringUnavailableError as error:
            raise CliError(f"{error} (the gateway's key lives only in the keyring)") from None
        return 0
    if args.port is not None and not 1024 <= args.port <= 65535:
        raise CliError(f"--port {args.port} is outside 1024-65535; pick a port in that range.")
    try:
        return asyncio.run(_serve(args.port))
    except KeyboardInterrupt:
        print("The gateway stopped.", file=sys.stderr)
        return 0


async def _serve(port: int | None) -> int:
    from nexus_desktop.cli import CliError
    from nexus_desktop.core import AppCore

    core = AppCore()
    try:
        if port is not None:
            core.settings = core.settings.model_copy(update={"gateway_port": port})
        problem = await core.serve_gateway(force=True)
        if problem:
            raise CliError(problem.replace("Settings → Other apps", "--port"))
        assert core.gateway is not None
        print(f"Serving other apps at {core.gateway.url} (key: nexus gateway key). Ctrl+C stops.", flush=True)
        await asyncio.Event().wait()  # until Ctrl+C cancels this task
    finally:
        await core.aclose()
    return 0
