"""Card JSON (V1, V2, V3 and the hybrids found in the wild) to ``CharacterCard`` and back."""

from __future__ import annotations

import codecs
import copy
import json
from typing import Any

from pydantic import ValidationError

from nexus_desktop.cards.errors import MAX_TEXT_CHARS, CardError
from nexus_desktop.cards.model import SPEC_V1, SPEC_V2, SPEC_V3, CharacterCard, Lorebook, LorebookEntry

V1_FIELDS = ("name", "description", "personality", "scenario", "first_mes", "mes_example")
V2_FIELDS = (
    *V1_FIELDS,
    "creator_notes",
    "system_prompt",
    "post_history_instructions",
    "alternate_greetings",
    "character_book",
    "tags",
    "creator",
    "character_version",
    "extensions",
)
V3_ONLY_FIELDS = (
    "assets",
    "nickname",
    "creator_notes_multilingual",
    "source",
    "group_only_greetings",
    "creation_date",
    "modification_date",
)
DATA_FIELDS = frozenset(V2_FIELDS + V3_ONLY_FIELDS)
# SillyTavern's bookkeeping beside V1 fields: file names and dates of its own, not card content.
_SILLYTAVERN_RUNTIME_KEYS = frozenset({"avatar", "chat", "create_date", "json_data"})
_PYGMALION_NAMES = {
    "char_name": "name",
    "char_persona": "description",
    "world_scenario": "scenario",
    "char_greeting": "first_mes",
    "example_dialogue": "mes_example",
}
_ENTRY_OPTIONAL_FIELDS = ("case_sensitive", "constant", "name", "priority", "id", "comment", "selective")
_BOOK_OPTIONAL_FIELDS = ("name", "description", "scan_depth", "token_budget", "recursive_scanning")

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


# Reading ----------------------------------------------------------------------------------------


def decode_text(raw: bytes) -> str:
    """UTF-8 (any BOM honoured); old Windows tools wrote Latin-1, which always decodes."""
    for bom, codec in _BOMS:
        if raw.startswith(bom):
            try:
                return raw[len(bom) :].decode(codec)
            except UnicodeDecodeError:
                break
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def parse_json(raw: bytes | str, *, where: str) -> Any:
    """Parse card JSON; ``where`` names the text in errors ("This file", "The card in this PNG")."""
    text = decode_text(raw) if isinstance(raw, bytes) else raw
    del raw  # a big card is held once, not twice
    text = text.lstrip("\ufeff \t\r\n")
    if not text:
        raise CardError(f"{where} is empty; export the card again as PNG or JSON.")
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise CardError(
            f"{where} is not valid JSON ({error.msg} at line {error.lineno}, column {error.colno}); "
            "fix the file there or export the card again."
        ) from None
    except RecursionError:
        raise CardError(f"{where} is nested too deeply to be a character card; export it again.") from None


def check_text_sizes(value: Any, *, limit: int = MAX_TEXT_CHARS) -> None:
    """Reject any one text over ``limit`` characters, naming the field, before it reaches a prompt."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            if len(item) > limit:
                field = path.removeprefix("data.") or "text"
                raise CardError(
                    f"The card's {field} field is {len(item):,} characters long, over the "
                    f"{limit:,}-character limit; shorten it in a card editor and import it again."
                )
        elif isinstance(item, dict):
            for key, child in item.items():
                stack.append((f"{path}.{key}" if path else str(key), child))
                if len(key) > limit:
                    raise CardError(
                        f"The card has a field name {len(key):,} characters long; it is not a real card."
                    )
        elif isinstance(item, list):
            stack.extend((f"{path}[{index}]", child) for index, child in enumerate(item))


def card_from_raw(raw: Any, *, where: str = "This file") -> CharacterCard:
    """A card from parsed JSON in any of the formats people have; ``CardError`` says what is wrong."""
    if not isinstance(raw, dict):
        raise CardError(
            f"{where} holds {_json_kind(raw)}, not a character card; export the card again as PNG or JSON."
        )
    check_text_sizes(raw)
    spec = raw.get("spec") if isinstance(raw.get("spec"), str) else None
    data = raw.get("data")
    if isinstance(data, dict) and (spec is None or spec.startswith("chara_card")):
        spec = spec or SPEC_V2
        # Hybrid V1+V2 cards: a field missing from data may still be at the top level.
        merged = dict(data)
        for key in V1_FIELDS:
            if merged.get(key) in (None, "") and raw.get(key) not in (None, ""):
                merged[key] = raw[key]
        version = str(raw.get("spec_version") or ("3.0" if spec == SPEC_V3 else "2.0"))
        return _validate(merged, spec=spec, spec_version=version)
    if spec is not None and spec.startswith("chara_card_v") and spec != SPEC_V1 and "name" not in raw:
        raise CardError(f"{where} says it is a {spec} card but has no data in it; export the card again.")
    if any(key in raw for key in _PYGMALION_NAMES):
        renamed = {_PYGMALION_NAMES.get(str(key), str(key)): value for key, value in raw.items()}
        return _from_v1(renamed)
    if "name" in raw or any(key in raw for key in V1_FIELDS):
        return _from_v1(raw)
    if "entries" in raw:
        raise CardError(f"{where} is a lorebook (world info), not a character card; import a character card.")
    raise CardError(f"{where} has no character in it; export the card from SillyTavern as PNG or JSON.")


def _from_v1(raw: dict[str, Any]) -> CharacterCard:
    """TavernAI V1: flat fields; SillyTavern's extras move where its own V2 conversion puts them."""
    data: dict[str, Any] = {}
    extensions: dict[str, Any] = {}
    for key, value in raw.items():
        if key in ("spec", "spec_version", "data") or key in _SILLYTAVERN_RUNTIME_KEYS:
            continue
        if key == "creatorcomment":
            data.setdefault("creator_notes", value)
        elif key in ("talkativeness", "fav"):
            extensions[key] = value
        else:
            data[key] = value
    if extensions:
        data["extensions"] = {**extensions, **(data.get("extensions") or {})}
    return _validate(data, spec=SPEC_V1, spec_version="1.0")


