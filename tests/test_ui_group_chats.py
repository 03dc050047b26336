"""Group chats in the real window: made from the sidebar, listed with the characters, opened like a
chat; each reply under its writer's name; mute and a deleted member shown in the group bar; the
members' greetings are not replies; reopened at the next start."""

from __future__ import annotations

from typing import Any

import pytest
from PySide6.QtCore import Qt

from tests.ui_support import (
    LONG,
    banner_texts,
    close_window,
    needs_model,
    run,
    type_and_send,
    wait_model_ready,
    wait_reply_done,
)


def make_group(qtbot: Any, window: Any, names: list[str], order: str) -> Any:
    """Press the sidebar's "New group chat", tick ``names``, pick ``order`` and press Create."""
    from nexus_desktop.ui.group_dialog import GroupDialog

    qtbot.mouseClick(window.sidebar.new_group_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.findChild(GroupDialog) is not None, timeout=LONG)
    dialog = window.findChild(GroupDialog)
    assert dialog.isVisible() and dialog.members.accessibleName() == "Members"
    dialog.tick(names)
    dialog.order_box.setCurrentIndex(dialog.order_box.findData(order))
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    view = window.chat_view
    qtbot.waitUntil(lambda: view.group is not None and not dialog.isVisible(), timeout=LONG)
    return view.group


def group_rows(window: Any) -> list[str]:
    from nexus_desktop.ui.sidebar import GROUP_ROLE

    items = [window.sidebar.list.item(row) for row in range(window.sidebar.list.count())]
    return [item.text() for item in items if item.data(GROUP_ROLE) is not None]


def test_fewer_than_two_members_is_refused_in_the_dialog_and_nothing_is_made(
    qtbot: Any, window: Any, core: Any
) -> None:
    from nexus_desktop.ui.group_dialog import GroupDialog

    dialog = window.group_chats.open_dialog(None)
    assert isinstance(dialog, GroupDialog)
    dialog.name_edit.setText("Just Vega")
    dialog.tick(["Vega"])
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(banner_texts(dialog.banners, "error")), timeout=LONG)
    assert "at least 2 characters" in banner_texts(dialog.banners, "error")[0]
    assert dialog.isVisible() and dialog.name_edit.text() == "Just Vega"  # nothing typed is lost
    assert run(qtbot, core.groups.all()) == []

    dialog.tick(["Vega", "Bramble"])  # positive control: two members make the group
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.chat_view.group is not None, timeout=LONG)
    assert group_rows(window) == ["Just Vega"]


@pytest.mark.model
@needs_model
def test_a_group_made_in_the_window_answers_with_two_named_bubbles(
    qtbot: Any, window: Any, core: Any
) -> None:
    view = window.chat_view
    group = make_group(qtbot, window, ["Vega", "Bramble"], "list")
    assert group.name == "Vega, Bramble" and group_rows(window) == ["Vega, Bramble"]
    assert (
        window.top_bar.title.text() == "Vega, Bramble"
        and window.top_bar.subtitle.text() == "Group · 2 members"
    )
    bar = window.group_chats.bar
    assert bar.isVisible() and [chip.member.name for chip in bar.chips] == ["Vega", "Bramble"]
    assert [w.speaker for w in view.widgets] == ["Vega", "Bramble"]  # each member's greeting

    wait_model_ready(qtbot, window)
    before = len(view.widgets)
    type_and_send(qtbot, window, "Hello, you two!")
    wait_reply_done(qtbot, window)
    qtbot.waitUntil(lambda: not view.busy, timeout=LONG)
    new = view.widgets[before:]
    assert [(w.role, w.speaker) for w in new] == [
        ("user", "Tester"),
        ("assistant", "Vega"),
        ("assistant", "Bramble"),
    ]
    assert all(w.text.strip() for w in new)
    stored = core.store.list_messages(view.chat_id)
    assert [m.speaker_name for m in stored[-2:]] == ["Vega", "Bramble"]


