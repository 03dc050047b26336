"""The character editor's Limits page: a policy typed there is what the governor reads; one that
cannot hold is refused with the fields named and nothing saved; empty fields mean no limits."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from sqlmodel import Session, select

from nexus_desktop.control.governor import Governor
from nexus_desktop.control.policy import Policy
from nexus_desktop.control.tables import CharacterPolicy
from nexus_desktop.db.store import Store
from nexus_desktop.ui.character_editor import CharacterEditor
from tests import ui_support
from tests.ui_support import LONG, banner_texts

core, data_dir, qt_loop, window = ui_support.core, ui_support.data_dir, ui_support.qt_loop, ui_support.window


def open_editor(qtbot: Any, window: Any) -> CharacterEditor:
    editor = window.open_character_editor(window.character(window.sidebar.current_id()))
    qtbot.waitUntil(editor.limits.isEnabled, timeout=LONG)  # the stored policy has been loaded
    editor.tabs.setCurrentWidget(editor.limits)
    return editor


def stored_policy(core: Any, character_id: int) -> Policy:
    store = Store(core.store.path)
    try:
        return Governor(store.engine).policy_for(character_id)
    finally:
        store.close()


def policy_rows(core: Any) -> list[CharacterPolicy]:
    store = Store(core.store.path)
    try:
        with Session(store.engine) as session:
            return list(session.exec(select(CharacterPolicy)))
    finally:
        store.close()


def test_limits_set_in_the_editor_are_saved_and_shown_again(qtbot: Any, window: Any, core: Any) -> None:
    character_id = window.sidebar.current_id()
    editor = open_editor(qtbot, window)
    limits = editor.limits
    limits.numbers["max_reply_tokens"].setText("200")
    limits.numbers["tool_rounds_per_reply"].setText("2")
    limits.numbers["daily_token_budget"].setText("5000")
    limits.tools.set_expanded(True)
    limits.cooldowns.add_row("dice.roll", "60")
    limits.prerequisites.add_row("notes.save", "notes.recall, dice.roll")
    assert "5,000 tokens a day" in limits.summary.text()
    qtbot.mouseClick(editor.save_button, Qt.MouseButton.LeftButton)

    expected = Policy(
        max_reply_tokens=200,
        tool_rounds_per_reply=2,
        daily_token_budget=5000,
        tool_cooldowns={"dice.roll": 60.0},
        tool_prerequisites={"notes.save": ["notes.recall", "dice.roll"]},
    )
    qtbot.waitUntil(lambda: stored_policy(core, character_id) == expected, timeout=LONG)
    assert not editor.isVisible()

    again = open_editor(qtbot, window)
    assert again.limits.numbers["daily_token_budget"].text() == "5000"
    assert again.limits.numbers["daily_tool_calls"].text() == ""  # unset stays unset
    assert again.limits.cooldowns.rows() == [("dice.roll", "60")]
    assert again.limits.tools.expanded
    again.reject()


def test_a_contradictory_policy_is_refused_naming_the_fields_and_nothing_is_saved(
    qtbot: Any, window: Any, core: Any
) -> None:
    character = window.character(window.sidebar.current_id())
    editor = open_editor(qtbot, window)
    editor.fields["description"].setPlainText("Edited together with impossible limits.")
    editor.limits.numbers["max_reply_tokens"].setText("9000")
    editor.limits.numbers["daily_token_budget"].setText("100")
    qtbot.mouseClick(editor.save_button, Qt.MouseButton.LeftButton)

    assert editor.isVisible()
    (error,) = banner_texts(editor.banners, "error")
    assert "max_reply_tokens" in error and "daily_token_budget" in error
    assert editor.tabs.currentWidget() is editor.limits
    # Nothing typed is lost, and nothing reached the database.
    assert editor.fields["description"].toPlainText() == "Edited together with impossible limits."
    assert editor.limits.numbers["max_reply_tokens"].text() == "9000"
    store = Store(core.store.path)
    assert store.get_character(character.id).card["description"] == character.card["description"]
    store.close()
    assert policy_rows(core) == []

    # Positive control: the same form with a budget that fits saves both the card and the limits.
    editor.limits.numbers["daily_token_budget"].setText("10000")
    qtbot.mouseClick(editor.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: stored_policy(core, character.id).daily_token_budget == 10000, timeout=LONG)
    store = Store(core.store.path)
    assert store.get_character(character.id).card["description"] == "Edited together with impossible limits."
    store.close()


def test_clearing_every_limit_saves_no_limits(qtbot: Any, window: Any, core: Any) -> None:
    character_id = window.sidebar.current_id()
    Governor(core.store.engine).set_policy(
        character_id, Policy(daily_tool_calls=3, tool_cooldowns={"dice.roll": 5})
    )
    editor = open_editor(qtbot, window)
    assert editor.limits.numbers["daily_tool_calls"].text() == "3"
    editor.limits.numbers["daily_tool_calls"].clear()
    editor.limits.cooldowns.set_rows([])
    assert editor.limits.summary.text().startswith("No limits")
    qtbot.mouseClick(editor.save_button, Qt.MouseButton.LeftButton)

    qtbot.waitUntil(lambda: not editor.isVisible(), timeout=LONG)
    qtbot.waitUntil(lambda: policy_rows(core) == [], timeout=LONG)
    assert stored_policy(core, character_id).empty


def test_a_new_character_saved_with_empty_limits_gets_no_policy_row(
    qtbot: Any, window: Any, core: Any
) -> None:
    qtbot.mouseClick(window.sidebar.new_button, Qt.MouseButton.LeftButton)
    editor = window.findChild(CharacterEditor)
    assert editor is not None and editor.limits.isEnabled()
    editor.name_edit.setText("Unlimited")
    qtbot.mouseClick(editor.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "Unlimited" in window.sidebar.names(), timeout=LONG)
    assert policy_rows(core) == []


def test_unreadable_stored_limits_are_reported_and_can_be_set_again(
    qtbot: Any, window: Any, core: Any
) -> None:
    character_id = window.sidebar.current_id()
    with Session(core.store.engine) as session:  # as an older or hand-edited database may hold
        session.add(CharacterPolicy(character_id=character_id, policy={"max_reply_tokens": "lots"}))
        session.commit()
    editor = open_editor(qtbot, window)
    (warning,) = banner_texts(editor.banners, "warning")
    assert "could not be read" in warning and "max_reply_tokens" in warning
    editor.limits.numbers["daily_tool_calls"].setText("4")
    qtbot.mouseClick(editor.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not editor.isVisible(), timeout=LONG)
    qtbot.waitUntil(lambda: policy_rows(core)[0].policy == {"daily_tool_calls": 4}, timeout=LONG)
    assert stored_policy(core, character_id) == Policy(daily_tool_calls=4)
