"""The normalized character card (close to Character Card V3 ``data``) and its lorebook.

Validation is lenient the way a person reading the card would be: ``null`` means "empty",
numbers written as text are numbers, a comma string of tags is a list of tags.  Anything that
cannot be read without guessing is rejected, so no data is silently lost.

``CharacterCard.model_dump()`` / ``model_validate()`` round-trip exactly (the app stores cards
that way).  Raw card JSON from files goes through ``nexus_desktop.cards.convert`` instead, which
sorts keys the card format does not know into ``extra``.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

LorePosition = Literal["before_char", "after_char"]
Number = int | float

SPEC_V1 = "chara_card_v1"
SPEC_V2 = "chara_card_v2"
SPEC_V3 = "chara_card_v3"

# SillyTavern's world-info numbers for the two positions the card spec knows.
_NUMERIC_POSITIONS: dict[int, LorePosition] = {0: "before_char", 1: "after_char"}
# SillyTavern world-info files name entry fields differently; some cards embed that format.
_WORLD_INFO_NAMES = {"key": "keys", "keysecondary": "secondary_keys", "order": "insertion_order"}


def lenient_text(value: Any) -> Any:
    """``null`` is empty text and a number is its text (``character_version: 1.2``)."""
    if value is None:
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


def lenient_list(value: Any, *, split_commas: bool) -> Any:
    """``null`` is an empty list; one string is one item, or comma-separated items for tags and keys."""
    if value is None:
        return []
    if isinstance(value, str):
        if split_commas:
            return [part.strip() for part in value.split(",") if part.strip()]
        return [value] if value else []
    if isinstance(value, list):
        return [lenient_text(item) for item in value if item is not None]
    return value


def lenient_number(value: Any) -> Any:
    """Numbers written as text become numbers; an empty value is "not set"."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                return value  # pydantic reports it with the field name
            return int(number) if number.is_integer() else number
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return value


def lenient_whole_number(value: Any) -> Any:
    value = lenient_number(value)
    if isinstance(value, float) and math.isfinite(value):
        return int(value)
    return value


def lenient_mapping(value: Any) -> Any:
    """``null`` and an empty list (PHP-style JSON) are an empty mapping."""
    if value is None or value == []:
        return {}
    return value


def lenient_timestamp(value: Any) -> Any:
    """Unix seconds; also accepts digits as text and ISO dates."""
    value = lenient_whole_number(value)
    if isinstance(value, str):
        try:
            return int(datetime.fromisoformat(value.strip()).timestamp())
        except ValueError:
            return value
    return value


def lenient_bool(value: Any, default: bool | None) -> Any:
    return default if value is None or value == "" else value


