"""``nexus personas``: who you are in chats, from the command line.

    nexus personas list                          every persona; * marks the default
    nexus personas add NAME [--description T]    a new persona (the first one becomes the default)
    nexus personas default NAME                  new chats, and chats that never picked one, use NAME

``cli.py`` hooks these in with ``add_subcommands(subparsers)`` and dispatches with ``run(args)``.
A running window picks these up when its persona menu or its persona manager opens next.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nexus_desktop.db.store import Store

COMMANDS = ("personas",)


def add_subcommands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    personas = subparsers.add_parser("personas", help="list, add or pick the default persona (who you are)")
    actions = personas.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", help="every persona; * marks the default")
    add = actions.add_parser("add", help="add a persona: its name fills {{user}}")
    add.add_argument("name")
    add.add_argument("--description", "-d", default="", help="what characters know about you")
    add.add_argument("--default", action="store_true", help="make it the default persona")
    default = actions.add_parser("default", help="make a persona the default")
    default.add_argument("name")


def run(args: argparse.Namespace) -> int:
    from nexus_desktop import paths
    from nexus_desktop.chat import personas
    from nexus_desktop.db.store import Store

    store = Store(paths.database_path())
    try:
        if args.action == "list":
            return _list(store)
        if args.action == "add":
            added = personas.add_persona(store.engine, args.name, args.description, make_default=args.default)
            print(f"Added {added.name}{' (the default persona)' if added.is_default else ''}.")
            return 0
        persona = personas.find_persona(store.engine, args.name)
        if persona is None or persona.id is None:
            raise ValueError(_unknown(store, args.name))
        personas.set_default_persona(store.engine, persona.id)
        print(f"{persona.name} is now the default persona.")
        return 0
    finally:
        store.close()


def _list(store: Store) -> int:
    from nexus_desktop.chat import personas

    rows = personas.list_personas(store.engine)
    if not rows:
        print(
            f"No personas yet; characters call you {personas.suggested_name()}. "
            "Add one with: nexus personas add NAME"
        )
        return 0
    for persona in rows:
        mark = "*" if persona.is_default else " "
        about = " ".join(persona.description.split())[:70]
        print(f"{mark} {persona.name:<24} {about}".rstrip())
    return 0


def _unknown(store: Store, name: str) -> str:
    from nexus_desktop.chat import personas

    names = ", ".join(p.name for p in personas.list_personas(store.engine))
    if not names:
        return f"No persona named {name!r}; there are none yet. Add one with: nexus personas add NAME"
    return f"No persona named {name!r}. Your personas: {names}"
