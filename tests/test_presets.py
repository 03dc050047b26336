"""Sampler presets: SillyTavern's preset files (made by hand in tests/fixtures/st_presets, following
its Text Completion and KoboldAI formats) become named presets, bad files are refused with the key
named, and presets are kept in the settings across restarts."""

from __future__ import annotations

from pathlib import Path

import pytest

from nexus_desktop.chat.presets import PresetFileError, clean_name, free_name, import_sillytavern_preset
from nexus_desktop.db.store import Store
from nexus_desktop.settings import Samplers, Settings

PRESETS = Path(__file__).parent / "fixtures" / "st_presets"
BASE = Samplers(max_tokens=321)


def test_a_text_completion_preset_sets_every_sampler_it_names() -> None:
    imported = import_sillytavern_preset(PRESETS / "Midnight Drift.json", BASE)

    assert imported.name == "Midnight Drift"
    assert imported.samplers == Samplers(
        temperature=1.25, top_p=0.92, top_k=0, typical_p=0.95, min_p=0.08, repeat_penalty=1.07,
        frequency_penalty=0.15, presence_penalty=0.3, dry_multiplier=0.8, dry_base=1.6,
        dry_allowed_length=3, mirostat_mode=0, mirostat_tau=5, mirostat_eta=0.1, seed=1234,
        max_tokens=321,  # not in the file: kept from what was in use
    )  # fmt: skip
    assert imported.ignored[:4] == ("temperature_last", "top_a", "tfs", "epsilon_cutoff")
    assert {"dry_sequence_breakers", "dry_penalty_last_n", "sampler_order", "xtc_probability"} <= set(
        imported.ignored
    )
    assert not {"temp", "top_p", "rep_pen", "dry_base", "seed"} & set(imported.ignored)


def test_a_koboldai_preset_with_its_own_spellings_imports_too() -> None:
    imported = import_sillytavern_preset(PRESETS / "Kobold Lantern.json", BASE)

    samplers = imported.samplers
    assert (samplers.temperature, samplers.top_k, samplers.typical_p) == (0.72, 60, 0.97)
    assert (samplers.mirostat_mode, samplers.mirostat_tau, samplers.mirostat_eta) == (2, 4.5, 0.12)
    assert samplers.max_tokens == 250  # genamt
    assert "max_length" in imported.ignored  # the context size stays a model setting
    assert samplers.min_p == BASE.min_p


@pytest.mark.parametrize(
    ("file", "message"),
    [
        ("broken-json.json", r"broken-json\.json is not valid JSON .*export the preset again"),
        ("wrong-type.json", r'"top_p" should be a number but is "0\.9"; fix it in the file'),
        ("boolean-temperature.json", r'"temp" should be a number but is true'),
        ("out-of-range.json", r'"min_p" is 1\.5, which is not allowed \(.*less than or equal to 1'),
        ("fractional-top-k.json", r'"top_k" is 40\.5, which is not allowed \(.*integer'),
        ("not-an-object.json", r"holds a JSON list, not a preset object"),
        ("instruct-template.json", r"none of the sampler settings .*\(temp, top_p, rep_pen"),
        ("missing.json", r"missing\.json could not be read"),
    ],
)
def test_a_malformed_preset_file_is_refused_naming_what_is_wrong(file: str, message: str) -> None:
    with pytest.raises(PresetFileError, match=message):
        import_sillytavern_preset(PRESETS / file, BASE)


def test_a_preset_file_over_a_megabyte_is_refused_unread(tmp_path: Path) -> None:
    huge = tmp_path / "huge.json"
    huge.write_text('{"temp": 0.5, "pad": "' + "x" * 1_100_000 + '"}')

    with pytest.raises(PresetFileError, match="over 1 MB"):
        import_sillytavern_preset(huge, BASE)


def test_names_are_tidied_and_never_clash() -> None:
    assert clean_name("  Midnight\n  Drift  ") == "Midnight Drift"
    assert len(clean_name("x" * 200)) == 64
    assert free_name("Creative", {"Creative", "Creative (2)"}) == "Creative (3)"
    assert free_name("Creative", {"Other"}) == "Creative"
    assert len(free_name("y" * 64, {"y" * 64})) == 64


def test_presets_and_the_template_choice_survive_a_restart(tmp_path: Path) -> None:
    imported = import_sillytavern_preset(PRESETS / "Midnight Drift.json", BASE)
    settings = Settings(
        sampler_presets={imported.name: imported.samplers},
        sampler_preset=imported.name,
        chat_template="llama3",
    ).model_copy(update=imported.samplers.model_dump())
    store = Store(tmp_path / "nexus.db")
    try:
        store.save_settings(settings)
    finally:
        store.close()

    reopened = Store(tmp_path / "nexus.db")
    try:
        loaded = reopened.load_settings()
    finally:
        reopened.close()

    assert loaded.sampler_presets == {"Midnight Drift": imported.samplers}
    assert loaded.samplers() == imported.samplers
    assert (loaded.sampler_preset, loaded.chat_template) == ("Midnight Drift", "llama3")
