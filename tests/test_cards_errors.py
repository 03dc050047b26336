"""Bad card files give one clear sentence that says what is wrong and what to do."""

from __future__ import annotations

import io
import json
import tracemalloc
import zipfile
from pathlib import Path

import pytest

from nexus_desktop.cards.errors import MAX_FILE_BYTES, CardError
from nexus_desktop.cards.io import card_from_bytes, card_from_json, card_from_record, load_card, save_card
from nexus_desktop.cards.model import CharacterCard
from tests.fixtures.make_cards import b64, charx_bytes, pillow_card_png, plain_png, v2_full, v3_full


def one_sentence(message: str) -> bool:
    return message.endswith(".") and message.count(". ") == 0 and "\n" not in message


def load_error(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(CardError) as caught:
        load_card(path)
    message = str(caught.value)
    assert one_sentence(message), message
    return message


def test_a_png_without_a_card_says_how_to_export_one(tmp_path: Path) -> None:
    message = load_error(tmp_path, "avatar.png", plain_png())

    assert message == "This PNG has no character card in it; export the card from SillyTavern as PNG or JSON."


def test_a_file_named_png_that_is_not_a_png_says_so(tmp_path: Path) -> None:
    message = load_error(tmp_path, "card.png", b"GIF89a not really")

    assert "not a PNG" in message


def test_a_jpeg_says_cards_are_png(tmp_path: Path) -> None:
    message = load_error(tmp_path, "card.jpg", b"\xff\xd8\xff\xe0" + b"\0" * 100)

    assert "JPEG" in message and "PNG" in message


def test_malformed_json_says_where(tmp_path: Path) -> None:
    message = load_error(tmp_path, "card.json", b'{\n  "name": "A",\n  "description": "x"\n  "oops": 1\n}')

    assert "not valid JSON" in message
    assert "line 4, column 3" in message


def test_malformed_json_inside_a_png_says_it_is_in_the_png(tmp_path: Path) -> None:
    import base64

    png = pillow_card_png([("tEXt", "chara", base64.b64encode(b'{"name": "A",,}').decode())])

    message = load_error(tmp_path, "card.png", png)

    assert message.startswith("The card in this PNG is not valid JSON")


def test_an_empty_file_is_rejected(tmp_path: Path) -> None:
    assert "empty" in load_error(tmp_path, "card.json", b"")


@pytest.mark.parametrize(
    "raw",
    [
        {"spec": "chara_card_v2", "data": {"description": "no name here"}},
        {"spec": "chara_card_v2", "data": {"name": "   "}},
        {"spec": "chara_card_v2", "data": {"name": None}},
    ],
)
def test_a_card_without_a_name_is_rejected(raw: dict[str, object]) -> None:
    with pytest.raises(CardError, match="This card has no name; give the character a name"):
        card_from_json(raw)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", {"first": "A"}),
        ("description", ["a", "list"]),
        ("tags", {"a": 1}),
        ("alternate_greetings", 5),
        ("extensions", "not a mapping"),
        ("character_book", "a string"),
    ],
)
def test_a_field_of_the_wrong_type_is_named_in_the_error(field: str, value: object) -> None:
    data = {"name": "A", field: value}

    with pytest.raises(CardError) as caught:
        card_from_json({"spec": "chara_card_v2", "spec_version": "2.0", "data": data})

    message = str(caught.value)
    assert f"'{field}" in message and one_sentence(message), message


def test_a_lorebook_entry_field_of_the_wrong_type_is_named_in_the_error() -> None:
    book = {"entries": [{"keys": ["a"], "content": "x", "priority": "high"}]}

    with pytest.raises(
        CardError,
        match=r"'character_book\.entries\[0\]\.priority' is not usable \(expected a number, found text\)",
    ):
        card_from_json({"spec": "chara_card_v2", "data": {"name": "A", "character_book": book}})


@pytest.mark.parametrize("raw", [[{"name": "A"}], "a string", 42])
def test_json_that_is_not_an_object_is_rejected(raw: object) -> None:
    with pytest.raises(CardError, match="not a character card"):
        card_from_json(json.dumps(raw))


def test_a_lorebook_file_is_told_apart_from_a_card() -> None:
    with pytest.raises(CardError, match="is a lorebook"):
        card_from_json({"entries": {"0": {"key": ["a"], "content": "b"}}})


def test_a_v2_card_without_data_is_rejected() -> None:
    with pytest.raises(CardError, match="has no data in it"):
        card_from_json({"spec": "chara_card_v2", "spec_version": "2.0"})


