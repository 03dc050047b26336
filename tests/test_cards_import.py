"""Importing character cards in the formats and shapes people actually have."""

from __future__ import annotations

import base64
import json
import struct
import zlib
from pathlib import Path

import pytest

from nexus_desktop.cards.errors import CardError
from nexus_desktop.cards.io import (
    avatar_from_png,
    card_from_bytes,
    card_from_json,
    load_card,
    load_card_with_avatar,
)
from nexus_desktop.cards.model import SPEC_V1, SPEC_V2, SPEC_V3
from nexus_desktop.cards.png import PNG_SIGNATURE
from tests.fixtures.make_cards import b64, charx_bytes, pillow_card_png, plain_png, v2_full, v3_full

FIXTURES = Path(__file__).parent / "fixtures" / "cards"


def png_chunk_types(data: bytes) -> list[bytes]:
    types, offset = [], len(PNG_SIGNATURE)
    while offset < len(data):
        length, kind = struct.unpack_from(">I4s", data, offset)
        types.append(kind)
        offset += 12 + length
    return types


def test_v2_json_card_keeps_every_field_lorebook_and_unknown_extensions() -> None:
    card = load_card(FIXTURES / "v2_full.json")

    assert card.spec == SPEC_V2
    assert card.name == "Captain Juniper"
    assert card.alternate_greetings == ["Morning, {{user}}. Coffee's on the bridge.", "Hold on to something!"]
    assert card.greetings[0] == "Welcome aboard, {{user}}!"
    assert card.system_prompt == "You are {{char}}."
    assert card.post_history_instructions == "Stay in character."
    assert card.extensions["x_vendor"] == {"nested": {"list": [1, {"deep": None}]}}
    assert card.extensions["depth_prompt"]["depth"] == 4
    assert card.extra == {"x_unknown_data_key": {"survives": True}}
    book = card.character_book
    assert book is not None and book.scan_depth == 2 and book.token_budget == 500
    assert book.extensions == {"vendor": {"keep": [1, 2, 3]}}
    assert [entry.keys for entry in book.entries] == [["Skylark", "airship"], ["fog"]]
    assert book.entries[1].position == "after_char"
    assert book.entries[1].model_extra == {"x_unknown_entry_key": True}


def test_v3_json_card_keeps_v3_fields() -> None:
    card = load_card(FIXTURES / "v3_full.json")

    assert card.spec == SPEC_V3 and card.spec_version == "3.0"
    assert card.nickname == "Star"
    assert card.group_only_greetings == ["Everyone, gather round the telescope!"]
    assert card.assets is not None and card.assets[1]["uri"] == "https://example.invalid/bg.png"
    assert card.creation_date == 1700000000 and card.modification_date == 1710000000
    assert card.creator_notes_multilingual == {
        "en": "Test card, version 3.",
        "fr": "Carte de test, version 3.",
    }
    assert card.source == ["https://example.invalid/astra"]
    assert card.extra == {"x_v3_unknown": "kept"}
    assert card.character_book is not None
    assert card.character_book.entries[1].use_regex is True


def test_v1_tavern_card_is_read_and_sillytavern_extras_land_in_extensions() -> None:
    card = load_card(FIXTURES / "v1_tavern.json")

    assert card.spec == SPEC_V1
    assert (card.name, card.personality, card.first_mes) == ("Old Tom", "grumpy", "What do you want?")
    assert card.creator_notes == "Made in TavernAI."
    assert card.extensions == {"talkativeness": "0.3", "fav": True}
    # SillyTavern's own file bookkeeping is not card content; a truly unknown key is kept.
    assert card.extra == {"x_v1_unknown": 42}


def test_hybrid_card_prefers_data_but_fills_an_empty_field_from_the_top_level() -> None:
    card = load_card(FIXTURES / "hybrid_v1_v2.json")

    assert card.spec == SPEC_V2
    assert card.name == "Captain Juniper"
    assert card.description == "Top-level description from a V1 editor."
    assert card.alternate_greetings  # data wins for everything else
    assert "talkativeness" not in card.extra


