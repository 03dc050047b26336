"""The bundled characters: always there, in a fixed order, complete and small."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from nexus_desktop.cards.defaults import default_card_files, default_cards, default_characters_dir
from nexus_desktop.cards.io import load_card
from nexus_desktop.cards.lorebook import activate_entries
from nexus_desktop.cards.model import CharacterCard


def test_three_default_characters_ship_with_vega_first() -> None:
    names = [character.card.name for character in default_cards()]

    assert names == ["Vega", "Bramble", "Wren Calloway"]


def test_default_characters_unpack_as_card_and_avatar() -> None:
    for card, avatar in default_cards():
        assert isinstance(card, CharacterCard)
        assert avatar is not None
        with Image.open(io.BytesIO(avatar)) as image:
            assert image.size == (400, 400)


def test_each_default_character_is_complete() -> None:
    for card, _ in default_cards():
        assert card.description and card.personality and card.scenario and card.first_mes and card.mes_example
        assert len(card.alternate_greetings) >= 2
        assert card.tags and card.creator == "NEXUS Desktop"


def test_each_default_card_file_is_a_small_png() -> None:
    files = default_card_files()

    assert [path.suffix for path in files] == [".png"] * 3
    for path in files:
        assert path.stat().st_size < 200 * 1024


def test_vegas_lorebook_recalls_her_old_ship_and_where_it_worked() -> None:
    vega = default_cards()[0].card

    active = activate_entries(vega.character_book, ["Do you miss your old ship?"])

    assert any("Marrow Lantern" in entry.content for entry in active)
    assert any(entry.content.startswith("Kessler Reach") for entry in active)  # found by recursion


@pytest.mark.parametrize(
    "source", sorted((default_characters_dir() / "src").glob("*.json")), ids=lambda p: p.stem
)
def test_default_png_matches_its_editable_source(source: Path) -> None:
    """If this fails, run: .venv/bin/python tests/fixtures/make_cards.py --defaults"""
    png_card = load_card(default_characters_dir() / f"{source.stem}.png")
    source_card = load_card(source)

    assert png_card.model_dump(exclude={"spec", "spec_version"}) == source_card.model_dump(
        exclude={"spec", "spec_version"}
    )


def test_a_damaged_default_file_is_skipped_not_fatal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    characters = tmp_path / "characters"
    characters.mkdir()
    (characters / "01-broken.png").write_bytes(b"not a png")
    good = default_characters_dir() / "02-bramble.png"
    (characters / "02-bramble.png").write_bytes(good.read_bytes())
    monkeypatch.setattr("nexus_desktop.paths.resources_dir", lambda: tmp_path)

    names = [character.card.name for character in default_cards()]

    assert names == ["Bramble"]
    assert "01-broken.png" in caplog.text
