"""Character cards (SillyTavern Character Card V1/V2/V3, PNG, JSON, CHARX) and lorebooks; Qt-free."""

from nexus_desktop.cards.errors import CardError
from nexus_desktop.cards.model import CharacterCard, Lorebook, LorebookEntry

__all__ = ["CardError", "CharacterCard", "Lorebook", "LorebookEntry"]
