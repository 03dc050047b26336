"""``nexus game-mode on|off|status``: a real ``nexus`` process on a real SQLite file."""

from __future__ import annotations

from pathlib import Path

from nexus_desktop.db.store import Store
from tests.test_cli import assert_one_line_error, nexus


def saved_switch(data_dir: Path) -> bool:
    store = Store(data_dir / "nexus.db")
    try:
        return store.load_settings().game_mode_manual
    finally:
        store.close()


def test_on_then_status_says_game_mode_is_on_and_off_turns_it_off(private_data_dir: Path) -> None:
    turned_on = nexus("game-mode", "on", data_dir=private_data_dir)
    assert turned_on.returncode == 0, turned_on.stderr
    assert (
        turned_on.stdout.strip() == "Game mode is on: a running NEXUS unloads its model within a few seconds."
    )
    assert saved_switch(private_data_dir) is True

    status = nexus("game-mode", "status", data_dir=private_data_dir)
    assert status.returncode == 0, status.stderr
    assert status.stdout.splitlines()[0] == "Game mode: on (Switch: on)"

    turned_off = nexus("game-mode", "off", data_dir=private_data_dir)
    assert turned_off.returncode == 0
    assert saved_switch(private_data_dir) is False
    status = nexus("game-mode", "status", data_dir=private_data_dir)
    assert status.stdout.splitlines()[0] == "Game mode: off"


def test_status_lists_each_probe_and_why_it_cannot_tell(private_data_dir: Path) -> None:
    status = nexus("game-mode", "status", data_dir=private_data_dir)
    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()
    assert lines[:5] == [
        "Game mode: off",
        "Detect games: on",
        "While playing: unload the model",
        "Keep-alive: unload the model after 5 min unused",
        "Probes:",
    ]
    assert "  Switch: off" in lines
    assert "  NVML: unavailable: no NVIDIA driver (NVML Shared Library Not Found)" in lines  # no GPU here
    assert "  Full-screen Direct3D: unavailable: Windows only" in lines


def test_status_follows_the_settings_it_reports(private_data_dir: Path) -> None:
    store = Store(private_data_dir / "nexus.db")
    settings = store.load_settings().model_copy(
        update={"game_mode_action": "cpu", "keep_alive_minutes": -1, "game_mode_detect": False}
    )
    store.save_settings(settings)
    store.close()
    turned_on = nexus("game-mode", "on", data_dir=private_data_dir)
    assert "keeps chatting on the CPU" in turned_on.stdout
    lines = nexus("game-mode", "status", data_dir=private_data_dir).stdout.splitlines()
    assert "While playing: chat on the CPU" in lines
    assert "Keep-alive: keep the model loaded" in lines
    assert "Detect games: off" in lines


def test_an_unusable_data_folder_is_one_clear_line(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "data"
    not_a_folder.write_text("a file where the data folder should be")
    result = nexus("game-mode", "on", data_dir=not_a_folder)
    assert result.returncode == 1
    assert_one_line_error(result, "nexus: error:")
    assert not_a_folder.read_text() == "a file where the data folder should be"  # untouched
