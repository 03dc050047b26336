"""``nexus memory``: what characters remember across chats (Engram), from the command line.

    nexus memory list CHARACTER                 its memories and the shared ones (marked)
    nexus memory add CHARACTER TEXT [--shared]  remember a fact (--shared: for every character)
    nexus memory recall CHARACTER QUERY [-k N]  the memories closest in meaning, with their score
    nexus memory forget ID                      delete a memory

``cli.py`` hooks these in with ``add_subcommands(subparsers)`` and dispatches with ``run(args)``.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nexus_desktop.db.store import Store
    from nexus_desktop.db.tables import Memory
    from nexus_desktop.engram.service import Engram

COMMANDS = ("memory",)


def add_subcommands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    memory = subparsers.add_parser("memory", help="list, add, recall or forget what characters remember")
    actions = memory.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="a character's memories and the shared ones")
    listing.add_argument("character")
    add = actions.add_parser("add", help="remember a fact for a character")
    add.add_argument("character")
    add.add_argument("text")
    add.add_argument("--shared", action="store_true", help="remember it for every character")
    recall = actions.add_parser("recall", help="the memories closest in meaning to a query")
    recall.add_argument("character")
    recall.add_argument("query")
    recall.add_argument("-k", type=int, default=5, metavar="N", help="how many (default 5)")
    forget = actions.add_parser("forget", help="delete a memory by its number")
    forget.add_argument("id", type=int)


def run(args: argparse.Namespace) -> int:
    from nexus_desktop.core import AppCore

    core = AppCore()  # as the window would: the default characters are there on a first run
    try:
        return asyncio.run(_run(core.store, core.engram, args))
    finally:
        core.close()


async def _run(store: Store, engram: Engram, args: argparse.Namespace) -> int:
    from nexus_desktop.cli import CliError
    from nexus_desktop.engram.embedder import EmbedderError
    from nexus_desktop.engram.service import MemoryTextError
    from nexus_desktop.engram.store import MemoryNotFoundError

    try:
        if args.action == "forget":
            gone = await engram.forget(args.id)
            print(f"Forgot #{gone.id}: {gone.text}")
            return 0
        character_id, name = _character(store, args.character)
        if args.action == "list":
            return _list(await engram.list(character_id), name)
        if args.action == "add":
            added = await engram.imprint(character_id, args.text, shared=args.shared)
            whom = "every character (shared)" if args.shared else name
            print(f"Remembered #{added.id} for {whom}.")
            return 0
        if args.k < 1:
            raise CliError("-k must be 1 or more.")
        for memory, score in await engram.recall(character_id, args.query, args.k):
            print(f"{_line(memory)}  (similarity {score:.2f})")
        return 0
    except (MemoryNotFoundError, MemoryTextError, EmbedderError) as error:
        raise CliError(str(error)) from None
    finally:
        await engram.aclose()


def _character(store: Store, name: str) -> tuple[int, str]:
    from nexus_desktop.cli import CliError

    found = store.find_character(name)
    if found is None or found.id is None:
        names = ", ".join(c.name for c in store.list_characters()) or "none yet"
        raise CliError(f"No character named {name!r}. Known characters: {names}")
    return found.id, found.name


def _line(memory: Memory) -> str:
    scope = "shared" if memory.character_id is None else memory.source
    return f"#{memory.id:<5} [{scope}] {memory.text}"


def _list(memories: list[Memory], name: str) -> int:
    if not memories:
        print(f"{name} remembers nothing yet. Add a memory with: nexus memory add {name!r} TEXT")
        return 0
    for memory in memories:
        print(_line(memory))
    return 0
