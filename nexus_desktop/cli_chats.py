"""``nexus chats``: every chat, from the command line.

    nexus chats list [-c NAME | -g NAME]          id, with whom, title, last written, messages, last line
    nexus chats export ID FILE                    the chat as a SillyTavern chat file (.jsonl)
    nexus chats import FILE [-c NAME | -g NAME]   a SillyTavern chat file as a new chat
    nexus chats search TEXT                       messages in every chat with all these words
    nexus chats rename ID TITLE
    nexus chats delete ID

A group's chats are listed, searched and exported like a character's ("Crew (group)"); a group
chat's file names each line's speaker, and imported into a group each line goes to that member.
``nexus chat --chat ID "message"`` continues one of them, a group chat with its members' turns
(``chat_to_continue``).  ``cli.py`` hooks these in with ``add_subcommands(subparsers)`` and
dispatches with ``run(args)``.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from nexus_desktop.chat.groups import Group
    from nexus_desktop.chat.history import ChatHistory, ChatSummary
    from nexus_desktop.db.store import Store
    from nexus_desktop.db.tables import Character, Chat

COMMANDS = ("chats",)
MARKS = ("[", "]")
"""Around the words a search matched."""
UNANSWERED = (
    "Your message is saved. In this group's manual turn order nobody answers on their own: pick who "
    "speaks with Speak in the window, or choose another turn order there."
)


class Continued(NamedTuple):
    """The chat ``nexus chat --chat ID`` continues, and who it is with."""

    chat: Chat
    character: Character | None
    """None for a group's chat."""
    group: Group | None


def add_subcommands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    chats = subparsers.add_parser("chats", help="list, search, rename, delete, import or export chats")
    actions = chats.add_subparsers(dest="action", required=True, metavar="ACTION")
    lister = actions.add_parser("list", help="every chat, the most recently written first")
    only = lister.add_mutually_exclusive_group()
    only.add_argument("--character", "-c", help="only this character's chats")
    only.add_argument("--group", "-g", help="only this group's chats")
    exporter = actions.add_parser("export", help="write a chat as a SillyTavern chat file (.jsonl)")
    exporter.add_argument("id", type=int, help="the chat's ID (see: nexus chats list)")
    exporter.add_argument("file", type=Path)
    importer = actions.add_parser("import", help="import a SillyTavern chat file (.jsonl) as a new chat")
    importer.add_argument("file", type=Path)
    into = importer.add_mutually_exclusive_group()
    into.add_argument("--character", "-c", help="import into this character when the file's is not here")
    into.add_argument("--group", "-g", help="import into this group: each line goes to the member it names")
    search = actions.add_parser("search", help="find messages in every chat")
    search.add_argument("text", help="words to find (all of them; a word also finds longer ones)")
    search.add_argument("--limit", type=int, default=50, help="most results to show (default 50)")
    rename = actions.add_parser("rename", help="give a chat a title")
    rename.add_argument("id", type=int)
    rename.add_argument("title")
    delete = actions.add_parser("delete", help="delete a chat and its messages")
    delete.add_argument("id", type=int)


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_run(args))


async def _run(args: argparse.Namespace) -> int:
    from nexus_desktop import paths
    from nexus_desktop.chat.history import ChatHistory
    from nexus_desktop.db.store import AsyncStore, Store

    db = AsyncStore(Store(paths.database_path()))
    history = ChatHistory(db)
    try:
        if args.action == "list":
            return await _list(history, db.store, args.character, args.group)
        if args.action == "export":
            count = await history.export_st(args.id, args.file)
            print(f"Exported chat {args.id} ({count} messages) to {args.file}")
            return 0
        if args.action == "import":
            return await _import(history, db.store, args.file, args.character, args.group)
        if args.action == "search":
            return await _search(history, args.text, args.limit)
        if args.action == "rename":
            chat = await history.rename(args.id, args.title)
            print(f"Chat {args.id} is now called “{chat.title}”.")
            return 0
        summary = await history.summary(args.id)
        await history.delete(args.id)
        print(f"Deleted chat {args.id} “{summary.title}” with {summary.with_label} ({_messages(summary)}).")
        return 0
    finally:
        db.close()


def _character(store: Store, name: str) -> Character:
    found = store.find_character(name)
    if found is None:
        names = ", ".join(c.name for c in store.list_characters()) or "none yet"
        raise LookupError(f"No character named {name!r}. Known characters: {names}")
    return found


def _group(store: Store, name: str) -> Group:
    from nexus_desktop.chat.groups import find_group, list_groups

    found = find_group(store.engine, name)
    if found is None:
        names = ", ".join(g.name for g in list_groups(store.engine)) or "none yet"
        raise LookupError(f"No group named {name!r}. Known groups: {names}")
    return found


async def _list(history: ChatHistory, store: Store, name: str | None, group_name: str | None) -> int:
    from nexus_desktop.chat.history import local_time

    character_id = _character(store, name).id if name else None
    group_id = _group(store, group_name).id if group_name else None
    chats = await history.chats(character_id, group_id)
    if not chats:
        print('No chats yet. Start one with: nexus chat "Hello"')
        return 0
    print(f"{'ID':>5}  {'WITH':<20} {'TITLE':<32} {'LAST WRITTEN':<20} {'MESSAGES':>8}  LAST LINE")
    for chat in chats:
        print(
            f"{chat.id:>5}  {_cut(chat.with_label, 20):<20} {_cut(chat.title, 32):<32} "
            f"{local_time(chat.updated_at):<20} {chat.message_count:>8}  {_cut(chat.preview, 60)}".rstrip()
        )
    return 0


async def _import(
    history: ChatHistory, store: Store, file: Path, name: str | None, group_name: str | None
) -> int:
    fallback = _character(store, name).id if name else None
    group_id = _group(store, group_name).id if group_name else None
    try:
        imported = await history.import_st(file, fallback, group_id)
    except LookupError as error:
        if fallback is not None or group_id is not None:
            raise
        raise LookupError(f"{str(error).rstrip('.')} with --character NAME or --group NAME.") from None
    print(imported.describe())
    print(f'Its ID is {imported.chat.id}; continue it with: nexus chat --chat {imported.chat.id} "…"')
    return 0


async def _search(history: ChatHistory, typed: str, limit: int) -> int:
    from nexus_desktop.chat.history import MATCH_MARKS

    hits = await history.search(typed, limit)
    if not hits:
        print(f"No messages have all of: {typed}")
        return 0
    for hit in hits:
        snippet = " ".join(hit.snippet.split())
        for mark, shown in zip(MATCH_MARKS, MARKS, strict=True):
            snippet = snippet.replace(mark, shown)
        print(f"chat {hit.chat_id} · {hit.with_label} · {hit.chat_title}: {snippet}")
    return 0


def chat_to_continue(store: Store, chat_id: int) -> Continued:
    """The chat ``nexus chat --chat ID`` continues, and who it is with; a group's chat is sent to
    as the window sends to it (``ChatService.send``: its members answer in the group's order)."""
    from nexus_desktop.chat.groups import group_of_chat
    from nexus_desktop.db.store import NotFoundError

    try:
        chat = store.get_chat(chat_id)
        if chat.character_id is None:
            return Continued(chat, None, group_of_chat(store.engine, chat_id))
        return Continued(chat, store.get_character(chat.character_id), None)
    except NotFoundError:
        raise LookupError(f"There is no chat {chat_id}; see the chats with: nexus chats list") from None


def _messages(summary: ChatSummary) -> str:
    count = summary.message_count
    return f"{count} message" if count == 1 else f"{count} messages"


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
