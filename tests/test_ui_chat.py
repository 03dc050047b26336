"""The chat in the real window: streaming replies, Stop, Regenerate and swipes, edit, delete, hints."""

from __future__ import annotations

import re
from typing import Any

import pytest
from PySide6.QtCore import Qt

from nexus_desktop.db.store import Store
from tests import ui_support
from tests.ui_support import LONG, needs_model, run, type_and_send, wait_model_ready, wait_reply_done

# Fixtures shared by the UI tests (the real window on a temporary data dir).
core, data_dir, qt_loop, window = ui_support.core, ui_support.data_dir, ui_support.qt_loop, ui_support.window

STATS = re.compile(r"\d+\.\d tok/s · \d+ / \d+ ctx")


def reopen(core: Any) -> Store:
    """A second connection to the same database file, as a restarted app would open it."""
    return Store(core.store.path)


@pytest.mark.model
@needs_model
def test_sending_a_message_streams_a_reply_with_its_stats(qtbot: Any, window: Any, core: Any) -> None:
    chat = window.chat_view
    before = len(chat.widgets)
    wait_model_ready(qtbot, window)

    type_and_send(qtbot, window, "Hello! Tell me about your ship.")

    qtbot.waitUntil(lambda: len(chat.widgets) == before + 2, timeout=LONG)
    assert chat.widgets[before].role == "user"
    assert chat.widgets[before].text == "Hello! Tell me about your ship."
    assert chat.composer.text == ""  # the text moved into the chat once it was saved
    assert chat.composer.send_button.text() == "Stop"
    wait_reply_done(qtbot, window)

    reply = chat.widgets[-1]
    assert reply.role == "assistant" and reply.text.strip()
    assert chat.flushes >= 1
    assert STATS.search(reply.stats_label.text()), reply.stats_label.text()
    assert reply.stats_label.isVisible()
    assert chat.composer.send_button.text() == "Send"
    stored = reopen(core).list_messages(chat.chat_id)
    assert [m.role for m in stored[-2:]] == ["user", "assistant"]
    assert stored[-1].content == reply.message.content


@pytest.mark.model
@needs_model
def test_stop_ends_the_reply_early_and_keeps_what_was_written(qtbot: Any, window: Any, core: Any) -> None:
    chat = window.chat_view
    core.settings = core.settings.model_copy(update={"max_tokens": 2000})
    wait_model_ready(qtbot, window)

    type_and_send(qtbot, window, "Write a very long story about a space battle, with many chapters.")
    qtbot.waitUntil(lambda: chat.flushes > 0, timeout=LONG)
    qtbot.mouseClick(chat.composer.send_button, Qt.MouseButton.LeftButton)  # it reads "Stop" now
    wait_reply_done(qtbot, window)

    reply = chat.widgets[-1]
    assert reply.role == "assistant"
    assert reply.message.stats is not None and reply.message.stats["finish_reason"] == "cancelled"
    assert reply.message.stats["completion_tokens"] < 2000
    assert "stopped" in reply.stats_label.text()
    assert chat.composer.send_button.text() == "Send"
    assert reopen(core).list_messages(chat.chat_id)[-1].content == reply.message.content


@pytest.mark.model
@needs_model
def test_regenerate_adds_a_swipe_that_the_arrows_browse(qtbot: Any, window: Any, core: Any) -> None:
    chat = window.chat_view
    wait_model_ready(qtbot, window)
    type_and_send(qtbot, window, "Give me a nickname.")
    wait_reply_done(qtbot, window)
    reply = chat.widgets[-1]
    first_text = reply.message.content
    assert reply.swipe_counter.text() == "1/1" and reply.swipe_right.isEnabled()

    qtbot.mouseClick(chat.composer.regenerate_button, Qt.MouseButton.LeftButton)
    wait_reply_done(qtbot, window)

    assert chat.widgets[-1] is reply
    assert len(reply.message.swipes) == 2
    assert reply.swipe_counter.text() == "2/2"
    assert reply.message.swipes[0] == first_text

    qtbot.mouseClick(reply.swipe_left, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: reply.swipe_counter.text() == "1/2", timeout=LONG)
    assert reply.message.content == first_text
    assert not reply.swipe_left.isEnabled()
    assert reopen(core).get_message(reply.message_id).swipe_index == 0

    qtbot.mouseClick(reply.swipe_right, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: reply.swipe_counter.text() == "2/2", timeout=LONG)

    # Past the last alternative, the right arrow writes a third one.
    qtbot.mouseClick(reply.swipe_right, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: chat.busy, timeout=LONG)
    wait_reply_done(qtbot, window)
    assert reply.swipe_counter.text() == "3/3"
    assert len(reopen(core).get_message(reply.message_id).swipes) == 3