def test_messy_card_with_bom_nulls_strings_for_numbers_and_comma_tags_is_read_leniently() -> None:
    card = load_card(FIXTURES / "messy_bom.json")

    assert card.name == "Messy Mel"
    assert card.description == "" and card.scenario == "" and card.creator == ""
    assert card.personality == "12"
    assert card.character_version == "1.2"
    assert card.tags == ["funny", "chaotic", "test"]
    assert card.alternate_greetings == []
    assert card.extensions == {}
    book = card.character_book
    assert book is not None
    assert (book.scan_depth, book.token_budget, book.recursive_scanning) == (3, 200, True)
    first, second = book.entries
    assert first.keys == ["apple", "pear"] and first.enabled is True and first.insertion_order == 5
    assert second.keys == [] and second.secondary_keys == ["x"] and second.content == ""
    assert second.priority == 2 and second.position == "after_char"


def test_sillytavern_world_info_shaped_book_is_read_as_a_lorebook() -> None:
    card = load_card(FIXTURES / "world_info_book.json")

    book = card.character_book
    assert book is not None
    castle, moat = book.entries
    assert castle.keys == ["castle"] and castle.insertion_order == 100 and castle.enabled
    assert moat.secondary_keys == ["swim"] and moat.selective and not moat.enabled
    assert castle.model_extra is not None and castle.model_extra["depth"] == 4


def test_pygmalion_card_fields_are_mapped() -> None:
    card = load_card(FIXTURES / "pygmalion.json")

    assert (card.name, card.description, card.scenario, card.first_mes) == (
        "Pyg",
        "A character from the Pygmalion format.",
        "A lab.",
        "Beep.",
    )


def test_png_card_from_another_writer_is_read_with_its_avatar() -> None:
    card, avatar = load_card_with_avatar(FIXTURES / "v2_card.png")

    assert card.name == "Captain Juniper" and card.spec == SPEC_V2
    assert avatar is not None and avatar.startswith(PNG_SIGNATURE)
    assert b"tEXt" not in png_chunk_types(avatar)  # the avatar is the image alone
    assert avatar_from_png((FIXTURES / "v2_card.png").read_bytes()) == avatar


def test_png_with_both_chunks_prefers_ccv3() -> None:
    card = load_card(FIXTURES / "both_chunks.png")

    assert card.name == "Astra"
    assert card.spec == SPEC_V3


def test_png_falls_back_to_chara_when_ccv3_is_broken() -> None:
    png = pillow_card_png([("tEXt", "ccv3", "not base64 json!!"), ("tEXt", "chara", b64(v2_full()))])

    assert card_from_bytes(png).name == "Captain Juniper"


@pytest.mark.parametrize("kind", ["zTXt", "iTXt"])
def test_png_card_in_compressed_or_international_text_chunks_is_read(kind: str) -> None:
    png = pillow_card_png([(kind, "ccv3", b64(v3_full()))])

    assert card_from_bytes(png).nickname == "Star"


def test_png_with_raw_latin1_json_in_text_chunk_is_read() -> None:
    raw = json.dumps({"name": "Zoë", "description": "Café owner"}, ensure_ascii=False)
    png = pillow_card_png([("tEXt", "chara", raw)])  # Pillow writes tEXt as Latin-1

    card = card_from_bytes(png)

    assert (card.name, card.description) == ("Zoë", "Café owner")


def test_base64_of_latin1_json_is_read() -> None:
    raw = json.dumps({"name": "Zoë"}, ensure_ascii=False).encode("latin-1")
    png = pillow_card_png([("tEXt", "chara", base64.b64encode(raw).decode())])

    assert card_from_bytes(png).name == "Zoë"


def test_bad_crc_on_an_unrelated_chunk_is_ignored() -> None:
    png = bytearray((FIXTURES / "v2_card.png").read_bytes())
    # IHDR is the first chunk; its CRC sits right after its 13 data bytes.
    crc_at = len(PNG_SIGNATURE) + 8 + 13
    png[crc_at : crc_at + 4] = b"\0\0\0\0"

    assert card_from_bytes(bytes(png)).name == "Captain Juniper"


