"""The open window follows the store: what another process writes shows without reselecting,
a refused send leaves nothing and says why, and one chat's notices go when another chat opens.

The real window on a real data dir; the CLI runs as a real ``nexus`` process beside it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt

from nexus_desktop.cards.io import load_card
from nexus_desktop.chat.events import ChatEvent, HistoryTrimmed
from nexus_desktop.db.store import Store
from tests import ui_support
from tests.ui_support import LONG, banner_texts, needs_model, run, type_and_send, wait_model_ready

core, data_dir, qt_loop, window = ui_support.core, ui_support.data_dir, ui_support.qt_loop, ui_support.window

CARDS = Path(__file__).parent / "fixtures" / "cards"
APP_NOTICE = "Modules could not start (a test said so); chatting works, tools do not."


def nexus_beside(qtbot: Any, data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``nexus ARGS`` on the window's data dir, keeping the window's event loop running."""
    env = {**os.environ, "NEXUS_DATA_DIR": str(data_dir)}
    process = subprocess.Popen(
        [sys.executable, "-m", "nexus_desktop.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    qtbot.waitUntil(lambda: process.poll() is not None, timeout=LONG)
    stdout, stderr = process.communicate()
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def other_character_id(window: Any) -> int:
    shown = window.chat_view.character.id
    return next(c.id for c in window.characters if c.id != shown)


def test_a_character_imported_with_the_cli_appears_in_the_open_window(
    qtbot: Any, window: Any, data_dir: Path
) -> None:
    added = load_card(CARDS / "v2_card.png").name
    names = window.sidebar.names()
    assert added not in names
    result = nexus_beside(qtbot, data_dir, "characters", "import", str(CARDS / "v2_card.png"))
    assert result.returncode == 0, result.stderr
    qtbot.waitUntil(lambda: added in window.sidebar.names(), timeout=LONG)
    assert window.sidebar.names() == [*names, added]
    assert window.chat_view.character.name == names[0]  # the open chat stays open


@pytest.mark.model
@needs_model
def test_messages_sent_with_the_cli_appear_in_the_open_chat(qtbot: Any, window: Any, data_dir: Path) -> None:
    chat = window.chat_view
    shown = [widget.message.id for widget in chat.widgets]
    result = nexus_beside(qtbot, data_dir, "chat", "--max-tokens", "8", "Hello from the terminal")
    assert result.returncode == 0, result.stderr

    qtbot.waitUntil(lambda: len(chat.widgets) == len(shown) + 2, timeout=LONG)
    assert [widget.message.id for widget in chat.widgets[: len(shown)]] == shown  # added below
    user, reply = chat.widgets[-2:]
    assert (user.role, user.text) == ("user", "Hello from the terminal")
    assert reply.role == "assistant" and reply.text.strip()


@pytest.mark.model
@needs_model
def test_a_message_too_long_for_the_context_is_refused_and_the_model_stays_ready(
    qtbot: Any, window: Any, core: Any
) -> None:
    chat = window.chat_view
    wait_model_ready(qtbot, window)
    before = [m.id for m in core.store.list_messages(chat.chat_id)]
    too_long = "word " * 5000  # about 5000 tokens, past the 4096-token context

    chat.composer.input.setPlainText(too_long)
    qtbot.mouseClick(chat.composer.send_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(banner_texts(chat.banners, "error")), timeout=LONG)
    qtbot.waitUntil(lambda: not chat.busy, timeout=LONG)

    (error,) = banner_texts(chat.banners, "error")
    assert "Shorten the message" in error
    assert window.status_line.state == "ready", window.status_line.state_label.text()
    assert chat.composer.text == too_long  # nothing lost
    reopened = Store(core.store.path)
    try:
        assert [m.id for m in reopened.list_messages(chat.chat_id)] == before  # nothing saved
    finally:
        reopened.close()

    # The same window still chats (the control: a message that fits is sent and answered).
    chat.composer.clear()
    type_and_send(qtbot, window, "Hi!")
    qtbot.waitUntil(lambda: len(chat.widgets) >= len(before) + 2 and not chat.busy, timeout=LONG)
    assert chat.widgets[-1].role == "assistant"

    # Opening another character takes this chat's error away.
    window.sidebar.select(other_character_id(window))
    qtbot.waitUntil(lambda: not banner_texts(chat.banners, "error"), timeout=LONG)


def test_a_chats_notices_go_when_another_character_or_chat_opens(qtbot: Any, window: Any) -> None:
    chat = window.chat_view

    async def trimmed() -> AsyncIterator[ChatEvent]:
        yield HistoryTrimmed(3)

    def show_trim_notice() -> None:
        chat._start(chat._consume(trimmed(), sent_text=None, target=None))
        qtbot.waitUntil(lambda: not chat.busy, timeout=LONG)
        assert banner_texts(chat.banners, "info") == [HistoryTrimmed(3).notice]

    chat.banners.show_banner("warning", APP_NOTICE)  # the app's, not the chat's: it stays
    show_trim_notice()
    first = chat.character.id
    window.sidebar.select(other_character_id(window))
    qtbot.waitUntil(lambda: chat.character.id != first, timeout=LONG)
    assert banner_texts(chat.banners, "info") == []
    assert banner_texts(chat.banners, "warning") == [APP_NOTICE]

    show_trim_notice()
    opened = chat.chat_id
    qtbot.mouseClick(window.top_bar.new_chat_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: chat.chat_id != opened, timeout=LONG)
    assert banner_texts(chat.banners, "info") == []
    assert banner_texts(chat.banners, "warning") == [APP_NOTICE]
    run(qtbot, chat.stop_and_wait())
