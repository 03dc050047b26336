"""A module's manifest is read strictly: every rejection names the field and says what to do."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from nexus_desktop.modules.errors import ManifestError
from nexus_desktop.modules.manifest import MAX_MANIFEST_BYTES, load_manifest
from tests.hostile.modules import manifest_data, write_module


def rejection(folder: Path) -> ManifestError:
    with pytest.raises(ManifestError) as caught:
        load_manifest(folder)
    return caught.value


def test_a_valid_toml_manifest_is_read_with_its_permissions_and_credentials(tmp_path: Path) -> None:
    folder = write_module(tmp_path / "weather", "weather")
    (folder / "nexus-module.json").unlink()
    (folder / "tests").mkdir()
    (folder / "tests" / "test_weather.py").write_text("def test_nothing():\n    pass\n")
    (folder / "nexus-module.toml").write_text(
        """
name = "weather"
version = "1.2"
display_name = "Weather"
author = "Ada"
entry_point = "weather.main:plugin"
hooks = ["register_tools", "register_dashboard_panels"]
dependencies = ["httpx>=0.27"]
test_file = "tests/test_weather.py"

[permissions]
network = ["api.open-meteo.com", "*.example.org:8443"]
subprocess = true
filesystem = { read = ["~/Documents"], write = [] }

[[credentials]]
name = "WEATHER_KEY"
instructions = "Create a free key at the provider's site."
url = "https://example.org/keys"
"""
    )
    manifest = load_manifest(folder)
    assert manifest.version == "1.2"
    assert manifest.origin == "installed"
    assert manifest.requested_access() == [
        "Connect to api.open-meteo.com (web ports 80 and 443)",
        "Connect to any host under example.org (port 8443; not this PC or your home network)",
        "Read files in ~/Documents",
        "Start other programs",
        "Use your secret WEATHER_KEY",
        "Install the Python package httpx>=0.27",
    ]


def test_display_name_defaults_to_the_name(tmp_path: Path) -> None:
    folder = write_module(tmp_path / "m", display_name=None)
    assert load_manifest(folder).display_name == "dice-roller"


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"version": "1.x"}, "version", "not a valid version; use a PEP 440 version"),
        ({"name": "Dice Roller"}, "name", "not a valid module name; use lowercase letters"),
        ({"name": "../evil"}, "name", "not a valid module name"),
        ({"entry_point": None}, "entry_point", "is missing; name the object that holds your hooks"),
        ({"entry_point": "dice_roller/main.py"}, "entry_point", "not of the form package.module:object"),
        ({"entry_point": "missing.main:plugin"}, "entry_point", "names a module that is not in the folder"),
        ({"hooks": ["register_tools", "register_tools"]}, "hooks", "listed twice; list each hook once"),
        ({"hooks": ["steal_everything"]}, "hooks", "not a NEXUS hook"),
        ({"origin": "built-in"}, "origin", 'only modules shipped with NEXUS may say "built-in"'),
        ({"dependencies": ["evil @ https://x.example/evil.whl"]}, "dependencies", "installs from a URL"),
        ({"permissions": {"network": ["https://api.x.com/v1"]}}, "permissions.network", "not a host name"),
        ({"permissions": {"filesystem": {"read": ["Documents"]}}}, "permissions.filesystem.read", "absolute"),
        ({"permissions": {"subprocess": "yes please"}}, "permissions.subprocess", "valid boolean"),
        ({"colour": "red"}, "colour", "not a manifest field; remove it or check its spelling"),
    ],
)
def test_a_bad_field_is_rejected_with_its_name_and_the_fix(
    tmp_path: Path, fields: dict[str, Any], field: str, words: str
) -> None:
    error = rejection(write_module(tmp_path / "m", **fields))
    assert error.field == field
    assert f"field '{field}'" in str(error)
    assert words in str(error)
    assert str(error).endswith(".")


def test_test_file_that_climbs_out_of_the_folder_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "outside.py").write_text("")
    error = rejection(write_module(tmp_path / "m", test_file="../outside.py"))
    assert error.field == "test_file"
    assert "uses '..' to leave the module folder; keep every file inside it" in str(error)


def test_test_file_given_as_an_absolute_path_is_rejected(tmp_path: Path) -> None:
    error = rejection(write_module(tmp_path / "m", test_file="/etc/hostname"))
    assert error.field == "test_file"
    assert "absolute path '/etc/hostname'; use a path relative to the module folder" in str(error)


def test_entry_point_that_is_a_link_to_a_file_outside_is_rejected(tmp_path: Path) -> None:
    evil = tmp_path / "evil.py"
    evil.write_text("import os\n")
    folder = write_module(tmp_path / "m")
    main = folder / "dice_roller" / "main.py"
    main.unlink()
    os.symlink(evil, main)
    error = rejection(folder)
    assert error.field == "entry_point"
    assert f"is a link to '{evil}', outside the module folder" in str(error)


def test_a_10_mb_manifest_is_refused_by_size_before_it_is_parsed(tmp_path: Path) -> None:
    folder = write_module(tmp_path / "m")
    # Not even valid JSON: the size check must come first, so the message is about size.
    (folder / "nexus-module.json").write_bytes(b"{" * (10 * 1024 * 1024))
    error = rejection(folder)
    assert str(error) == (
        "nexus-module.json is 10,240 KB, over the 64 KB limit for a manifest; "
        "keep only the module's description in it."
    )


def test_a_manifest_just_under_the_limit_is_read(tmp_path: Path) -> None:
    data = manifest_data()
    data["description"] = "x" * 100
    text = json.dumps(data)
    text += " " * (MAX_MANIFEST_BYTES - len(text))
    folder = write_module(tmp_path / "m")
    (folder / "nexus-module.json").write_text(text)
    assert load_manifest(folder).name == "dice-roller"


def test_a_deeply_nested_manifest_is_refused_not_crashing(tmp_path: Path) -> None:
    folder = write_module(tmp_path / "m")
    (folder / "nexus-module.json").write_text("[" * 30000 + "]" * 30000)
    assert "nested too deeply" in str(rejection(folder))


def test_a_manifest_that_is_a_link_is_refused(tmp_path: Path) -> None:
    folder = write_module(tmp_path / "m")
    real = tmp_path / "elsewhere.json"
    (folder / "nexus-module.json").rename(real)
    os.symlink(real, folder / "nexus-module.json")
    assert str(rejection(folder)) == "nexus-module.json is a symbolic link; replace it with the file itself."


def test_a_folder_without_a_manifest_says_where_to_put_one(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert str(rejection(tmp_path / "empty")) == (
        "empty has no nexus-module.toml; add one at the top of the module folder."
    )


def test_two_manifests_in_one_folder_are_refused(tmp_path: Path) -> None:
    folder = write_module(tmp_path / "m")
    (folder / "nexus-module.toml").write_text('name = "other"\n')
    assert "has both nexus-module.toml and nexus-module.json; keep only one" in str(rejection(folder))


def test_a_manifest_from_a_newer_app_is_read_as_far_as_it_is_understood(tmp_path: Path) -> None:
    folder = write_module(tmp_path / "m", schema_version=2, sandbox_profile="strict")
    manifest = load_manifest(folder)
    assert manifest.name == "dice-roller"
    assert manifest.schema_version == 2


def test_every_problem_is_kept_and_the_first_is_the_message(tmp_path: Path) -> None:
    error = rejection(write_module(tmp_path / "m", version="nope", category="weapons"))
    assert len(error.problems) == 2
    assert str(error) == error.problems[0]
    assert any("field 'category'" in problem for problem in error.problems)