def test_bad_crc_on_a_readable_card_chunk_still_imports() -> None:
    png = bytearray(pillow_card_png([("tEXt", "chara", b64(v2_full()))]))
    at = png.find(b"tEXtchara")
    length = struct.unpack(">I", png[at - 4 : at])[0]
    crc_at = at + 4 + length
    png[crc_at : crc_at + 4] = b"\0\0\0\0"

    assert card_from_bytes(bytes(png)).name == "Captain Juniper"


def test_truncated_png_still_yields_a_card_found_before_the_cut() -> None:
    info_first = bytearray(PNG_SIGNATURE)
    text = b"chara\0" + b64({"name": "Early"}).encode()
    info_first += (
        struct.pack(">I", len(text)) + b"tEXt" + text + struct.pack(">I", zlib.crc32(b"tEXt" + text))
    )
    info_first += struct.pack(">I", 10_000) + b"IDAT" + b"\0" * 10  # cut short

    assert card_from_bytes(bytes(info_first)).name == "Early"


def test_charx_card_is_read_with_its_icon_as_avatar() -> None:
    card, avatar = load_card_with_avatar(FIXTURES / "astra.charx")

    assert card.name == "Astra" and card.spec == SPEC_V3
    assert avatar == plain_png((200, 120, 30))


def test_charx_with_card_json_one_folder_down_and_a_jpeg_icon_converts_the_icon(tmp_path: Path) -> None:
    import io
    import zipfile

    from PIL import Image

    jpeg = io.BytesIO()
    Image.new("RGB", (32, 32), (10, 200, 10)).save(jpeg, "JPEG")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("astra/card.json", json.dumps(v3_full()))
        archive.writestr("assets/icon/images/main.jpg", jpeg.getvalue())
    path = tmp_path / "astra.charx"
    path.write_bytes(buffer.getvalue())

    card, avatar = load_card_with_avatar(path)

    assert card.name == "Astra"
    assert avatar is not None and avatar.startswith(PNG_SIGNATURE)


def test_misnamed_files_are_sniffed_by_content(tmp_path: Path) -> None:
    png_named_json = tmp_path / "card.json"
    png_named_json.write_bytes((FIXTURES / "v2_card.png").read_bytes())
    charx_named_png = tmp_path / "card.zip"
    charx_named_png.write_bytes(charx_bytes(v3_full(), None))

    assert load_card(png_named_json).name == "Captain Juniper"
    assert load_card(charx_named_png).name == "Astra"


def test_card_from_json_accepts_text_bytes_and_parsed_objects() -> None:
    raw = v2_full()

    assert card_from_json(json.dumps(raw)).name == "Captain Juniper"
    assert card_from_json(json.dumps(raw).encode("utf-16")).name == "Captain Juniper"
    assert card_from_json(raw).name == "Captain Juniper"


def test_a_newer_card_spec_is_still_read() -> None:
    card = card_from_json({"spec": "chara_card_v4", "spec_version": "4.0", "data": {"name": "Future"}})

    assert card.name == "Future" and card.spec == "chara_card_v4"


def test_card_without_png_data_is_rejected_with_the_export_hint() -> None:
    with pytest.raises(CardError) as caught:
        load_card(FIXTURES / "no_card.png")

    assert str(caught.value) == (
        "This PNG has no character card in it; export the card from SillyTavern as PNG or JSON."
    )


def test_url_safe_base64_in_a_png_chunk_is_read() -> None:
    raw = json.dumps({"name": "Ünïcode ~~~ ???"}, ensure_ascii=False).encode("utf-8")
    png = pillow_card_png([("tEXt", "chara", base64.urlsafe_b64encode(raw).decode().rstrip("="))])

    assert card_from_bytes(png).name == "Ünïcode ~~~ ???"


def test_a_v2_labelled_card_with_null_data_but_top_level_fields_is_read_as_v1() -> None:
    card = card_from_json({"spec": "chara_card_v2", "data": None, "name": "Flat", "first_mes": "Hi."})

    assert (card.name, card.first_mes, card.extra) == ("Flat", "Hi.", {})