@pytest.mark.timeout(120)
def test_a_50_mb_description_is_rejected_naming_the_field_and_size_without_much_memory(
    tmp_path: Path,
) -> None:
    path = tmp_path / "huge.json"
    with path.open("w") as stream:
        stream.write('{"spec": "chara_card_v2", "data": {"name": "Huge", "description": "')
        chunk = "x" * 1_000_000
        for _ in range(50):
            stream.write(chunk)
        stream.write('"}}')

    tracemalloc.start()
    try:
        with pytest.raises(CardError) as caught:
            load_card(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    message = str(caught.value)
    assert "description" in message and "50,000,000 characters" in message and "1,000,000" in message
    assert one_sentence(message)
    # The file, its text and the parsed string: a few copies, never dozens.
    assert peak < 4 * path.stat().st_size


def test_a_file_over_64_mb_is_rejected_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    with path.open("wb") as stream:
        stream.truncate(MAX_FILE_BYTES + 1)  # sparse: costs no disk

    with pytest.raises(CardError) as caught:
        load_card(path)

    assert "over the 64 MB limit" in str(caught.value)


def test_a_long_field_nested_in_a_lorebook_is_named() -> None:
    book = {"entries": [{"keys": ["a"], "content": "y" * 1_000_001}]}

    with pytest.raises(
        CardError, match=r"character_book\.entries\[0\]\.content field is 1,000,001 characters"
    ):
        card_from_json({"spec": "chara_card_v2", "data": {"name": "A", "character_book": book}})


def test_a_broken_ccv3_chunk_with_a_bad_checksum_is_reported_as_damaged() -> None:
    png = bytearray(pillow_card_png([("tEXt", "ccv3", b64(v3_full()))]))
    at = png.find(b"tEXtccv3")
    png[at + 20 : at + 30] = b"!!!!!!!!!!"  # corrupt the text; the CRC no longer matches

    with pytest.raises(CardError, match="damaged"):
        card_from_bytes(bytes(png))


def test_a_zip_bomb_in_ztxt_is_refused() -> None:
    import zlib

    bomb = zlib.compress(b"A" * (MAX_FILE_BYTES + 1024), 9)
    chunk_data = b"chara\0\0" + bomb
    png = bytearray(plain_png())
    iend = png.rfind(b"IEND") - 4
    chunk = len(chunk_data).to_bytes(4, "big") + b"zTXt" + chunk_data
    chunk += zlib.crc32(b"zTXt" + chunk_data).to_bytes(4, "big")
    png[iend:iend] = chunk

    with pytest.raises(CardError, match="more than 64 MB"):
        card_from_bytes(bytes(png))


def zip_with(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.mark.parametrize("evil", ["../evil.txt", "assets/../../evil.txt", "/etc/evil", "C:/evil.txt"])
def test_a_charx_with_a_zip_slip_path_is_refused(tmp_path: Path, evil: str) -> None:
    data = zip_with({"card.json": json.dumps(v3_full()).encode(), evil: b"gotcha"})

    message = load_error(tmp_path, "evil.charx", data)

    assert "unsafe path" in message


@pytest.mark.timeout(120)
def test_a_charx_with_a_huge_entry_is_refused(tmp_path: Path) -> None:
    data = zip_with(
        {"card.json": json.dumps(v3_full()).encode(), "assets/big.bin": bytes(MAX_FILE_BYTES + 1)}
    )

    message = load_error(tmp_path, "big.charx", data)

    assert "far more than a card needs" in message


def test_a_charx_without_card_json_is_refused(tmp_path: Path) -> None:
    message = load_error(tmp_path, "empty.charx", zip_with({"readme.txt": b"hello"}))

    assert "no card.json" in message


def test_a_damaged_charx_is_refused(tmp_path: Path) -> None:
    data = charx_bytes(v3_full(), None)[:-30]

    assert "damaged" in load_error(tmp_path, "cut.charx", data)


def test_a_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(CardError, match="There is no file at"):
        load_card(tmp_path / "nope.png")


def test_saving_to_an_unknown_extension_or_version_is_refused(tmp_path: Path) -> None:
    card = card_from_json(v2_full())

    with pytest.raises(CardError, match=r"saved as \.png or \.json"):
        save_card(card, tmp_path / "card.txt")
    with pytest.raises(CardError, match="version 2 or 3"):
        save_card(card, tmp_path / "card.json", version=4)


def test_saving_with_a_non_png_avatar_is_refused(tmp_path: Path) -> None:
    card = card_from_json(v2_full())

    with pytest.raises(CardError, match="avatar is not a PNG"):
        save_card(card, tmp_path / "card.png", avatar_png=b"\xff\xd8\xff not png")


def test_a_stored_record_that_no_longer_validates_gives_a_card_error() -> None:
    with pytest.raises(CardError, match="'tags'"):
        card_from_record({"name": "A", "tags": {"bad": 1}})


def test_constructing_a_card_with_raw_unknown_keys_fails_loudly_instead_of_dropping_them() -> None:
    with pytest.raises(ValueError):
        CharacterCard.model_validate({"name": "A", "some_unknown_key": 1})
