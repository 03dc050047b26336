"""Characters that modules register (``register_characters``) join the character list, once.

Each (module, registered name) is added the first time a module offers it, with
``Character.origin`` set to the module's name, and remembered in the ``module_characters``
setting.  From then on the character is the user's like any other: an edit (a rename too) is never
overwritten by the module's card, and a deleted one is not added again when the module restarts.

A card that is not a card (the module's code is not trusted) is skipped with a log line naming the
module; the module's other characters are still added.  ``ModuleCharacters`` listens to the
module service and does its database work on the store's thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from nexus_desktop.cards.convert import card_from_raw, card_from_record, check_text_sizes
from nexus_desktop.cards.errors import CardError
from nexus_desktop.cards.io import card_to_record
from nexus_desktop.cards.model import CharacterCard
from nexus_desktop.cards.png import is_png
from nexus_desktop.db.store import AsyncStore
from nexus_desktop.db.tables import Character, Setting
from nexus_desktop.modules.runtime.protocol import RemoteCharacter

log = logging.getLogger(__name__)

SEEN_KEY = "module_characters"
"""Setting row: ``{"seen": [[module, name], ...]}``, every character a module ever had added."""
MAX_PER_MODULE = 100
"""More than this from one module is a bug or abuse, not a cast of characters."""
MAX_AVATAR_BYTES = 8 * 1024 * 1024

Key = tuple[str, str]
Listener = Callable[[list[Character]], None]


@dataclass(frozen=True)
class OfferedCharacter:
    """A module's character, checked: the stored card record and a PNG avatar (or none)."""

    module: str
    name: str
    record: dict[str, Any]
    avatar: bytes | None

    @property
    def key(self) -> Key:
        return (self.module, self.name)


def card_of(data: dict[str, Any]) -> CharacterCard:
    """A card from what a module registered: a ``CharacterCard`` dump or Character Card V1/V2/V3 JSON."""
    if "data" not in data:
        # CharacterCard.model_dump() is flat and has "extra"; card JSON of that shape is V1.
        try:
            check_text_sizes(data)
            return card_from_record(data)
        except CardError:
            pass
    return card_from_raw(data, where="The card")


def read_offered(characters: Iterable[RemoteCharacter]) -> list[OfferedCharacter]:
    """The characters worth adding; each one that is not a card is logged, naming its module."""
    offered: list[OfferedCharacter] = []
    counts: dict[str, int] = {}
    keys: set[Key] = set()
    for character in characters:
        module = character.module
        counts[module] = counts.get(module, 0) + 1
        if counts[module] == MAX_PER_MODULE + 1:
            log.warning(
                "Module %s registered over %d characters; the rest are ignored", module, MAX_PER_MODULE
            )
        if counts[module] > MAX_PER_MODULE:
            continue
        try:
            name, record = card_to_record(card_of(character.card))
        except CardError as error:
            log.warning("Module %s registered a character that is not a card, skipped: %s", module, error)
            continue
        if not name or (module, name) in keys:
            continue
        keys.add((module, name))
        offered.append(OfferedCharacter(module, name, record, _avatar(module, name, character.avatar)))
    return offered


def _avatar(module: str, name: str, avatar: bytes | None) -> bytes | None:
    if avatar is None:
        return None
    if not is_png(avatar) or len(avatar) > MAX_AVATAR_BYTES:
        log.info(
            "Module %s gave %s an avatar that is not a PNG (or over 8 MB); it gets initials", module, name
        )
        return None
    return avatar


def seen_keys(engine: Engine) -> set[Key]:
    """Every (module, name) that was ever added, whether it is still there or not."""
    with Session(engine) as session:
        return _read_seen(session)


def add_new_characters(engine: Engine, offered: Sequence[OfferedCharacter]) -> list[Character]:
    """Add the characters never added before, in one transaction with the record that they were.

    A character whose (module, name) was added once is never added again: if it is gone, the user
    deleted it; if it has another name now, the user renamed it.  An existing character with the
    same origin and name (e.g. from before the setting existed) also counts as added.
    """
    with Session(engine, expire_on_commit=False) as session:
        seen = _read_seen(session)
        fresh = [item for item in offered if item.key not in seen]
        if not fresh:
            return []
        modules = {item.module for item in fresh}
        present = {
            (row.origin, row.name)
            for row in session.exec(select(Character).where(col(Character.origin).in_(modules)))
        }
        added = [
            Character(name=item.name, card=item.record, avatar=item.avatar, origin=item.module)
            for item in fresh
            if item.key not in present
        ]
        session.add_all(added)
        seen |= {item.key for item in fresh}
        row = session.get(Setting, SEEN_KEY) or Setting(key=SEEN_KEY)
        row.value = {"seen": sorted([module, name] for module, name in seen)}
        session.add(row)
        session.commit()
        return added


def _read_seen(session: Session) -> set[Key]:
    row = session.get(Setting, SEEN_KEY)
    value = row.value if row is not None and isinstance(row.value, dict) else {}
    pairs = value.get("seen")
    if not isinstance(pairs, list):
        return set()
    return {
        (str(pair[0]), str(pair[1]))
        for pair in pairs
        if isinstance(pair, list) and len(pair) == 2 and all(isinstance(p, str) for p in pair)
    }


class ModuleCharacters:
    """Adds what ``offered()`` returns whenever the module service says something changed.

    ``offered`` is normally ``ModuleSupervisor.characters``.  ``listeners`` are called on the
    event loop with the characters just added (never with an empty list), e.g. to refresh the
    sidebar.  Attach it with ``service.listeners.append(module_characters.changed)``.
    """

    def __init__(self, db: AsyncStore, offered: Callable[[], list[RemoteCharacter]]) -> None:
        self.db = db
        self.offered = offered
        self.listeners: list[Listener] = []
        self._handled: set[Key] = set()
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[list[Character]]] = set()

    def changed(self) -> None:
        """A ``ModuleService`` listener: look at the registrations again, off the event loop."""
        task = asyncio.ensure_future(self.sync())
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[list[Character]]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("Module characters could not be added", exc_info=task.exception())

    async def sync(self) -> list[Character]:
        """Add the characters modules offer that were never added; returns the ones added now."""
        async with self._lock:
            remote = self.offered()
            if {(c.module, _name_hint(c.card)) for c in remote} <= self._handled:
                return []  # nothing new since last time: no card parsing, no database
            offered = await asyncio.to_thread(read_offered, remote)
            added = await self.db.call(add_new_characters, self.db.store.engine, offered)
            self._handled |= {(c.module, _name_hint(c.card)) for c in remote}
        if added:
            log.info("Added %s from modules", ", ".join(f"{c.name} ({c.origin})" for c in added))
            for listener in list(self.listeners):
                try:
                    listener(added)
                except Exception:
                    log.exception("A module characters listener failed")
        return added

    async def wait(self) -> None:
        """Until every sync started so far has finished (for shutdown and tests)."""
        while self._tasks:
            await asyncio.wait(list(self._tasks))


def _name_hint(card: dict[str, Any]) -> str:
    """A cheap identity for "seen this registration before", without parsing the card."""
    data = card.get("data")
    name = data.get("name") if isinstance(data, dict) else card.get("name")
    return repr(name)