def _validate(data: dict[str, Any], *, spec: str, spec_version: str) -> CharacterCard:
    known = {key: value for key, value in data.items() if key in DATA_FIELDS}
    extra = {key: value for key, value in data.items() if key not in DATA_FIELDS}
    name = known.get("name")
    if name is None or (isinstance(name, str) and not name.strip()):
        raise CardError(
            "This card has no name; give the character a name in a card editor and import it again."
        )
    try:
        return CharacterCard.model_validate(
            {**known, "extra": extra, "spec": spec, "spec_version": spec_version}
        )
    except ValidationError as error:
        raise card_error_from(error) from None


_EXPECTED = {
    "string_type": "text",
    "list_type": "a list",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
    "int_type": "a number",
    "int_parsing": "a number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
}
# Pydantic names the member of a union it tried ("int", "function-after[...]"); users never need that.
_UNION_MEMBERS = frozenset({"int", "float", "str", "bool", "dict", "list"})


def card_error_from(error: ValidationError) -> CardError:
    """The first problem pydantic found, as one sentence naming the field."""
    first = error.errors()[0]
    field = ""
    for part in first["loc"]:
        if isinstance(part, int):
            field += f"[{part}]"
        elif part not in _UNION_MEMBERS and "[" not in part:
            field += f".{part}" if field else part
    expected = _EXPECTED.get(first["type"])
    if expected is None:
        message = str(first["msg"]).removeprefix("Value error, ")
        problem = message[:1].lower() + message[1:]
    else:
        problem = f"expected {expected}, found {_json_kind(first['input'])}"
    return CardError(
        f"The card field '{field or 'card'}' is not usable ({problem}); "
        "fix that field in the card or export it again."
    )


def _json_kind(value: Any) -> str:
    if isinstance(value, str):
        return "text"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return "null" if value is None else type(value).__name__


def card_from_record(record: dict[str, Any]) -> CharacterCard:
    """A card stored by the app (``card_to_record``)."""
    try:
        return CharacterCard.model_validate(record)
    except ValidationError as error:
        raise card_error_from(error) from None


# Writing ----------------------------------------------------------------------------------------


def card_to_raw(card: CharacterCard, version: int) -> dict[str, Any]:
    """The card as V2 or V3 JSON; V2 output also carries V1 fields at the top, as SillyTavern writes."""
    if version not in (2, 3):
        raise CardError(f"Cards can be exported as version 2 or 3, not {version}; pick one of those.")
    data: dict[str, Any] = {}
    for field in V2_FIELDS:
        value = getattr(card, field)
        if field == "character_book":
            if value is not None:
                data[field] = lorebook_to_raw(value, version)
        else:
            data[field] = _plain(value)
    for field in V3_ONLY_FIELDS:
        value = getattr(card, field)
        # V2 has no place for these, but they survive in data for a V3-aware reader.
        if value is not None and (version == 3 or value != []):
            data[field] = _plain(value)
    if version == 3:
        data.setdefault("group_only_greetings", [])
    for key, value in card.extra.items():
        data.setdefault(key, value)
    if version == 2:
        top = {field: data[field] for field in V1_FIELDS}
        return {**top, "spec": SPEC_V2, "spec_version": "2.0", "data": data}
    return {"spec": SPEC_V3, "spec_version": "3.0", "data": data}


def lorebook_to_raw(book: Lorebook, version: int) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    for field in _BOOK_OPTIONAL_FIELDS:
        value = getattr(book, field)
        if value is not None:
            raw[field] = value
    raw["extensions"] = _plain(book.extensions)
    raw["entries"] = [_entry_to_raw(entry, version) for entry in book.entries]
    for key, value in (book.model_extra or {}).items():
        raw.setdefault(key, value)
    return raw


def _entry_to_raw(entry: LorebookEntry, version: int) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "keys": list(entry.keys),
        "content": entry.content,
        "extensions": _plain(entry.extensions),
        "enabled": entry.enabled,
        "insertion_order": entry.insertion_order,
    }
    if version == 3 or entry.use_regex:
        raw["use_regex"] = entry.use_regex
    for field in _ENTRY_OPTIONAL_FIELDS:
        value = getattr(entry, field)
        if value is not None:
            raw[field] = value
    raw["secondary_keys"] = list(entry.secondary_keys)
    if entry.position is not None:
        raw["position"] = entry.position
    for key, value in (entry.model_extra or {}).items():
        raw.setdefault(key, value)
    return raw


def _plain(value: Any) -> Any:
    """A copy, so the exported JSON never shares lists or dicts with the card."""
    return copy.deepcopy(value)
