"""``nexus``: NEXUS Desktop without a window.

Every failure a user can cause ends with one clear line on stderr and a non-zero exit,
never a traceback (``NEXUS_DEBUG=1`` shows the traceback too).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from nexus_desktop import __version__

if TYPE_CHECKING:
    from nexus_desktop.core import AppCore
    from nexus_desktop.db.tables import Character


class CliError(Exception):
    """A user-facing failure: printed as one line, exit status 1."""


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nexus", description="NEXUS Desktop from the command line.")
    parser.add_argument("--version", action="version", version=f"nexus {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    chat = commands.add_parser("chat", help="send a message to a character and stream the reply")
    chat.add_argument("message", help="what to say")
    chat.add_argument("--character", "-c", help="character name (default: the first character)")
    chat.add_argument("--model", "-m", help="a GGUF file to use instead of the configured model")
    chat.add_argument("--new", action="store_true", help="start a new chat instead of continuing")
    chat.add_argument("--chat", type=int, metavar="ID", help="continue this chat (see: nexus chats list)")
    chat.add_argument("--max-tokens", type=int, help="longest reply, in tokens")
    chat.add_argument("--stats", action="store_true", help="print tokens/s and context use after")

    characters = commands.add_parser("characters", help="list, import or export characters")
    char_commands = characters.add_subparsers(dest="action", required=True, metavar="ACTION")
    char_commands.add_parser("list", help="list characters")
    importer = char_commands.add_parser("import", help="import a card (.json, .png, .charx)")
    importer.add_argument("file", type=Path)
    exporter = char_commands.add_parser("export", help="export a card (.json or .png)")
    exporter.add_argument("name")
    exporter.add_argument("file", type=Path)
    exporter.add_argument("--spec", choices=["v2", "v3"], default="v2", help="card version (default v2)")

    commands.add_parser("doctor", help="report what NEXUS finds on this machine")

    from nexus_desktop import cli_chats, cli_control, cli_models, cli_modules, cli_personas, cli_train

    cli_models.add_subcommands(commands)
    cli_chats.add_subcommands(commands)
    cli_modules.add_subcommands(commands)
    cli_personas.add_subcommands(commands)
    cli_train.add_subcommands(commands)
    cli_control.add_subcommands(commands)
    from nexus_desktop import cli_game

    cli_game.add_subcommands(commands)
    from nexus_desktop import cli_worker

    cli_worker.add_subcommands(commands)
    from nexus_desktop import cli_providers

    cli_providers.add_subcommands(commands)
    from nexus_desktop import cli_gateway

    cli_gateway.add_subcommands(commands)
    from nexus_desktop import cli_memory

    cli_memory.add_subcommands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    _log_to_file()
    try:
        if args.command == "chat":
            return asyncio.run(_chat(args))
        if args.command == "characters":
            return _characters(args)
        from nexus_desktop import cli_chats, cli_control, cli_models, cli_modules, cli_personas, cli_train

        if args.command in cli_models.COMMANDS:
            return cli_models.run(args)
        if args.command in cli_chats.COMMANDS:
            return cli_chats.run(args)
        if args.command in cli_modules.COMMANDS:
            return cli_modules.run(args)
        if args.command in cli_personas.COMMANDS:
            return cli_personas.run(args)
        if args.command in cli_train.COMMANDS:
            return cli_train.run(args)
        if args.command in cli_control.COMMANDS:
            return cli_control.run(args)
        from nexus_desktop import cli_game

        if args.command in cli_game.COMMANDS:
            return cli_game.run(args)
        from nexus_desktop import cli_worker

        if args.command in cli_worker.COMMANDS:
            return cli_worker.run(args)
        from nexus_desktop import cli_providers

        if args.command in cli_providers.COMMANDS:
            return cli_providers.run(args)
        from nexus_desktop import cli_gateway

        if args.command in cli_gateway.COMMANDS:
            return cli_gateway.run(args)
        from nexus_desktop import cli_memory

        if args.command in cli_memory.COMMANDS:
            return cli_memory.run(args)
        if args.command == "doctor":
            from nexus_desktop.doctor import doctor_report

            for label, value in doctor_report():
                print(f"{label + ':':<16} {value}")
            return 0
    except KeyboardInterrupt:
        print("\nInterrupted.", file=sys.stderr)
        return 130
    except Exception as error:  # every failure becomes one line; see module docstring
        if os.environ.get("NEXUS_DEBUG"):
            traceback.print_exc()
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if args.command == "chat":  # the core's advice names the window; here the flag does it too
            message = message.replace("file in Settings → Model", "file with --model or in Settings → Model")
        print(f"nexus: error: {message}", file=sys.stderr)
        return 1
    return 2


def _log_to_file() -> None:
    """Warnings go to the log file, not between the reply's words on the terminal."""
    try:
        from nexus_desktop import paths
        from nexus_desktop.logs import setup_logging

        setup_logging(paths.log_dir())
    except OSError:
        pass  # an unwritable data dir is reported by the command itself


