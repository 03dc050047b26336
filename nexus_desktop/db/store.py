"""The store: every read and write of characters, chats, messages and settings.

All methods are synchronous and short.  Callers on an event loop use ``AsyncStore``, which runs
them one at a time on a dedicated thread so the UI thread never touches the disk.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from nexus_desktop.db.engine import open_engine
from nexus_desktop.db.tables import GREETING, Character, Chat, Message, Setting, utcnow
from nexus_desktop.settings import Settings

P = ParamSpec("P")
T = TypeVar("T")

SETTINGS_KEY = "settings"


class NotFoundError(LookupError):
    pass


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.engine: Engine = open_engine(path)

    def close(self) -> None:
        self.engine.dispose()

    def _session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    # Characters ---------------------------------------------------------------------------

    def list_characters(self) -> list[Character]:
        with self._session() as s:
            return list(s.exec(select(Character).order_by(col(Character.id))))

    def get_character(self, character_id: int) -> Character:
        with self._session() as s:
            character = s.get(Character, character_id)
            if character is None:
                raise NotFoundError(f"Character {character_id} no longer exists.")
            return character

    def find_character(self, name: str) -> Character | None:
        with self._session() as s:
            exact = s.exec(select(Character).where(Character.name == name)).first()
            if exact is not None:
                return exact
            return s.exec(select(Character).where(func.lower(Character.name) == name.lower())).first()

    def add_character(
        self, name: str, card: dict[str, Any], avatar: bytes | None = None, *, builtin: bool = False
    ) -> Character:
        with self._session() as s:
            character = Character(name=name, card=card, avatar=avatar, builtin=builtin)
            s.add(character)
            s.commit()
            return character

    def seed_characters(
        self, characters: Sequence[tuple[str, dict[str, Any], bytes | None]], *, builtin: bool = True
    ) -> list[Character]:
        """Add ``characters`` only while there are none, all in one transaction.

        One commit, not one per character: a first run killed part-way would otherwise leave some
        characters, and "there are characters already" would skip the rest on every later start.
        The check runs in the same (IMMEDIATE) transaction, so two first runs cannot both seed.
        Returns what was added (nothing when characters already existed).
        """
        with self._session() as s:
            if s.exec(select(Character.id).limit(1)).first() is not None:
                return []
            rows = [
                Character(name=name, card=card, avatar=avatar, builtin=builtin)
                for name, card, avatar in characters
            ]
            s.add_all(rows)
            s.commit()
            return rows

    def update_character(
        self, character_id: int, name: str, card: dict[str, Any], avatar: bytes | None
    ) -> Character:
        with self._session() as s:
            character = s.get(Character, character_id)
            if character is None:
                raise NotFoundError(f"Character {character_id} no longer exists.")
            character.name, character.card, character.avatar = name, card, avatar
            character.updated_at = utcnow()
            s.add(character)
            s.commit()
            return character

    def delete_character(self, character_id: int) -> None:
        with self._session() as s:
            character = s.get(Character, character_id)
            if character is not None:
                s.delete(character)
                s.commit()

    # Chats --------------------------------------------------------------------------------

    def list_chats(self, character_id: int) -> list[Chat]:
        with self._session() as s:
            query = select(Chat).where(Chat.character_id == character_id)
            return list(s.exec(query.order_by(col(Chat.updated_at).desc(), col(Chat.id).desc())))

    def get_chat(self, chat_id: int) -> Chat:
        with self._session() as s:
            chat = s.get(Chat, chat_id)
            if chat is None:
                raise NotFoundError(f"Chat {chat_id} no longer exists.")
            return chat

    def latest_chat(self, character_id: int) -> Chat | None:
        chats = self.list_chats(character_id)
        return chats[0] if chats else None

    def create_chat(self, character_id: int, greetings: Sequence[str] = (), title: str = "") -> Chat:
        """A new chat, opened by the character's greeting with the alternatives as swipes."""
        with self._session() as s:
            chat = Chat(character_id=character_id, title=title)
            s.add(chat)
            s.flush()
            if greetings:
                assert chat.id is not None
                s.add(
                    Message(
                        chat_id=chat.id,
                        position=0,
                        role="assistant",
                        swipes=list(greetings),
                        swipe_stats=[None] * len(greetings),
                    )
                )
            s.commit()
            return chat

    def delete_chat(self, chat_id: int) -> None:
        with self._session() as s:
            chat = s.get(Chat, chat_id)
            if chat is not None:
                s.delete(chat)
                s.commit()

    # Messages -----------------------------------------------------------------------------

    def list_messages(
        self, chat_id: int, *, newest: int | None = None, before: int | None = None
    ) -> list[Message]:
        """The chat's messages in order; only the ``newest`` few, or those before a position."""
        with self._session() as s:
            query = select(Message).where(Message.chat_id == chat_id)
            if before is not None:
                query = query.where(Message.position < before)
            if newest is None:
                return list(s.exec(query.order_by(col(Message.position))))
            return list(reversed(s.exec(query.order_by(col(Message.position).desc()).limit(newest)).all()))

    def get_message(self, message_id: int) -> Message:
        with self._session() as s:
            message = s.get(Message, message_id)
            if message is None:
                raise NotFoundError(f"Message {message_id} no longer exists.")
            return message

    def add_message(
        self,
        chat_id: int,
        role: str,
        text: str,
        stats: dict[str, Any] | None = None,
        *,
        speaker: tuple[int | None, str] = (None, ""),
    ) -> Message:
        """``speaker``: the id and name of the character who wrote a reply (``Message.speaker_id``)."""
        with self._session() as s:
            last = s.exec(select(func.max(Message.position)).where(Message.chat_id == chat_id)).one()
            message = Message(
                chat_id=chat_id,
                position=(last + 1) if last is not None else 0,
                role=role,
                swipes=[text],
                swipe_stats=[stats],
                speaker_id=speaker[0],
                speaker_name=speaker[1],
            )
            s.add(message)
            self._touch_chat(s, chat_id)
            s.commit()
            return message

    def add_swipe(self, message_id: int, text: str, stats: dict[str, Any] | None = None) -> Message:
        """Append an alternative reply and show it."""

        def append(message: Message) -> None:
            message.swipe_stats = [*self._padded_stats(message), stats]
            message.swipes = [*message.swipes, text]
            message.swipe_index = len(message.swipes) - 1

        return self._change_message(message_id, append)

    def set_swipe_index(self, message_id: int, index: int) -> Message:
        def choose(message: Message) -> None:
            if not 0 <= index < len(message.swipes):
                raise IndexError(f"Message {message_id} has no alternative {index + 1}.")
            message.swipe_index = index

        return self._change_message(message_id, choose)

    def edit_message(self, message_id: int, text: str, figures: dict[str, Any] | None = None) -> Message:
        """Replace the shown alternative's text and its generation figures (None: typed text has none)."""

        def edit(message: Message) -> None:
            swipes, stats = list(message.swipes), self._padded_stats(message)
            swipes[message.swipe_index] = text
            # An edited greeting is still a greeting (``Message.is_greeting``).
            greeting = {GREETING: True} if (stats[message.swipe_index] or {}).get(GREETING) else {}
            stats[message.swipe_index] = {**greeting, **(figures or {})} or None
            message.swipes, message.swipe_stats = swipes, stats

        return self._change_message(message_id, edit)

    def set_rating(self, message_id: int, rating: int) -> Message:
        """Record +1 or -1 on the shown alternative (kept beside its generation figures)."""

        return self.update_stats(message_id, rating=rating)

    def update_stats(self, message_id: int, **fields: Any) -> Message:
        """Merge ``fields`` into the shown alternative's stats (a tool call's record, a verdict)."""

        def update(message: Message) -> None:
            stats = self._padded_stats(message)
            stats[message.swipe_index] = {**(stats[message.swipe_index] or {}), **fields}
            message.swipe_stats = stats

        return self._change_message(message_id, update)

    def delete_message(self, message_id: int) -> None:
        with self._session() as s:
            message = s.get(Message, message_id)
            if message is not None:
                s.delete(message)
                self._touch_chat(s, message.chat_id)
                s.commit()

    def _change_message(self, message_id: int, change: Callable[[Message], object]) -> Message:
        with self._session() as s:
            message = s.get(Message, message_id)
            if message is None:
                raise NotFoundError(f"Message {message_id} no longer exists.")
            change(message)
            s.add(message)
            self._touch_chat(s, message.chat_id)
            s.commit()
            return message

    @staticmethod
    def _padded_stats(message: Message) -> list[dict[str, Any] | None]:
        stats = list(message.swipe_stats)
        return stats + [None] * (len(message.swipes) - len(stats))

    @staticmethod
    def _touch_chat(s: Session, chat_id: int) -> None:
        chat = s.get(Chat, chat_id)
        if chat is not None:
            chat.updated_at = utcnow()
            s.add(chat)

    # Settings -----------------------------------------------------------------------------

    def load_settings(self) -> Settings:
        with self._session() as s:
            row = s.get(Setting, SETTINGS_KEY)
        if row is None or not isinstance(row.value, dict):
            return Settings()
        # Unknown or invalid keys from another version fall back to defaults, one by one.
        defaults = Settings().model_dump()
        merged = {**defaults, **{k: v for k, v in row.value.items() if k in defaults}}
        try:
            return Settings.model_validate(merged)
        except ValueError:
            valid = {}
            for key, value in merged.items():
                try:
                    Settings.model_validate({**defaults, key: value})
                    valid[key] = value
                except ValueError:
                    continue
            return Settings.model_validate({**defaults, **valid})

    def save_settings(self, settings: Settings) -> None:
        with self._session() as s:
            row = s.get(Setting, SETTINGS_KEY) or Setting(key=SETTINGS_KEY)
            row.value = settings.model_dump(mode="json")
            s.add(row)
            s.commit()


class AsyncStore:
    """Runs ``Store`` calls on one background thread, in order, and awaits them."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nexus-db")

    async def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self.store.close()