def test_editing_a_message_inline_is_saved(qtbot: Any, window: Any, core: Any) -> None:
    chat = window.chat_view
    greeting = chat.widgets[0]
    qtbot.mouseClick(greeting.edit_button, Qt.MouseButton.LeftButton)
    assert greeting.editing
    greeting.editor.setPlainText("*waves* Edited hello, {{user}}!")
    qtbot.mouseClick(greeting.edit_save_button, Qt.MouseButton.LeftButton)

    qtbot.waitUntil(lambda: greeting.message.content == "*waves* Edited hello, {{user}}!", timeout=LONG)
    assert not greeting.editing
    assert greeting.text == "*waves* Edited hello, Tester!"  # macros are shown filled in
    assert reopen(core).get_message(greeting.message_id).content == "*waves* Edited hello, {{user}}!"


def test_cancelling_an_edit_changes_nothing(qtbot: Any, window: Any, core: Any) -> None:
    greeting = window.chat_view.widgets[0]
    original = greeting.message.content
    qtbot.mouseClick(greeting.edit_button, Qt.MouseButton.LeftButton)
    greeting.editor.setPlainText("not this")
    qtbot.mouseClick(greeting.edit_cancel_button, Qt.MouseButton.LeftButton)
    assert not greeting.editing
    assert reopen(core).get_message(greeting.message_id).content == original


