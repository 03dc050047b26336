"""``nexus game-mode on|off|status``: the game-mode switch from the command line.

    nexus game-mode on       game mode whatever the detectors say (saved: a running app and a
                             restart both see it; the window reacts within a few seconds)
    nexus game-mode off      back to detection alone
    nexus game-mode status   the switch, the settings, and what each probe sees or why it cannot

``cli.py`` hooks this in with ``add_subcommands(subparsers)`` and dispatches with ``run(args)``.
"""

from __future__ import annotations

import argparse

from nexus_desktop.settings import Settings

COMMANDS = ("game-mode",)


def add_subcommands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    game = subparsers.add_parser(
        "game-mode", help="turn game mode on or off (the model leaves the GPU while you play), or show it"
    )
    game.add_argument("state", choices=["on", "off", "status"], help="on, off, or status")


def run(args: argparse.Namespace) -> int:
    from nexus_desktop import paths
    from nexus_desktop.db.store import Store

    store = Store(paths.database_path())
    try:
        settings = store.load_settings()
        if args.state == "status":
            for line in status_lines(settings):
                print(line)
            return 0
        on = args.state == "on"
        store.save_settings(settings.model_copy(update={"game_mode_manual": on}))
    finally:
        store.close()
    if on:
        doing = "keeps chatting on the CPU" if settings.game_mode_action == "cpu" else "unloads its model"
        print(f"Game mode is on: a running NEXUS {doing} within a few seconds.")
    else:
        print("Game mode switch is off: NEXUS loads its model again unless it sees a game.")
    return 0


def status_lines(settings: Settings) -> list[str]:
    """What ``status`` prints: the verdict first, then each probe's answer."""
    from nexus_desktop.gaming.probes import ManualSwitch, ask, default_probes, describe

    answers = ask(default_probes(lambda: settings))
    playing = [
        f"{probe.name}: {result.detail}"
        for probe, result in answers
        if result.playing and (isinstance(probe, ManualSwitch) or settings.game_mode_detect)
    ]
    action = "chat on the CPU" if settings.game_mode_action == "cpu" else "unload the model"
    keep = settings.keep_alive_minutes
    keep_text = (
        "keep the model loaded"
        if keep < 0
        else "unload the model after each reply"
        if keep == 0
        else f"unload the model after {keep} min unused"
    )
    return [
        f"Game mode: {'on (' + playing[0] + ')' if playing else 'off'}",
        f"Detect games: {'on' if settings.game_mode_detect else 'off'}",
        f"While playing: {action}",
        f"Keep-alive: {keep_text}",
        "Probes:",
        *(f"  {line}" for line in describe(answers)),
    ]