async def _chat(args: argparse.Namespace) -> int:
    from nexus_desktop.chat.events import SpeakerChosen
    from nexus_desktop.chat.model_output import PrintedReply
    from nexus_desktop.chat.service import (
        EmptyMessageError,
        GovernorNotice,
        HistoryTrimmed,
        ReplySaved,
        ReplyToken,
        ToolCalled,
    )
    from nexus_desktop.core import AppCore

    if not args.message.strip():
        raise EmptyMessageError()  # before the model loads or a chat opens
    core = AppCore()
    try:
        from nexus_desktop.cli_chats import UNANSWERED, chat_to_continue

        continued = chat_to_continue(core.store, args.chat) if args.chat is not None else None
        # A group chat has no one character: its members answer in turn, each with its own card.
        character = continued.character if continued else _find_character(core, args.character)
        if args.model:
            path = Path(args.model).expanduser()
            core.settings = core.settings.model_copy(update={"model_path": str(path), "source": "local"})
        if args.max_tokens:
            core.settings = core.settings.model_copy(update={"max_tokens": args.max_tokens})
        from nexus_desktop.training.in_use import active_router, lexical_router

        wants_tools = args.message.lstrip().startswith("/") or core.settings.tools_by_model
        intercepted = await asyncio.to_thread(_modules_intercept_chat, core)
        engine = core.store.engine
        routed = active_router(engine) is not None or lexical_router(engine) is not None
        if wants_tools or intercepted or routed:
            # Tools and chat interceptors run in the modules' own processes.
            await core.start_modules(watch=False)
        # The model first: one that cannot load leaves no new chat behind (the send saves nothing either).
        await core.sources.get(character.name if character is not None else None)
        if continued:
            chat = continued.chat
        else:
            assert character is not None and character.id is not None
            chat, _ = await (core.chat.new_chat if args.new else core.chat.open_chat)(character.id)
        assert chat.id is not None
        replies = 0
        # Small models often open with "Vega:"; the saved reply drops it, so the printed one does too.
        printed = PrintedReply(character.name if character is not None else "")
        async for event in core.chat.send(chat.id, args.message):
            if isinstance(event, SpeakerChosen):  # a group chat's: whose reply follows
                sys.stdout.write(f"{event.name}: ")
                sys.stdout.flush()
                printed = PrintedReply(event.name)
            elif isinstance(event, ReplyToken):
                sys.stdout.write(printed.add(event.text))
                sys.stdout.flush()
            elif isinstance(event, ToolCalled):
                print(f"[tool] {event.message.content}", file=sys.stderr, flush=True)
            elif isinstance(event, HistoryTrimmed):
                print(f"note: {event.notice}", file=sys.stderr)
            elif isinstance(event, GovernorNotice):
                print(f"note: {event.text}", file=sys.stderr, flush=True)
            elif isinstance(event, ReplySaved):
                replies += 1
                printed = PrintedReply(printed.speaker)
                sys.stdout.write("\n")
                sys.stdout.flush()
                if args.stats:
                    stats = event.output.stats
                    print(
                        f"{stats.tokens_per_second:.1f} tok/s · {stats.context_used} / "
                        f"{stats.context_size} context tokens",
                        file=sys.stderr,
                    )
        group = continued.group if continued else None
        if group is not None and group.turn_order == "manual" and not replies:
            print(f"note: {UNANSWERED}", file=sys.stderr)
        return 0
    finally:
        await core.aclose()


def _modules_intercept_chat(core: AppCore) -> bool:
    """Whether a module that will start implements a chat hook: then every message goes through it,
    in the CLI as in the window (starting modules costs a process each, so only then)."""
    from nexus_desktop.modules.manifest import load_manifest

    chat_hooks = {"message_will_send", "message_will_be_answered", "reply_did_finish"}
    for row in core.modules.host.modules_to_load():
        try:
            manifest = load_manifest(Path(row.path), bundled=row.origin == "built-in")
        except Exception:  # a module that no longer loads is the supervisor's to report
            continue
        if chat_hooks & set(manifest.hooks):
            return True
    return False


def _find_character(core: AppCore, name: str | None) -> Character:
    characters = core.store.list_characters()
    if not characters:
        raise CliError("There are no characters. Import one with: nexus characters import FILE")
    if name is None:
        return characters[0]
    found = core.store.find_character(name)
    if found is None:
        names = ", ".join(c.name for c in characters)
        raise CliError(f"No character named {name!r}. Known characters: {names}")
    return found


def _characters(args: argparse.Namespace) -> int:
    from nexus_desktop.cards.io import card_from_record
    from nexus_desktop.core import AppCore

    core = AppCore()
    try:
        if args.action == "list":
            for character in core.store.list_characters():
                card = card_from_record(character.card)
                tagline = " ".join(card.description.split())[:70]
                print(f"{character.name:<24} {tagline}")
            return 0
        if args.action == "import":
            added = asyncio.run(core.characters.import_file(args.file))
            card = card_from_record(added.card)
            greetings = 1 + len(card.alternate_greetings)
            lore = len(card.character_book.entries) if card.character_book else 0
            print(f"Imported {added.name} ({greetings} greetings, {lore} lorebook entries).")
            return 0
        character = _find_character(core, args.name)
        version = 3 if args.spec == "v3" else 2
        written = asyncio.run(core.characters.export(character, args.file, version))
        print(f"Exported {character.name} to {written}")
        return 0
    finally:
        core.close()


if __name__ == "__main__":
    sys.exit(main())
