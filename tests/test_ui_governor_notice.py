"""Governor notices in the chat: when a character's limits stop a reply, the chat says so as a
warning above the composer, and what was already written stays on screen and saved."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from PySide6.QtCore import Qt

from nexus_desktop.chat.events import ChatEvent, GovernorNotice, ReplySaved, ReplyToken
from nexus_desktop.control.governor import budget_cut_text, budget_spent_text
from nexus_desktop.control.policy import Policy
from nexus_desktop.db.store import Store
from nexus_desktop.llm.contract import ChatOutput, ReplyStats
from tests import ui_support
from tests.ui_support import LONG, banner_texts, needs_model, type_and_send, wait_model_ready, wait_reply_done

core, data_dir, qt_loop, window = ui_support.core, ui_support.data_dir, ui_support.qt_loop, ui_support.window

PARTIAL = "Aye, Captain. The reactor is"


def test_a_reply_cut_short_by_its_budget_keeps_its_text_and_shows_the_notice(
    qtbot: Any, window: Any, core: Any
) -> None:
    """The events in the order the reply pipeline sends them for a reply the budget cut short."""
    chat = window.chat_view
    before = len(chat.widgets)
    notice = budget_cut_text("Vega")

    async def reply() -> AsyncIterator[ChatEvent]:
        yield ReplyToken("Aye, Captain.")
        yield ReplyToken(" The reactor is")
        await asyncio.sleep(0.1)  # a paint or two while streaming
        stats = {"finish_reason": "length", "budget_cut": True, "context_used": 40, "context_size": 2048}
        saved = await core.db.call(core.store.add_message, chat.chat_id, "assistant", PARTIAL, stats)
        yield ReplySaved(saved, ChatOutput(PARTIAL, ReplyStats(36, 4, 0.1, 0.05, 2048, "length")))
        yield GovernorNotice("budget_reached", notice)

    chat._start(chat._consume(reply(), sent_text=None, target=None))
    wait_reply_done(qtbot, window)

    assert banner_texts(chat.banners, "warning") == [notice]
    assert chat.banners.isVisible()
    assert len(chat.widgets) == before + 1
    shown = chat.widgets[-1]
    assert shown.text == PARTIAL and shown.message.id is not None
    assert "cut short: daily token budget" in shown.stats_label.text()

    # The next reply starts without the last one's notice.
    async def nothing() -> AsyncIterator[ChatEvent]:
        return
        yield  # an async generator that sends no events

    chat._start(chat._consume(nothing(), sent_text=None, target=None))
    wait_reply_done(qtbot, window)
    assert banner_texts(chat.banners, "warning") == []


@pytest.mark.model
@needs_model
def test_a_spent_budget_says_so_and_keeps_the_reply_that_was_there(
    qtbot: Any, window: Any, core: Any
) -> None:
    chat = window.chat_view
    wait_model_ready(qtbot, window)
    type_and_send(qtbot, window, "Give me a nickname.")
    wait_reply_done(qtbot, window)
    reply = chat.widgets[-1]
    first = reply.message.content
    assert reply.role == "assistant" and first

    character_id = chat.character.id
    core.chat.governor.set_policy(character_id, Policy(daily_token_budget=1))  # spent by any prompt
    qtbot.mouseClick(chat.composer.regenerate_button, Qt.MouseButton.LeftButton)
    wait_reply_done(qtbot, window)

    assert banner_texts(chat.banners, "warning") == [budget_spent_text("Vega")]
    assert chat.widgets[-1] is reply and reply.text == first
    stored = Store(core.store.path)
    assert stored.get_message(reply.message.id).swipes == [first]
    stored.close()

    # Positive control: without the limit the same click writes a second alternative.
    core.chat.governor.set_policy(character_id, None)
    qtbot.mouseClick(chat.composer.regenerate_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: chat.busy, timeout=LONG)
    wait_reply_done(qtbot, window)
    assert banner_texts(chat.banners, "warning") == []
    assert len(reply.message.swipes) == 2