def test_deleting_a_message_asks_first_and_is_saved(qtbot: Any, window: Any, core: Any) -> None:
    chat = window.chat_view
    greeting = chat.widgets[0]
    message_id = greeting.message_id
    qtbot.mouseClick(greeting.delete_button, Qt.MouseButton.LeftButton)
    assert greeting.delete_row.isVisible()

    qtbot.mouseClick(greeting.delete_no_button, Qt.MouseButton.LeftButton)
    assert not greeting.delete_row.isVisible() and greeting in chat.widgets

    qtbot.mouseClick(greeting.delete_button, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(greeting.delete_yes_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: greeting not in chat.widgets, timeout=LONG)
    assert all(m.id != message_id for m in reopen(core).list_messages(chat.chat_id))


def test_an_empty_message_shows_a_hint_and_sends_nothing(qtbot: Any, window: Any, core: Any) -> None:
    chat = window.chat_view
    count = len(chat.widgets)
    chat.composer.input.setFocus()
    qtbot.keyClicks(chat.composer.input, "   ")
    qtbot.keyClick(chat.composer.input, Qt.Key.Key_Return)

    assert chat.composer.hint.isVisible()
    assert "Type a message" in chat.composer.hint.text()
    assert not chat.busy
    assert len(chat.widgets) == count
    assert len(reopen(core).list_messages(chat.chat_id)) == count

    qtbot.keyClicks(chat.composer.input, "x")
    assert not chat.composer.hint.isVisible()  # typing clears the hint


def test_shift_enter_adds_a_line_instead_of_sending(qtbot: Any, window: Any) -> None:
    chat = window.chat_view
    chat.composer.input.setFocus()
    qtbot.keyClicks(chat.composer.input, "line one")
    qtbot.keyClick(chat.composer.input, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    qtbot.keyClicks(chat.composer.input, "line two")
    assert chat.composer.text == "line one\nline two"
    assert not chat.busy


def test_the_message_box_lights_up_while_it_has_the_focus(qtbot: Any, window: Any) -> None:
    composer = window.chat_view.composer
    window.activateWindow()
    composer.input.setFocus()
    qtbot.waitUntil(lambda: composer.frame.property("focused") is True, timeout=10_000)
    window.sidebar.search.setFocus()
    qtbot.waitUntil(lambda: composer.frame.property("focused") is False, timeout=10_000)


def test_new_chat_starts_again_from_the_greeting(qtbot: Any, window: Any, core: Any) -> None:
    chat = window.chat_view
    first_chat = chat.chat_id
    qtbot.mouseClick(window.top_bar.new_chat_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: chat.chat_id != first_chat, timeout=LONG)
    assert [w.role for w in chat.widgets] == ["assistant"]
    assert len(reopen(core).list_chats(chat.character.id)) == 2


def test_a_long_chat_opens_with_the_newest_messages_and_pages_back_a_few_at_a_time(
    qtbot: Any, window: Any, core: Any
) -> None:
    chat = window.chat_view
    for i in range(130):
        core.store.add_message(chat.chat_id, "user" if i % 2 else "assistant", f"message {i}")
    run(qtbot, chat.open_character(chat.character))

    assert len(chat.widgets) == 60
    assert chat.widgets[-1].text == "message 129"
    assert chat.earlier_button.isVisible() and "60 earlier" in chat.earlier_button.text()

    qtbot.mouseClick(chat.earlier_button, Qt.MouseButton.LeftButton)
    # The page comes in over several turns of the event loop (as scrolling up brings messages),
    # never 60 widgets in one go: the window stays responsive meanwhile.
    assert chat.widgets[0].text == "message 70"
    qtbot.waitUntil(lambda: chat.widgets[0].text != "message 70", timeout=LONG)
    assert chat.widgets[0].message.position > 11
    qtbot.waitUntil(lambda: chat.widgets[0].message.position <= 11, timeout=LONG)
    page_start = next(w for w in chat.widgets if w.text == "message 10")
    qtbot.waitUntil(lambda: not chat.history._timer.isActive(), timeout=LONG)
    viewport = chat.scroll_area.viewport()
    top = page_start.mapTo(viewport, page_start.rect().topLeft()).y()
    assert 0 <= top < viewport.height()  # the page asked for is what the chat shows
    if chat.earlier_button.isVisible():
        qtbot.mouseClick(chat.earlier_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: chat.widgets[0].message.position == 0, timeout=LONG)  # the greeting
    qtbot.waitUntil(lambda: not chat.earlier_button.isVisible(), timeout=LONG)
    positions = [w.message.position for w in chat.widgets]
    assert positions == list(range(positions[0], positions[0] + len(positions)))  # in order, none missing
    assert len(positions) <= 60  # the newest give their widgets back; scrolling down brings them


@pytest.mark.model
@needs_model
def test_rating_a_reply_marks_it_and_is_saved(qtbot: Any, window: Any, core: Any) -> None:
    chat = window.chat_view
    wait_model_ready(qtbot, window)
    type_and_send(qtbot, window, "Rate this.")
    wait_reply_done(qtbot, window)
    reply = chat.widgets[-1]
    assert reply.rate_up_button.isVisible() and not reply.rate_up_button.isChecked()

    qtbot.mouseClick(reply.rate_down_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: reply.rate_down_button.isChecked(), timeout=LONG)
    assert not reply.rate_up_button.isChecked()
    assert reopen(core).get_message(reply.message_id).stats["rating"] == -1

    qtbot.mouseClick(reply.rate_up_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: reply.rate_up_button.isChecked(), timeout=LONG)
    assert reopen(core).get_message(reply.message_id).stats["rating"] == 1


@pytest.mark.model
@needs_model
def test_a_tool_command_shows_its_result_between_message_and_reply(
    qtbot: Any, window: Any, core: Any
) -> None:
    chat = window.chat_view
    run(qtbot, core.start_modules(watch=False))
    wait_model_ready(qtbot, window)
    before = len(chat.widgets)
    type_and_send(qtbot, window, "/roll 2d6")
    wait_reply_done(qtbot, window)

    roles = [w.role for w in chat.widgets[before:]]
    assert roles == ["user", "tool", "assistant"], roles
    tool = chat.widgets[before + 1]
    assert "roll" in tool.label.text()
    assert [m.role for m in reopen(core).list_messages(chat.chat_id)[-3:]] == roles


def test_a_tool_call_the_router_chose_asks_once_whether_it_was_right(
    qtbot: Any, window: Any, core: Any
) -> None:
    import json
    import sqlite3

    from nexus_desktop.ui.ops import wait_for_running_ops

    chat = window.chat_view
    run(qtbot, wait_for_running_ops())  # the chat the window opened on its own has loaded
    chat_id = chat.chat_id
    # A routed call as the chat service saves it (routing itself needs a trained router adapter).
    core.store.add_message(chat_id, "user", "what do you remember about me?")
    saved = core.store.add_message(
        chat_id,
        "tool",
        "dice.roll → 4",
        {
            "tool": "dice.roll",
            "arguments": {"notation": "1d6"},
            "via": "router",
            "ok": True,
            "result": "4",
            "error": None,
            "seconds": 0.01,
            "route": {"text": "what do you remember about me?", "label": "roll_dice"},
        },
    )
    run(qtbot, chat.open_character(chat.character))
    tool = chat._widget_for(saved.id)
    assert tool is not None and tool.role == "tool" and tool.route_row.isVisible()
    assert "Was it right?" in tool.route_label.text()
    assert "Roll dice" not in [action.text() for action in tool.route_menu.actions()]

    next(a for a in tool.route_menu.actions() if a.text() == "Recall notes").trigger()
    db = reopen(core)
    qtbot.waitUntil(lambda: "verdict" in db.get_message(saved.id).stats["route"], timeout=LONG)
    run(qtbot, wait_for_running_ops())
    tool = chat._widget_for(saved.id)
    assert "should have been: Recall notes" in tool.route_label.text()
    assert not tool.route_right_button.isVisible() and not tool.route_wrong_button.isVisible()
    route = db.get_message(saved.id).stats["route"]
    assert (route["verdict"], route["corrected_label"]) == ("wrong", "recall_note")

    assert core.collector.flush(30)
    conn = sqlite3.connect(core.store.path)
    rows = conn.execute("SELECT signal, payload FROM training_example WHERE dataset = 'router'").fetchall()
    conn.close()
    assert [(signal, json.loads(payload)) for signal, payload in rows] == [
        ("route_corrected", {"text": "what do you remember about me?", "label": "recall_note"})
    ]
