"""The `nexus` command works headless and fails with one clear line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def nexus(*args: str, data_dir: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NEXUS_DATA_DIR": str(data_dir)}
    env.pop("NEXUS_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "nexus_desktop.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_characters_list_shows_the_default_characters(private_data_dir: Path) -> None:
    result = nexus("characters", "list", data_dir=private_data_dir)
    assert result.returncode == 0, result.stderr
    names = [line.split()[0] for line in result.stdout.splitlines()]
    assert names == ["Vega", "Bramble", "Wren"]


def test_export_then_import_round_trips_a_card_as_png(private_data_dir: Path, tmp_path: Path) -> None:
    card = tmp_path / "vega.png"
    exported = nexus("characters", "export", "vega", str(card), "--spec", "v3", data_dir=private_data_dir)
    assert exported.returncode == 0, exported.stderr
    assert card.read_bytes().startswith(b"\x89PNG")

    other = tmp_path / "other-data"
    imported = nexus("characters", "import", str(card), data_dir=other)
    assert imported.returncode == 0, imported.stderr
    assert "Imported Vega" in imported.stdout
    listed = nexus("characters", "list", data_dir=other).stdout.splitlines()
    assert [line.split()[0] for line in listed].count("Vega") == 2  # the bundled one and the copy


def test_importing_a_png_without_a_card_is_one_clear_line(private_data_dir: Path, tmp_path: Path) -> None:
    from PIL import Image

    picture = tmp_path / "holiday.png"
    Image.new("RGB", (8, 8), "teal").save(picture)
    result = nexus("characters", "import", str(picture), data_dir=private_data_dir)
    assert_one_line_error(result, "no character card")


def test_unknown_character_lists_the_known_ones(private_data_dir: Path) -> None:
    result = nexus("chat", "--character", "Nobody", "hi", data_dir=private_data_dir)
    assert_one_line_error(result, "No character named 'Nobody'", "Vega")


def test_chat_with_a_missing_model_file_says_what_to_do(private_data_dir: Path, tmp_path: Path) -> None:
    result = nexus("chat", "--model", str(tmp_path / "gone.gguf"), "hi", data_dir=private_data_dir)
    assert_one_line_error(result, "not found", "pick another file with --model")


def test_chat_with_a_broken_model_file_fails_and_saves_nothing(
    private_data_dir: Path, tmp_path: Path
) -> None:
    from nexus_desktop.db.store import Store

    broken = tmp_path / "bad.gguf"
    broken.write_bytes(bytes(range(7, 40)))  # a few bytes that are not a GGUF model
    result = nexus("chat", "--model", str(broken), "hi", data_dir=private_data_dir)
    assert_one_line_error(result, "bad.gguf")
    store = Store(private_data_dir / "nexus.db")
    try:
        characters = store.list_characters()
        assert characters  # the database was opened: the control that it is the one the CLI used
        assert all(not store.list_chats(c.id or 0) for c in characters)  # no chat, no "hi"
    finally:
        store.close()


def test_chat_with_an_empty_message_is_refused(private_data_dir: Path) -> None:
    result = nexus("chat", "   ", data_dir=private_data_dir)
    assert_one_line_error(result, "Type a message")


def test_models_list_shows_the_bundled_model_and_the_models_folder(
    private_data_dir: Path, smollm2_path: Path
) -> None:
    folder = private_data_dir / "models"
    folder.mkdir(exist_ok=True)
    shutil.copy(smollm2_path, folder / "copy-of-smol.gguf")
    result = nexus("models", "list", data_dir=private_data_dir)
    assert result.returncode == 0, result.stderr
    assert smollm2_path.name in result.stdout and "bundled" in result.stdout
    assert "copy-of-smol.gguf" in result.stdout


def test_doctor_reports_python_qt_llama_keyring_and_data_dir(private_data_dir: Path) -> None:
    result = nexus("doctor", data_dir=private_data_dir)
    assert result.returncode == 0, result.stderr
    report = dict(line.split(":", 1) for line in result.stdout.splitlines())
    assert set(report) >= {"Python", "Qt platform", "llama.cpp", "Keyring", "Data dir"}
    assert report["Data dir"].strip() == str(private_data_dir)
    assert "offscreen" in report["Qt platform"]
    assert "CPU" in report["llama.cpp"] or "GPU" in report["llama.cpp"]
    assert "error" not in result.stdout


@pytest.mark.model
def test_chat_streams_a_reply_from_the_real_model_and_continues_the_chat(private_data_dir: Path) -> None:
    first = nexus("chat", "--max-tokens", "16", "--stats", "Hello Vega!", data_dir=private_data_dir)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip()
    assert "tok/s" in first.stderr

    second = nexus("chat", "--max-tokens", "8", "And now?", data_dir=private_data_dir)
    assert second.returncode == 0, second.stderr
    from nexus_desktop.db.store import Store

    store = Store(private_data_dir / "nexus.db")
    [chat] = store.list_chats(store.list_characters()[0].id or 0)
    contents = [m.content for m in store.list_messages(chat.id or 0)]
    assert len(contents) == 5  # greeting, two user messages, two replies
    assert (contents[1], contents[3]) == ("Hello Vega!", "And now?")
