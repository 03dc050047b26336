"""The generator's answer is checked before anything touches the disk: each way it can be unusable
fails with a sentence saying why, and a good answer (also one wrapped in a code fence) passes."""

from __future__ import annotations

import json

import pytest

from nexus_desktop.builder.output import FILES_SCHEMA, OutputError, answer_json, parse_files
from tests.replay_server import dice_files

NAME = "dice-roller"


def with_file(path: str, content: str = "x = 1\n") -> str:
    return answer_json({**dice_files(NAME), path: content})


def test_a_good_answer_gives_the_files_plus_the_builders_conftest() -> None:
    files = parse_files(answer_json(dice_files(NAME)), NAME).files
    assert set(files) == {*dice_files(NAME), "conftest.py"}
    assert 'origin = "generated"' in files["nexus-module.toml"]


def test_json_in_a_code_fence_is_still_read() -> None:
    fenced = f"```json\n{answer_json(dice_files(NAME))}\n```"
    assert "dice_roller/hooks.py" in parse_files(fenced, NAME).files


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("", "The answer was empty"),
        ("def roll(): return 4", "The answer is not valid JSON"),
        (json.dumps({"modules": []}), "The answer is JSON but not"),
        (json.dumps({"files": [], "notes": ""}), "The answer has no files"),
        (with_file("../escape.py"), "leaves the module folder"),
        (with_file(""), "A file in the answer has no path"),
        (with_file("/etc/cron.d/x"), "is not relative to the module folder"),
        (with_file("C:/Windows/x.py"), "is not relative to the module folder"),
        (with_file(".hidden/x.py"), "is hidden"),
        (with_file("dice_roller/fast.so"), "is native code"),
        (with_file("dice_roller/empty.py", "  \n"), "dice_roller/empty.py is empty"),
    ],
)
def test_an_unusable_answer_fails_with_the_reason(answer: str, reason: str) -> None:
    with pytest.raises(OutputError, match=reason.replace(".", r"\.")):
        parse_files(answer, NAME)


def test_a_manifest_for_another_module_or_origin_or_without_tests_is_refused() -> None:
    files = dice_files(NAME)
    other = {**files, "nexus-module.toml": files["nexus-module.toml"].replace(NAME, "other")}
    with pytest.raises(OutputError, match="is for the module 'other', not 'dice-roller'"):
        parse_files(answer_json(other), NAME)
    installed = {
        **files,
        "nexus-module.toml": files["nexus-module.toml"].replace('"generated"', '"installed"'),
    }
    with pytest.raises(OutputError, match="origin = 'installed'"):
        parse_files(answer_json(installed), NAME)
    untested = {path: text for path, text in files.items() if not path.startswith("tests/")}
    with pytest.raises(OutputError, match="test_file must name the tests file"):
        parse_files(answer_json(untested), NAME)


def test_a_manifest_without_origin_gets_generated_before_its_first_table() -> None:
    files = dice_files(NAME)
    manifest = (
        files["nexus-module.toml"].replace('origin = "generated"\n', "")
        + '\n[permissions]\nnetwork = ["a.example"]\n'
    )
    parsed = parse_files(answer_json({**files, "nexus-module.toml": manifest}), NAME).files[
        "nexus-module.toml"
    ]
    assert parsed.index('origin = "generated"') < parsed.index("[permissions]")


def test_the_schema_asks_for_the_files_only() -> None:
    assert FILES_SCHEMA["required"] == ["files"] and list(FILES_SCHEMA["properties"]) == ["files"]
    assert FILES_SCHEMA["properties"]["files"]["items"]["required"] == ["path", "content"]