def test_mute_and_a_deleted_member_show_in_the_group_bar(qtbot: Any, window: Any, core: Any) -> None:
    view = window.chat_view
    make_group(qtbot, window, ["Vega", "Bramble", "Wren Calloway"], "natural")
    bar = window.group_chats.bar
    vega = bar.chip("Vega")
    assert vega.mute_button.accessibleName() == "Mute Vega" and vega.speak_button.toolTip()
    qtbot.mouseClick(vega.mute_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bar.chip("Vega") is not None and bar.chip("Vega").member.muted, timeout=LONG)
    assert bar.chip("Vega").mute_button.accessibleName() == "Unmute Vega"
    group_id = view.group.id
    assert [m.muted for m in run(qtbot, core.groups.get(group_id)).members] == [True, False, False]

    wren = core.store.find_character("Wren Calloway")
    run(qtbot, core.characters.delete(wren.id))  # deleted elsewhere: the open group follows
    qtbot.waitUntil(
        lambda: bar.chip("Wren Calloway") is not None and not bar.chip("Wren Calloway").member.present,
        timeout=LONG,
    )
    assert bar.chip("Wren Calloway").name_label.text() == "Wren Calloway (deleted)"
    assert view.group is not None and view.group.id == group_id  # the group stays open

    run(qtbot, window.group_chats.open_group(group_id))  # opened again: it says who is gone
    assert any("Wren Calloway was deleted" in text for text in banner_texts(view.banners, "info"))
    assert [w.speaker for w in view.widgets] == [
        "Vega",
        "Bramble",
        "Wren Calloway",
    ]  # its greeting keeps its name


def test_the_members_greetings_show_no_rating_or_regenerate_but_a_reply_does(
    qtbot: Any, window: Any, core: Any
) -> None:
    view = window.chat_view
    make_group(qtbot, window, ["Vega", "Bramble"], "list")
    greetings = list(view.widgets)
    assert [w.speaker for w in greetings] == ["Vega", "Bramble"]
    for widget in greetings:  # Bramble's too, though it is not the chat's first message
        assert widget.rate_up_button.isHidden() and widget.rate_down_button.isHidden()
    last = greetings[-1].message  # the chat's last message: its alternatives can be swiped through
    run(qtbot, core.chat.show_swipe(last.id, len(last.swipes) - 1))
    qtbot.waitUntil(lambda: view.widgets[-1].message.swipe_index == len(last.swipes) - 1, timeout=LONG)
    arrow = view.widgets[-1].swipe_right
    assert arrow.isHidden() or not arrow.isEnabled()  # but past the last one, nothing is written anew

    bramble = core.store.find_character("Bramble")
    core.store.add_message(view.chat_id, "user", "Ale, please.")
    core.store.add_message(
        view.chat_id, "assistant", "Coming up!", {"tokens_per_second": 9.0}, speaker=(bramble.id, "Bramble")
    )
    run(qtbot, view.show_stored_messages())
    reply = view.widgets[-1]  # positive control: a model's reply can be rated and written again
    assert reply.text == "Coming up!" and not reply.rate_up_button.isHidden()
    assert not reply.swipe_right.isHidden() and reply.swipe_right.isEnabled()
    assert reply.swipe_right.toolTip() == "Generate another reply"


def open_window(qtbot: Any, core: Any) -> Any:
    from nexus_desktop.ui.main_window import MainWindow

    window = MainWindow()
    window.resize(1100, 700)
    window.show()
    run(qtbot, window.attach(core, load_model=False))
    return window


def test_the_next_start_reopens_the_group_chat_open_last_or_the_character_opened_after_it(
    qtbot: Any, core: Any
) -> None:
    from nexus_desktop.core import AppCore

    first = open_window(qtbot, core)
    try:
        group = make_group(qtbot, first, ["Vega", "Bramble"], "list")
        qtbot.waitUntil(lambda: core.settings.last_group_id == group.id, timeout=LONG)
    finally:
        close_window(qtbot, first, core)

    restarted = AppCore()
    second = open_window(qtbot, restarted)
    try:
        view = second.chat_view
        assert view.group is not None and view.group.id == group.id and view.character is None
        assert second.top_bar.title.text() == group.name and second.group_chats.bar.isVisible()
        assert [w.speaker for w in view.widgets] == ["Vega", "Bramble"]
        vega = restarted.store.find_character("Vega")
        second.sidebar.select(vega.id)  # then a character's chat: that is what opens next time
        qtbot.waitUntil(lambda: view.character is not None and view.character.id == vega.id, timeout=LONG)
        qtbot.waitUntil(lambda: restarted.settings.last_group_id is None, timeout=LONG)
    finally:
        close_window(qtbot, second, restarted)

    again = AppCore()
    third = open_window(qtbot, again)
    try:
        assert third.chat_view.group is None and third.chat_view.character.name == "Vega"
    finally:
        close_window(qtbot, third, again)
