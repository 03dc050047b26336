"""Keyboard shortcuts, pressed on the real window: Esc, Up, Left/Right, Ctrl+Enter, Ctrl+K and F1, the
help dialog built from the table they are registered from, and Tab through sidebar, chat and box."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import QApplication

from nexus_desktop.db.store import Store
from tests.ui_support import LONG, needs_model, run, type_and_send, wait_model_ready, wait_reply_done

CTRL = Qt.KeyboardModifier.ControlModifier


def focus_composer(qtbot: Any, window: Any) -> Any:
    window.activateWindow()
    box = window.chat_view.composer.input
    box.setFocus()
    qtbot.waitUntil(box.hasFocus, timeout=LONG)
    return box


def reopen_with(qtbot: Any, window: Any, core: Any, *messages: tuple[str, str]) -> None:
    """Add (role, text) messages to the open chat and show it again, as if written earlier."""
    chat = window.chat_view
    for role, text in messages:
        run(qtbot, core.db.call(core.store.add_message, chat.chat_id, role, text))
    run(qtbot, chat.open_character(chat.character))


@needs_model
def test_esc_stops_the_reply_being_written(qtbot: Any, window: Any, core: Any) -> None:
    chat = window.chat_view
    core.settings = core.settings.model_copy(update={"max_tokens": 2000})
    wait_model_ready(qtbot, window)
    type_and_send(qtbot, window, "Write a very long story about a space battle, with many chapters.")
    qtbot.waitUntil(lambda: chat.flushes > 0, timeout=LONG)

    qtbot.keyClick(focus_composer(qtbot, window), Qt.Key.Key_Escape)
    wait_reply_done(qtbot, window)
    reply = chat.widgets[-1]
    assert reply.message.stats is not None and reply.message.stats["finish_reason"] == "cancelled"
    assert reply.message.stats["completion_tokens"] < 2000


def test_up_in_the_empty_message_box_edits_the_last_message_and_only_then(
    qtbot: Any, window: Any, core: Any
) -> None:
    chat = window.chat_view
    reopen_with(
        qtbot, window, core, ("user", "First question"), ("assistant", "An answer"), ("user", "Second")
    )
    last_mine = chat.widgets[-1]
    box = focus_composer(qtbot, window)

    box.setPlainText("draft")  # with text in the box, Up is the box's own key: nothing opens
    qtbot.keyClick(box, Qt.Key.Key_Up)
    assert not any(widget.editing for widget in chat.widgets)

    box.clear()
    qtbot.keyClick(box, Qt.Key.Key_Up)
    assert last_mine.editing and last_mine.editor.toPlainText() == "Second"
    assert not chat.widgets[-3].editing  # the earlier message of the user's stays as it was
    qtbot.keyClick(last_mine.editor, Qt.Key.Key_Escape)  # Esc still cancels the edit (no reply runs)
    assert not last_mine.editing


def test_left_and_right_swipe_the_last_reply_when_the_box_is_empty_or_not_focused(
    qtbot: Any, window: Any, core: Any
) -> None:
    chat = window.chat_view
    reopen_with(qtbot, window, core, ("user", "Pick a colour"), ("assistant", "Teal"))
    reply = chat.widgets[-1]
    run(qtbot, core.db.call(core.store.add_swipe, reply.message_id, "Amber"))
    run(qtbot, chat.open_character(chat.character))
    reply = chat.widgets[-1]
    assert reply.swipe_counter.text() == "2/2"
    box = focus_composer(qtbot, window)

    box.setPlainText("typing")  # arrows move the cursor in a box with text
    box.moveCursor(QTextCursor.MoveOperation.End)
    qtbot.keyClick(box, Qt.Key.Key_Left)
    assert reply.swipe_counter.text() == "2/2" and box.textCursor().position() == len("typing") - 1

    box.clear()
    qtbot.keyClick(box, Qt.Key.Key_Left)
    qtbot.waitUntil(lambda: reply.swipe_counter.text() == "1/2", timeout=LONG)
    assert reply.text == "Teal"
    assert Store(core.store.path).get_message(reply.message_id).swipe_index == 0

    window.sidebar.list.setFocus()  # the box does not have the focus: the arrows still swipe
    qtbot.keyClick(window.sidebar.list, Qt.Key.Key_Right)
    qtbot.waitUntil(lambda: reply.swipe_counter.text() == "2/2", timeout=LONG)
    assert reply.text == "Amber"


def test_ctrl_enter_regenerates_but_saves_a_message_being_edited(qtbot: Any, window: Any, core: Any) -> None:
    chat = window.chat_view
    reopen_with(qtbot, window, core, ("user", "Hello"), ("assistant", "Hi there"))
    mine = chat.widgets[-2]
    mine.start_edit()
    mine.editor.setPlainText("Hello again")
    qtbot.keyClick(mine.editor, Qt.Key.Key_Return, CTRL)  # the editor's own Ctrl+Enter: save
    qtbot.waitUntil(lambda: mine.message.content == "Hello again", timeout=LONG)
    assert not chat.busy

    qtbot.keyClick(focus_composer(qtbot, window), Qt.Key.Key_Return, CTRL)
    assert chat.busy and chat.composer.send_button.text() == "Stop"  # a regenerate started
    assert chat.composer.text == ""  # Ctrl+Enter never sends what is in the box
    chat.stop()
    wait_reply_done(qtbot, window)


def test_ctrl_k_takes_the_focus_to_the_character_search_from_any_page(qtbot: Any, window: Any) -> None:
    from PySide6.QtWidgets import QLabel

    window.add_page("training", "Training", "chart", QLabel("Training"))
    window.show_page("training")
    window.activateWindow()
    qtbot.keyClick(window, Qt.Key.Key_K, CTRL)
    assert window.current_page() == "chat"
    qtbot.waitUntil(window.sidebar.search.hasFocus, timeout=LONG)


def test_f1_and_the_help_button_list_every_shortcut_the_window_has(qtbot: Any, window: Any) -> None:
    from PySide6.QtGui import QKeySequence, QShortcut

    from nexus_desktop.ui.shortcuts import SHORTCUTS, TYPING_KEYS

    window.activateWindow()
    qtbot.keyClick(focus_composer(qtbot, window), Qt.Key.Key_F1)
    dialog = window.shortcuts.dialog
    assert dialog is not None and dialog.isVisible()
    assert dialog.rows == [(s.label, s.does) for s in SHORTCUTS] + list(TYPING_KEYS)
    listed = {QKeySequence(keys).toString() for s in SHORTCUTS for keys in s.keys}
    registered = {s.key().toString() for s in window.findChildren(QShortcut)}
    assert registered and registered <= listed  # nothing is bound that the dialog does not list
    assert {"Esc", "Up", "Left", "Right", "Ctrl+Return", "Ctrl+K", "F1"} <= registered

    dialog.close()
    qtbot.mouseClick(window.top_bar.help_button, Qt.MouseButton.LeftButton)
    assert dialog.isVisible()
    dialog.close()


def test_tab_goes_from_the_sidebar_through_the_chat_to_the_message_box(qtbot: Any, window: Any) -> None:
    window.activateWindow()
    window.sidebar.search.setFocus()
    qtbot.waitUntil(window.sidebar.search.hasFocus, timeout=LONG)
    visited = []
    for _ in range(80):
        focus = QApplication.focusWidget()
        visited.append(focus)
        if focus is window.chat_view.composer.input:
            break
        qtbot.keyClick(focus, Qt.Key.Key_Tab)
    assert visited[-1] is window.chat_view.composer.input, [type(w).__name__ for w in visited]

    def area(widget: Any) -> str:
        if window.sidebar.isAncestorOf(widget):
            return "sidebar"
        return "composer" if window.chat_view.composer.isAncestorOf(widget) else "chat"

    order = [area(w) for w in visited]
    assert order[0] == "sidebar" and window.sidebar.list in visited
    assert order == sorted(order, key=["sidebar", "chat", "composer"].index)  # never back again


@needs_model
def test_a_swipe_past_the_last_alternative_writes_a_new_one_from_the_keyboard(
    qtbot: Any, window: Any
) -> None:
    chat = window.chat_view
    wait_model_ready(qtbot, window)
    type_and_send(qtbot, window, "Give me a nickname.")
    wait_reply_done(qtbot, window)
    reply = chat.widgets[-1]
    assert reply.swipe_counter.text() == "1/1"
    qtbot.keyClick(focus_composer(qtbot, window), Qt.Key.Key_Right)
    qtbot.waitUntil(lambda: chat.busy, timeout=LONG)
    wait_reply_done(qtbot, window)
    assert reply.swipe_counter.text() == "2/2"