class LorebookEntry(BaseModel):
    """One lorebook entry; fields the spec does not name are kept as extras, verbatim."""

    model_config = ConfigDict(extra="allow")

    keys: list[str] = Field(default_factory=list)
    content: str = ""
    extensions: dict[str, Any] = Field(default_factory=dict)
    enabled: bool = True
    insertion_order: Number = 0
    case_sensitive: bool | None = None
    use_regex: bool = False
    constant: bool | None = None
    name: str | None = None
    priority: Number | None = None
    id: int | str | None = None
    comment: str | None = None
    selective: bool | None = None
    secondary_keys: list[str] = Field(default_factory=list)
    position: LorePosition | None = None

    @model_validator(mode="before")
    @classmethod
    def _accept_world_info_names(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for old, new in _WORLD_INFO_NAMES.items():
            if old in data and new not in data:
                data[new] = data.pop(old)
        if "disable" in data and "enabled" not in data and isinstance(data["disable"], bool):
            data["enabled"] = not data.pop("disable")
        position = data.get("position")
        extensions = data.get("extensions")
        if isinstance(position, int) and not isinstance(position, bool):
            # World-info files number the position; the number goes where SillyTavern's own card
            # export keeps it, so positions the spec has no word for are not lost.
            extensions = dict(extensions) if isinstance(extensions, dict) else {}
            data["extensions"] = {"position": position, **extensions}
        return data

    @field_validator("keys", "secondary_keys", mode="before")
    @classmethod
    def _keys(cls, value: Any) -> Any:
        return lenient_list(value, split_commas=True)

    @field_validator("content", mode="before")
    @classmethod
    def _content(cls, value: Any) -> Any:
        return lenient_text(value)

    @field_validator("name", "comment", mode="before")
    @classmethod
    def _optional_text(cls, value: Any) -> Any:
        return None if value is None else lenient_text(value)

    @field_validator("extensions", mode="before")
    @classmethod
    def _extensions(cls, value: Any) -> Any:
        return lenient_mapping(value)

    @field_validator("insertion_order", mode="before")
    @classmethod
    def _order(cls, value: Any) -> Any:
        number = lenient_number(value)
        return 0 if number is None else number

    @field_validator("priority", mode="before")
    @classmethod
    def _priority(cls, value: Any) -> Any:
        return lenient_number(value)

    @field_validator("enabled", mode="before")
    @classmethod
    def _enabled(cls, value: Any) -> Any:
        return lenient_bool(value, True)

    @field_validator("use_regex", mode="before")
    @classmethod
    def _use_regex(cls, value: Any) -> Any:
        return lenient_bool(value, False)

    @field_validator("case_sensitive", "constant", "selective", mode="before")
    @classmethod
    def _optional_bool(cls, value: Any) -> Any:
        return lenient_bool(value, None)

    @field_validator("position", mode="before")
    @classmethod
    def _position(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return _NUMERIC_POSITIONS.get(value)
        if isinstance(value, str):
            normalized = value.strip().lower().replace(" ", "_")
            # Positions from other apps ("an_top", "at_depth") have no place in this spec.
            return normalized if normalized in ("before_char", "after_char") else None
        return value


class Lorebook(BaseModel):
    """A character book; fields the spec does not name are kept as extras, verbatim."""

    model_config = ConfigDict(extra="allow")

    name: str | None = None
    description: str | None = None
    scan_depth: int | None = None
    token_budget: int | None = None
    recursive_scanning: bool | None = None
    extensions: dict[str, Any] = Field(default_factory=dict)
    entries: list[LorebookEntry] = Field(default_factory=list)

    @field_validator("name", "description", mode="before")
    @classmethod
    def _optional_text(cls, value: Any) -> Any:
        return None if value is None else lenient_text(value)

    @field_validator("scan_depth", "token_budget", mode="before")
    @classmethod
    def _whole_number(cls, value: Any) -> Any:
        return lenient_whole_number(value)

    @field_validator("recursive_scanning", mode="before")
    @classmethod
    def _optional_bool(cls, value: Any) -> Any:
        return lenient_bool(value, None)

    @field_validator("extensions", mode="before")
    @classmethod
    def _extensions(cls, value: Any) -> Any:
        return lenient_mapping(value)

    @field_validator("entries", mode="before")
    @classmethod
    def _entries(cls, value: Any) -> Any:
        if value is None:
            return []
        if isinstance(value, dict):  # SillyTavern world info keys its entries by uid
            return list(value.values())
        return value


class CharacterCard(BaseModel):
    """A character, in the shape of Character Card V3 ``data``.

    ``extra`` holds keys of ``data`` this app does not know, written back on export.
    ``spec`` / ``spec_version`` record the format the card came in, so export can keep it.
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    personality: str = ""
    scenario: str = ""
    first_mes: str = ""
    mes_example: str = ""
    creator_notes: str = ""
    system_prompt: str = ""
    post_history_instructions: str = ""
    alternate_greetings: list[str] = Field(default_factory=list)
    character_book: Lorebook | None = None
    tags: list[str] = Field(default_factory=list)
    creator: str = ""
    character_version: str = ""
    extensions: dict[str, Any] = Field(default_factory=dict)
    # Character Card V3 additions.
    nickname: str | None = None
    creator_notes_multilingual: dict[str, str] | None = None
    source: list[str] | None = None
    group_only_greetings: list[str] = Field(default_factory=list)
    assets: list[dict[str, Any]] | None = None
    creation_date: int | None = None
    modification_date: int | None = None

    extra: dict[str, Any] = Field(default_factory=dict)
    spec: str = SPEC_V2
    spec_version: str = "2.0"

    @field_validator(
        "name",
        "description",
        "personality",
        "scenario",
        "first_mes",
        "mes_example",
        "creator_notes",
        "system_prompt",
        "post_history_instructions",
        "creator",
        "character_version",
        mode="before",
    )
    @classmethod
    def _text(cls, value: Any) -> Any:
        return lenient_text(value)

    @field_validator("name")
    @classmethod
    def _name_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the character has no name")
        return value

    @field_validator("nickname", mode="before")
    @classmethod
    def _optional_text(cls, value: Any) -> Any:
        return None if value is None else lenient_text(value)

    @field_validator("alternate_greetings", "group_only_greetings", mode="before")
    @classmethod
    def _greetings(cls, value: Any) -> Any:
        return lenient_list(value, split_commas=False)

    @field_validator("tags", mode="before")
    @classmethod
    def _tags(cls, value: Any) -> Any:
        return lenient_list(value, split_commas=True)

    @field_validator("source", mode="before")
    @classmethod
    def _source(cls, value: Any) -> Any:
        return None if value is None else lenient_list(value, split_commas=False)

    @field_validator("extensions", mode="before")
    @classmethod
    def _extensions(cls, value: Any) -> Any:
        return lenient_mapping(value)

    @field_validator("character_book", mode="before")
    @classmethod
    def _book(cls, value: Any) -> Any:
        return None if value == [] else value

    @field_validator("creation_date", "modification_date", mode="before")
    @classmethod
    def _dates(cls, value: Any) -> Any:
        return lenient_timestamp(value)

    @property
    def greetings(self) -> list[str]:
        """The first message followed by the alternates: the swipes a new chat starts with."""
        return [self.first_mes, *self.alternate_greetings]
