"""Export then import gives the same card back, whatever the format, unknown data included."""

from __future__ import annotations

import base64
import io
import json
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from nexus_desktop.cards.io import (
    card_from_bytes,
    card_from_json,
    card_from_record,
    card_to_json,
    card_to_png,
    card_to_record,
    load_card,
    load_card_with_avatar,
    save_card,
)
from nexus_desktop.cards.model import SPEC_V2, SPEC_V3, CharacterCard, Lorebook, LorebookEntry
from nexus_desktop.cards.png import PNG_SIGNATURE
from tests.fixtures.make_cards import plain_png

FIXTURES = Path(__file__).parent / "fixtures" / "cards"
CARD_FILES = sorted(path.name for path in FIXTURES.iterdir() if path.name != "no_card.png")
EXPORTS = [("json", 2), ("json", 3), ("png", 2), ("png", 3)]


def content(card: CharacterCard) -> dict[str, Any]:
    """Everything but the spec the card came in, which export may change on purpose."""
    return card.model_dump(exclude={"spec", "spec_version"})


def text_chunks(png: bytes) -> dict[str, str]:
    found, offset = {}, len(PNG_SIGNATURE)
    while offset < len(png):
        length, kind = struct.unpack_from(">I4s", png, offset)
        if kind == b"tEXt":
            keyword, _, text = png[offset + 8 : offset + 8 + length].partition(b"\0")
            found[keyword.decode()] = text.decode("latin-1")
        offset += 12 + length
    return found


@pytest.mark.parametrize("name", CARD_FILES)
@pytest.mark.parametrize(("suffix", "version"), EXPORTS)
def test_export_then_import_gives_the_same_card(tmp_path: Path, name: str, suffix: str, version: int) -> None:
    original = load_card(FIXTURES / name)
    target = tmp_path / f"out.{suffix}"

    save_card(original, target, version=version)
    again = load_card(target)

    assert content(again) == content(original)


@pytest.mark.parametrize(("suffix", "version"), EXPORTS)
def test_unknown_extensions_and_keys_survive_every_export(tmp_path: Path, suffix: str, version: int) -> None:
    original = load_card(FIXTURES / "v2_full.json")
    target = tmp_path / f"out.{suffix}"

    save_card(original, target, version=version)
    again = load_card(target)

    assert again.extensions["x_vendor"] == {"nested": {"list": [1, {"deep": None}]}}
    assert again.extensions["depth_prompt"] == {"prompt": "Mention the wind.", "depth": 4, "role": "system"}
    assert again.extra == {"x_unknown_data_key": {"survives": True}}
    assert again.character_book is not None
    assert again.character_book.extensions == {"vendor": {"keep": [1, 2, 3]}}
    assert again.character_book.entries[1].model_extra == {"x_unknown_entry_key": True}


def test_json_export_writes_the_requested_spec(tmp_path: Path) -> None:
    card = load_card(FIXTURES / "v3_full.json")

    v2 = json.loads(card_to_json(card, version=2))
    v3 = json.loads(card_to_json(card, version=3))

    assert (v2["spec"], v2["spec_version"]) == (SPEC_V2, "2.0")
    assert v2["name"] == "Astra" and v2["data"]["name"] == "Astra"  # V1 readers still see the basics
    assert (v3["spec"], v3["spec_version"]) == (SPEC_V3, "3.0")
    assert v3["data"]["group_only_greetings"] == ["Everyone, gather round the telescope!"]
    assert v3["data"]["character_book"]["entries"][0]["use_regex"] is False


def test_json_export_keeps_the_version_a_card_came_in_by_default() -> None:
    assert json.loads(card_to_json(load_card(FIXTURES / "v3_full.json")))["spec"] == SPEC_V3
    assert json.loads(card_to_json(load_card(FIXTURES / "v2_full.json")))["spec"] == SPEC_V2
    assert json.loads(card_to_json(load_card(FIXTURES / "v1_tavern.json")))["spec"] == SPEC_V2


