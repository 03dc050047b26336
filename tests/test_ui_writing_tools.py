"""The writing tools in the real window: Continue, Impersonate, the author's note, hide from context,
their shortcuts, and their place beside the message box at 800x500."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QWidget

from nexus_desktop.db.store import Store
from tests import ui_support
from tests.ui_support import LONG, needs_model, run, wait_model_ready, wait_reply_done

# Fixtures shared by the UI tests (the real window on a temporary data dir).
core, data_dir, qt_loop, window = ui_support.core, ui_support.data_dir, ui_support.qt_loop, ui_support.window

PARTIAL = "Once upon a time, in a land far"
ALT = Qt.KeyboardModifier.AltModifier


def with_messages(qtbot: Any, window: Any, core: Any, *messages: tuple[str, str]) -> list[Any]:
    """Add (role, text) messages to the open chat and show it as stored; returns what is stored."""
    chat = window.chat_view
    for role, text in messages:
        run(qtbot, core.db.call(core.store.add_message, chat.chat_id, role, text))
    run(qtbot, chat.show_stored_messages())
    return stored(core, chat.chat_id)


def stored(core: Any, chat_id: int) -> list[Any]:
    """The chat as a second connection reads it from the file."""
    return Store(core.store.path).list_messages(chat_id)


@pytest.mark.model
@needs_model
def test_continue_writes_more_of_the_last_reply_into_its_bubble(qtbot: Any, window: Any, core: Any) -> None:
    chat = window.chat_view
    with_messages(qtbot, window, core, ("user", "Tell me a story."), ("assistant", PARTIAL))
    reply = chat.widgets[-1]
    wait_model_ready(qtbot, window)

    qtbot.mouseClick(chat.writing_bar.continue_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: chat.busy, timeout=LONG)
    wait_reply_done(qtbot, window)

    assert chat.widgets[-1] is reply  # the same bubble, not a new one
    assert reply.text.startswith(PARTIAL) and len(reply.text) > len(PARTIAL)
    assert reply.swipe_counter.text() == "1/1"
    last = stored(core, chat.chat_id)[-1]
    assert last.content == reply.message.content and len(last.swipes) == 1


@pytest.mark.model
@needs_model
def test_impersonate_puts_your_next_message_in_the_box_and_saves_nothing(
    qtbot: Any, window: Any, core: Any
) -> None:
    chat = window.chat_view
    before = len(with_messages(qtbot, window, core, ("user", "Hi."), ("assistant", "Hello, pilot.")))
    box = chat.composer.input
    qtbot.keyClicks(box, "my draft")
    wait_model_ready(qtbot, window)

    chat.writing_bar.impersonate_action.trigger()
    qtbot.waitUntil(lambda: chat.busy, timeout=LONG)
    assert box.isReadOnly()  # the model writes into it
    wait_reply_done(qtbot, window)

    assert not box.isReadOnly() and box.hasFocus()
    written = chat.composer.text
    assert written.strip() and written != "my draft"
    assert len(stored(core, chat.chat_id)) == before  # not sent, not saved
    box.undo()
    assert chat.composer.text == "my draft"  # what the box held comes back with Ctrl+Z


def test_continue_after_your_own_message_says_what_to_do(qtbot: Any, window: Any, core: Any) -> None:
    chat = window.chat_view
    before = with_messages(qtbot, window, core, ("user", "Are you there?"))
    window.activateWindow()
    chat.composer.input.setFocus()
    qtbot.waitUntil(chat.composer.input.hasFocus, timeout=LONG)

    qtbot.keyClick(chat.composer.input, Qt.Key.Key_C, ALT)

    qtbot.waitUntil(chat.composer.hint.isVisible, timeout=LONG)
    assert "The last message is yours" in chat.composer.hint.text()
    assert not chat.busy
    assert [m.content for m in stored(core, chat.chat_id)] == [m.content for m in before]


def test_hiding_a_message_dims_and_marks_it_and_is_saved_both_ways(
    qtbot: Any, window: Any, core: Any
) -> None:
    chat = window.chat_view
    with_messages(qtbot, window, core, ("user", "A secret."), ("assistant", "Kept."))
    mine = chat.widgets[-2]
    assert mine.hide_button.accessibleName() == "Hide from the prompt" and mine.hide_button.toolTip()

    qtbot.mouseClick(mine.hide_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: mine.message.hidden, timeout=LONG)
    assert mine.hidden_marker.isVisible() and mine.bubble.graphicsEffect() is not None
    assert mine.hide_button.accessibleName() == "Show to the character again"
    assert [m.hidden for m in stored(core, chat.chat_id)] == [False, True, False]

    qtbot.mouseClick(mine.hide_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not mine.message.hidden, timeout=LONG)
    assert not mine.hidden_marker.isVisible() and mine.bubble.graphicsEffect() is None
    assert not any(m.hidden for m in stored(core, chat.chat_id))


def test_the_authors_note_is_edited_from_the_chat_and_stored_with_it(
    qtbot: Any, window: Any, core: Any
) -> None:
    chat = window.chat_view
    bar = chat.writing_bar
    assert bar.note_action.text() == "Author's note…"

    bar.note_action.trigger()
    qtbot.waitUntil(lambda: chat.note_dialog is not None and chat.note_dialog.isVisible(), timeout=LONG)
    dialog = chat.note_dialog
    assert dialog.depth_box.value() == 4 and dialog.role_box.currentData() == "system"  # SillyTavern's
    dialog.editor.setPlainText("[Style: terse.]")
    dialog.depth_box.setValue(2)
    dialog.role_box.setCurrentIndex(dialog.role_box.findData("user"))
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)

    qtbot.waitUntil(lambda: bar.note_action.text() == "Author's note (on)…", timeout=LONG)
    saved = Store(core.store.path).get_chat(chat.chat_id)
    note = (saved.author_note, saved.author_note_depth, saved.author_note_role)
    assert note == ("[Style: terse.]", 2, "user")
    assert "saved" in chat.composer.hint.text()

    bar.note_action.trigger()  # opens with what is stored
    qtbot.waitUntil(lambda: chat.note_dialog is not dialog and chat.note_dialog.isVisible(), timeout=LONG)
    assert chat.note_dialog.editor.toPlainText() == "[Style: terse.]"
    chat.note_dialog.reject()


def test_the_writing_tools_fit_beside_the_message_box_at_800x500(qtbot: Any, window: Any) -> None:
    window.resize(800, 500)
    composer = window.chat_view.composer
    bar = window.chat_view.writing_bar
    qtbot.waitUntil(lambda: window.width() == 800, timeout=LONG)
    row = [window.chat_view.persona_picker, composer.input, bar.tools_button, bar.continue_button]
    row += [composer.regenerate_button, composer.send_button]

    def place(widget: QWidget) -> QRect:
        return QRect(widget.mapTo(composer.frame, widget.rect().topLeft()), widget.size())

    frame = composer.frame.rect()
    for widget in row:
        assert widget.isVisible() and frame.contains(place(widget)), widget
    for left, right in itertools.pairwise(row):
        assert place(left).right() < place(right).left(), (left, right)
    assert composer.input.width() >= 150
    for button in (bar.tools_button, bar.continue_button):
        assert button.accessibleName() and button.toolTip() and button.isEnabled()
    assert "Alt+C" in bar.continue_button.toolTip()


def test_continue_and_impersonate_are_in_the_shortcut_table(qtbot: Any, window: Any) -> None:
    from PySide6.QtGui import QShortcut

    from nexus_desktop.ui.shortcuts import SHORTCUTS

    listed = {s.label: s.action for s in SHORTCUTS}
    assert listed["Alt+C"] == "continue_reply" and listed["Alt+I"] == "impersonate"
    registered = {s.key().toString() for s in window.findChildren(QShortcut)}
    assert {QKeySequence("Alt+C").toString(), QKeySequence("Alt+I").toString()} <= registered
