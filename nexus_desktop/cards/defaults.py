"""The characters that ship with the app (``resources/characters``), first one the default.

Files are taken in name order, so ``01-…`` comes first.  The editable text of each card is in
``resources/characters/src``; ``tests/fixtures/make_cards.py --defaults`` rebuilds the PNGs.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import NamedTuple

from nexus_desktop import paths
from nexus_desktop.cards.errors import CardError
from nexus_desktop.cards.io import CARD_SUFFIXES, load_card_with_avatar
from nexus_desktop.cards.model import CharacterCard

log = logging.getLogger(__name__)


class DefaultCharacter(NamedTuple):
    card: CharacterCard
    avatar: bytes | None


def default_characters_dir() -> Path:
    return paths.resources_dir() / "characters"


def default_card_files() -> list[Path]:
    folder = default_characters_dir()
    if not folder.is_dir():
        return []
    return sorted(
        path for path in folder.iterdir() if path.is_file() and path.suffix.lower() in CARD_SUFFIXES
    )


def default_cards() -> list[DefaultCharacter]:
    """Each bundled character with its avatar; a damaged file is logged and skipped, not fatal."""
    characters = []
    for path in default_card_files():
        try:
            characters.append(DefaultCharacter(*load_card_with_avatar(path)))
        except CardError as error:
            log.error("Skipping the bundled character %s: %s", path.name, error)
    return characters
