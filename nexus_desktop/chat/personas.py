"""User personas: who the user is in a chat, as in SillyTavern.

A persona's name fills {{user}} (in the prompt, in the shown messages and in the stop string that
keeps the model from writing the user's next line); its description joins the system prompt after
the character's (``prompt.system_prompt``).  One persona is the default: a chat that never picked
one speaks as it, so new chats do too.  The default cannot be deleted, and a deleted persona's
chats fall back to the default (the database sets their ``persona_id`` to NULL).

Until the user has a persona (the first run asks for their name) they are called by
``suggested_name()``, never "You".

The functions take the engine and run on the database thread; ``PersonaService`` awaits them
through ``AsyncStore`` and tells the views (``Change("personas")``) after each write.
"""

from __future__ import annotations

import os

from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from nexus_desktop.changes import Change, Changes
from nexus_desktop.db.engine import session
from nexus_desktop.db.store import AsyncStore, NotFoundError
from nexus_desktop.db.tables import Chat, Persona, utcnow

MAX_NAME_LENGTH = 64
FALLBACK_NAME = "User"
_ACCOUNT_NAMES = {"root", "user", "admin", "administrator"}


class PersonaError(ValueError):
    """A persona change the user can fix; the message says how."""


def suggested_name() -> str:
    """What to call the user before they say: the first word of their account's full name (what
    they typed when the computer was set up), else SillyTavern's "User"."""
    try:
        import pwd

        full_name = pwd.getpwuid(os.getuid()).pw_gecos.split(",")[0]
    except (ImportError, KeyError, AttributeError):  # Windows has no pwd; a uid may have no entry
        return FALLBACK_NAME
    words = full_name.split()
    first = words[0] if words else ""
    if first.isalpha() and first.lower() not in _ACCOUNT_NAMES:
        return first[:MAX_NAME_LENGTH]
    return FALLBACK_NAME


def clean_name(name: str) -> str:
    """The name as stored: one line (it ends up in "\\nName:" stop strings), trimmed, checked."""
    cleaned = " ".join(name.split())
    if not cleaned:
        raise PersonaError("Give the persona a name: it is what characters call you.")
    if len(cleaned) > MAX_NAME_LENGTH:
        raise PersonaError(f"Keep the persona's name to {MAX_NAME_LENGTH} characters or fewer.")
    return cleaned


def _get(s: Session, persona_id: int) -> Persona:
    persona = s.get(Persona, persona_id)
    if persona is None:
        raise NotFoundError(f"Persona {persona_id} no longer exists; pick another one.")
    return persona


def _check_unique(s: Session, name: str, persona_id: int | None = None) -> None:
    query = select(Persona).where(func.lower(Persona.name) == name.lower())
    if persona_id is not None:
        query = query.where(Persona.id != persona_id)
    taken = s.exec(query).first()
    if taken is not None:
        raise PersonaError(
            f"You already have a persona named {taken.name}; pick another name, or edit that one."
        )


def _default(s: Session) -> Persona | None:
    return s.exec(select(Persona).where(col(Persona.is_default))).first()


# On the database thread --------------------------------------------------------------------


def list_personas(engine: Engine) -> list[Persona]:
    """Every persona, the default first, then in the order they were made."""
    with session(engine) as s:
        query = select(Persona).order_by(col(Persona.is_default).desc(), col(Persona.id))
        return list(s.exec(query))


def find_persona(engine: Engine, name: str) -> Persona | None:
    with session(engine) as s:
        return s.exec(select(Persona).where(func.lower(Persona.name) == name.strip().lower())).first()


def persona_for_chat(engine: Engine, chat_id: int) -> Persona:
    """Who the user is in this chat: its own persona, else the default, else an unsaved persona
    named ``suggested_name()`` (no persona was made yet)."""
    with session(engine) as s:
        chat = s.get(Chat, chat_id)
        if chat is None:
            raise NotFoundError(f"Chat {chat_id} no longer exists.")
        chosen = s.get(Persona, chat.persona_id) if chat.persona_id is not None else None
        return chosen or _default(s) or Persona(name=suggested_name(), is_default=True)


