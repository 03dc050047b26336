"""The modules shipped in plugins/: found as valid, their own tests pass, and their tools work
when loaded through pluggy into the app's tool provider."""

from __future__ import annotations

import asyncio
import re
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from nexus_desktop.chat.tools import InProcessTools, ToolResult
from nexus_desktop.modules.discovery import bundled_modules_dir, discover
from nexus_desktop.modules.manifest import load_manifest
from nexus_desktop.modules.runtime.validate import validate_module
from tests.servers_http_api import WeatherApi, weather_api  # noqa: F401 (the fixture)

PLUGINS = bundled_modules_dir()
MODULES = ["dice", "notes", "system-monitor", "weather"]


def call(tools: InProcessTools, name: str, **arguments: object) -> ToolResult:
    return asyncio.run(tools.call_tool(name, dict(arguments)))


def loaded(*folders: str, **app_info: object) -> InProcessTools:
    tools = InProcessTools()
    for folder in folders:
        tools.load_folder(PLUGINS / folder, app_info=app_info)
    return tools


def test_every_bundled_module_is_found_valid_and_built_in(tmp_path: Path) -> None:
    found = {item.path.name: item for item in discover(bundled_dir=PLUGINS, user_dir=tmp_path / "none")}
    assert sorted(found) == MODULES
    for item in found.values():
        assert item.ok, item.error
        assert item.manifest is not None and item.manifest.origin == "built-in"


def test_modules_ask_only_for_what_they_use() -> None:
    access = {name: load_manifest(PLUGINS / name, bundled=True).requested_access() for name in MODULES}
    assert access == {
        "dice": [],
        "notes": [],
        "system-monitor": [
            "Read files in /proc",
            "Read files in /sys/devices/system/cpu",
            "Start other programs",
            "Run native code the app cannot inspect",
        ],
        "weather": ["Connect to api.openweathermap.org (web ports 80 and 443)", "Use your secret api_key"],
    }
    [credential] = load_manifest(PLUGINS / "weather", bundled=True).credentials
    assert "OpenWeatherMap" in credential.instructions and credential.url


@pytest.mark.parametrize("name", MODULES)
def test_each_modules_own_tests_pass_when_run_from_its_folder(name: str) -> None:
    folder = PLUGINS / name
    test_file = load_manifest(folder, bundled=True).test_file
    assert test_file is not None
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test_file],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert re.search(r"\d+ passed", done.stdout)


@pytest.mark.parametrize("name", MODULES)
def test_each_module_passes_the_sandboxed_checks_and_its_tests_in_the_sandbox(name: str) -> None:
    # The module runtime's validation: declared access only, hooks as specified, tests green
    # while the audit hook holds the module to its manifest.
    report = validate_module(PLUGINS / name, timeout=180, bundled=True)
    assert report["ok"], report["error"]
    assert report["checks"][-1]["message"].startswith("Its tests passed")


def test_the_app_offers_every_bundled_tool_beside_its_own_clock() -> None:
    tools = loaded(*MODULES)
    by_module = {tool.name: tool.module for tool in tools.tools()}
    assert by_module == {
        "nexus.clock": "nexus",
        "dice.roll": "dice",
        "dice.coin": "dice",
        "dice.pick": "dice",
        "notes.remember": "notes",
        "notes.recall": "notes",
        "notes.forget": "notes",
        "system-monitor.status": "system-monitor",
        "system-monitor.top": "system-monitor",
        "weather.current": "weather",
    }


def test_a_dice_roll_through_the_provider_returns_the_dice_and_total() -> None:
    result = call(loaded("dice"), "dice.roll", notation="3d6+2")
    assert result.ok and result.error is None
    match = re.fullmatch(r"3d6\+2: \[(\d), (\d), (\d)\] \+ 2 = (\d+)", result.content)
    assert match and sum(int(g) for g in match.groups()[:3]) + 2 == int(match.group(4))


def test_arguments_that_break_the_schema_are_refused_before_the_tool_runs() -> None:
    tools = loaded("dice")
    result = call(tools, "dice.roll", sides=6)
    assert not result.ok
    assert result.error == (
        "dice.roll was given wrong arguments: 'notation' is missing; 'sides' is not an argument of this tool."
    )
    assert "must be at most 100" in (call(tools, "dice.coin", count=1000).error or "")


def test_a_tool_that_raises_gives_its_sentence_as_the_error() -> None:
    result = call(loaded("dice"), "dice.roll", notation="banana")
    assert (
        not result.ok and result.error == "'banana' is not dice notation; write it like 2d6, d20+3 or 4d6kh3."
    )


def test_an_unknown_tool_is_an_error_not_an_exception() -> None:
    result = call(loaded(), "dice.roll", notation="2d6")
    assert not result.ok and "There is no tool called dice.roll" in (result.error or "")


def test_notes_are_kept_in_the_modules_own_data_folder(private_data_dir: Path) -> None:
    tools = loaded("notes")
    assert call(tools, "notes.remember", text="My sister is called Ana.", tags=["family"]).ok
    assert call(tools, "notes.recall", query="sister").content == "#1: My sister is called Ana. [family]"
    database = private_data_dir / "module-data" / "notes" / "notes.sqlite3"
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT text, tags FROM notes").fetchall() == [
            ("My sister is called Ana.", "family")
        ]
    assert call(tools, "notes.forget", id=1).content == "Forgot note #1: My sister is called Ana."
    assert not call(tools, "notes.forget", id=1).ok


def test_system_status_reports_this_machine() -> None:
    result = call(loaded("system-monitor"), "system-monitor.status")
    assert result.ok
    assert re.search(r"^CPU: \d+% busy", result.content, re.M) and re.search(r"^RAM: ", result.content, re.M)
    assert re.search(r"^GPU( \d+)?: ", result.content, re.M)


def test_weather_with_the_right_key_comes_from_the_service(weather_api: WeatherApi) -> None:  # noqa: F811
    tools = loaded(
        "weather", credentials={"api_key": weather_api.key}, config={"base_url": weather_api.base_url}
    )
    result = call(tools, "weather.current", city="Paris")
    assert result.ok, result.error
    assert result.content == "Paris, FR: clear sky, 21.0°C (feels 20.5°C), humidity 40%, wind 3.6 m/s"
    assert weather_api.requests[-1] == {"q": "Paris", "appid": weather_api.key, "units": "metric"}


def test_weather_with_a_wrong_key_says_the_key_was_refused(weather_api: WeatherApi) -> None:  # noqa: F811
    tools = loaded(
        "weather", credentials={"api_key": "not-the-key"}, config={"base_url": weather_api.base_url}
    )
    result = call(tools, "weather.current", city="Paris")
    assert not result.ok
    assert (result.error or "").startswith("The weather service refused the API key; check the key")


def test_weather_when_the_service_is_down_says_it_cannot_be_reached() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    result = call(
        loaded("weather", credentials={"api_key": "k"}, config={"base_url": base}),
        "weather.current",
        city="Paris",
    )
    assert not result.ok
    assert f"The weather service at 127.0.0.1:{port} cannot be reached" in (result.error or "")