def test_png_export_carries_both_a_v2_chara_and_a_v3_ccv3_chunk() -> None:
    card = load_card(FIXTURES / "v3_full.json")

    chunks = text_chunks(card_to_png(card))

    assert set(chunks) == {"chara", "ccv3"}
    assert json.loads(base64.b64decode(chunks["chara"]))["spec"] == SPEC_V2
    assert json.loads(base64.b64decode(chunks["ccv3"]))["spec"] == SPEC_V3


def test_png_export_embeds_into_the_given_avatar_and_import_returns_it(tmp_path: Path) -> None:
    avatar = plain_png((1, 2, 3))
    card = load_card(FIXTURES / "v2_full.json")

    save_card(card, tmp_path / "card.png", avatar_png=avatar)
    _, loaded_avatar = load_card_with_avatar(tmp_path / "card.png")

    assert loaded_avatar == avatar


def test_re_exporting_a_png_card_replaces_its_card_chunks_instead_of_adding_more(tmp_path: Path) -> None:
    card, avatar = load_card_with_avatar(FIXTURES / "both_chunks.png")
    card.description = "Edited in NEXUS."

    png = card_to_png(card, avatar)
    keywords = [k for k in text_chunks(png)]

    assert sorted(keywords) == ["ccv3", "chara"]
    assert png.count(b"tEXt") == 2
    assert card_from_bytes(png).description == "Edited in NEXUS."


def test_png_export_without_an_avatar_generates_a_400px_one() -> None:
    card = load_card(FIXTURES / "v1_tavern.json")

    with Image.open(io.BytesIO(card_to_png(card))) as image:
        assert image.size == (400, 400)


def test_stored_record_round_trips_exactly_through_json() -> None:
    card = load_card(FIXTURES / "v3_full.json")

    name, record = card_to_record(card)
    again = card_from_record(json.loads(json.dumps(record)))

    assert name == "Astra"
    assert again == card


def test_text_with_a_lone_surrogate_survives_export(tmp_path: Path) -> None:
    card = card_from_json('{"name": "Odd", "description": "half an emoji: \\ud83d"}')

    for suffix in ("json", "png"):
        save_card(card, tmp_path / f"odd.{suffix}")
        assert load_card(tmp_path / f"odd.{suffix}").description == "half an emoji: \ud83d"


texts = st.text(max_size=40)
entries = st.builds(
    LorebookEntry,
    keys=st.lists(texts, max_size=3),
    content=texts,
    enabled=st.booleans(),
    insertion_order=st.integers(-100, 100),
    case_sensitive=st.none() | st.booleans(),
    constant=st.none() | st.booleans(),
    priority=st.none() | st.integers(0, 100),
    position=st.none() | st.sampled_from(["before_char", "after_char"]),
    extensions=st.dictionaries(texts, st.integers() | texts, max_size=2),
)
cards = st.builds(
    CharacterCard,
    name=texts.filter(lambda t: t.strip() != ""),
    description=texts,
    first_mes=texts,
    alternate_greetings=st.lists(texts, max_size=3),
    tags=st.lists(texts, max_size=3),
    extensions=st.dictionaries(texts, st.none() | st.booleans() | st.integers() | texts, max_size=3),
    character_book=st.none() | st.builds(Lorebook, entries=st.lists(entries, max_size=3)),
    nickname=st.none() | texts,
    group_only_greetings=st.lists(texts, max_size=2),
    creation_date=st.none() | st.integers(0, 2**40),
    extra=st.dictionaries(st.sampled_from(["x_a", "x_b"]), st.integers() | texts, max_size=2),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(card=cards, version=st.sampled_from([2, 3]))
def test_any_card_round_trips_through_json_and_png(card: CharacterCard, version: int) -> None:
    from_json = card_from_json(card_to_json(card, version=version))
    from_png = card_from_bytes(card_to_png(card, plain_png()))

    assert content(from_json) == content(card)
    assert content(from_png) == content(card)