def add_persona(
    engine: Engine,
    name: str,
    description: str = "",
    avatar: bytes | None = None,
    *,
    make_default: bool = False,
) -> Persona:
    """A new persona; the first one, or one made with ``make_default``, becomes the default."""
    name = clean_name(name)
    with session(engine) as s:
        _check_unique(s, name)
        current = _default(s)
        if current is not None and make_default:
            current.is_default = False
            s.add(current)
            s.flush()  # the database allows one default at a time
        default = make_default or current is None
        persona = Persona(name=name, description=description.strip(), avatar=avatar, is_default=default)
        s.add(persona)
        s.commit()
        return persona


def update_persona(
    engine: Engine, persona_id: int, name: str, description: str, avatar: bytes | None
) -> Persona:
    name = clean_name(name)
    with session(engine) as s:
        persona = _get(s, persona_id)
        _check_unique(s, name, persona_id)
        persona.name, persona.description, persona.avatar = name, description.strip(), avatar
        persona.updated_at = utcnow()
        s.add(persona)
        s.commit()
        return persona


def set_default_persona(engine: Engine, persona_id: int) -> Persona:
    with session(engine) as s:
        persona = _get(s, persona_id)
        current = _default(s)
        if current is not None and current.id != persona_id:
            current.is_default = False
            s.add(current)
            s.flush()  # the database allows one default at a time
        persona.is_default = True
        s.add(persona)
        s.commit()
        return persona


def delete_persona(engine: Engine, persona_id: int) -> int:
    """Delete a persona that is not the default; returns how many chats now speak as the default."""
    with session(engine) as s:
        persona = _get(s, persona_id)
        if persona.is_default:
            raise PersonaError(
                f"{persona.name} is your default persona, so it cannot be deleted. "
                "Make another persona the default first, then delete this one."
            )
        # The foreign key does this too; saying it here keeps the count and the rule in one place.
        chats = list(s.exec(select(Chat).where(Chat.persona_id == persona_id)))
        for chat in chats:
            chat.persona_id = None
            s.add(chat)
        s.delete(persona)
        s.commit()
        return len(chats)


def set_chat_persona(engine: Engine, chat_id: int, persona_id: int) -> Persona:
    """Speak as ``persona_id`` in this chat from now on (earlier messages are shown with it too)."""
    with session(engine) as s:
        persona = _get(s, persona_id)
        chat = s.get(Chat, chat_id)
        if chat is None:
            raise NotFoundError(f"Chat {chat_id} no longer exists.")
        chat.persona_id = persona_id
        s.add(chat)
        s.commit()
        return persona


# On the event loop ---------------------------------------------------------------------------


class PersonaService:
    """The personas for the window, the CLI and the core: each call runs on the database thread,
    and every write is announced as ``Change("personas")``."""

    def __init__(self, db: AsyncStore, changes: Changes | None = None) -> None:
        self.db = db
        self.changes = changes or Changes()

    @property
    def _engine(self) -> Engine:
        return self.db.store.engine

    async def list(self) -> list[Persona]:
        return await self.db.call(list_personas, self._engine)

    async def find(self, name: str) -> Persona | None:
        return await self.db.call(find_persona, self._engine, name)

    async def for_chat(self, chat_id: int) -> Persona:
        return await self.db.call(persona_for_chat, self._engine, chat_id)

    async def needs_name(self) -> bool:
        """True until the user has a persona: the first run asks their name."""
        return not await self.list()

    async def add(
        self, name: str, description: str = "", avatar: bytes | None = None, *, make_default: bool = False
    ) -> Persona:
        persona = await self.db.call(
            add_persona, self._engine, name, description, avatar, make_default=make_default
        )
        self.changes.emit(Change("personas"))
        return persona

    async def update(self, persona_id: int, name: str, description: str, avatar: bytes | None) -> Persona:
        persona = await self.db.call(update_persona, self._engine, persona_id, name, description, avatar)
        self.changes.emit(Change("personas"))
        return persona

    async def set_default(self, persona_id: int) -> Persona:
        persona = await self.db.call(set_default_persona, self._engine, persona_id)
        self.changes.emit(Change("personas"))
        return persona

    async def delete(self, persona_id: int) -> int:
        moved = await self.db.call(delete_persona, self._engine, persona_id)
        self.changes.emit(Change("personas"))
        return moved

    async def use_in_chat(self, chat_id: int, persona_id: int) -> Persona:
        persona = await self.db.call(set_chat_persona, self._engine, chat_id, persona_id)
        self.changes.emit(Change("personas", chat_id=chat_id))
        return persona
