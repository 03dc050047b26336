"""The chat list in the real window: every chat of the character, opening one, rename, delete,
branch (from the list and from a message), search across characters, SillyTavern files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import shiboken6
from PySide6.QtCore import QRect, Qt
from PySide6.QtWidgets import QMessageBox

from nexus_desktop.db.store import Store
from nexus_desktop.ui.chat_list import ChatListDialog
from tests import ui_support
from tests.ui_support import LONG, banner_texts, run

# Fixtures shared by the UI tests (the real window on a temporary data dir).
core, data_dir, qt_loop, window = ui_support.core, ui_support.data_dir, ui_support.qt_loop, ui_support.window

SERAPHINA = Path(__file__).parent / "fixtures" / "st_chats" / "Seraphina - 2023-6-19 @14h 20m 11s 512ms.jsonl"


def open_list(qtbot: Any, window: Any) -> ChatListDialog:
    qtbot.mouseClick(window.top_bar.chats_button, Qt.MouseButton.LeftButton)
    dialog = window.findChild(ChatListDialog)
    assert dialog is not None and dialog.isVisible()
    qtbot.waitUntil(lambda: dialog.list.count() > 0, timeout=LONG)
    return dialog


def select(dialog: ChatListDialog, title: str) -> None:
    dialog.list.setCurrentRow(dialog.titles().index(title))


def shown_texts(window: Any) -> list[str]:
    return [widget.text for widget in window.chat_view.widgets]


def title_an_older_chat(qtbot: Any, window: Any, core: Any) -> int:
    """Give the open chat a title and a user message, then start a new chat; returns the old one."""
    view = window.chat_view
    old = view.chat_id
    core.store.add_message(old, "user", "Tell me about the nebula.")
    run(qtbot, core.history.rename(old, "Nebula talk"))
    qtbot.mouseClick(window.top_bar.new_chat_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: view.chat_id not in (None, old), timeout=LONG)
    return old


def test_new_chat_keeps_the_old_one_listed_and_opening_it_switches_back(
    qtbot: Any, window: Any, core: Any
) -> None:
    old = title_an_older_chat(qtbot, window, core)
    new = window.chat_view.chat_id

    dialog = open_list(qtbot, window)

    assert dialog.titles()[1] == "Nebula talk" and dialog.titles()[0].startswith("Chat from ")
    assert dialog.selected() is not None and dialog.selected()[1] == new  # the open chat is selected
    select(dialog, "Nebula talk")
    qtbot.mouseClick(dialog.open_button, Qt.MouseButton.LeftButton)

    qtbot.waitUntil(lambda: window.chat_view.chat_id == old, timeout=LONG)
    assert shown_texts(window)[-1] == "Tell me about the nebula."
    assert not shiboken6.isValid(dialog) or not dialog.isVisible()  # closed once the chat opened


def test_renaming_in_the_list_is_saved_and_shown(qtbot: Any, window: Any, core: Any) -> None:
    dialog = open_list(qtbot, window)
    chat_id = window.chat_view.chat_id

    box = dialog.rename_selected()
    assert box is not None
    box.setTextValue("Maiden voyage")
    box.accept()

    qtbot.waitUntil(lambda: dialog.titles() == ["Maiden voyage"], timeout=LONG)
    assert Store(core.store.path).get_chat(chat_id).title == "Maiden voyage"


def test_deleting_asks_first_and_deleting_the_open_chat_opens_another(
    qtbot: Any, window: Any, core: Any
) -> None:
    old = title_an_older_chat(qtbot, window, core)
    doomed = window.chat_view.chat_id
    dialog = open_list(qtbot, window)

    box = dialog.ask_delete()  # the open chat is selected
    assert box is not None and "and all its messages" in box.text()
    qtbot.mouseClick(box.button(QMessageBox.StandardButton.Cancel), Qt.MouseButton.LeftButton)
    assert len(dialog.titles()) == 2 and Store(core.store.path).get_chat(doomed)  # kept

    box = dialog.ask_delete()
    assert box is not None
    delete = next(button for button in box.buttons() if button.text() == "Delete")
    qtbot.mouseClick(delete, Qt.MouseButton.LeftButton)

    qtbot.waitUntil(lambda: dialog.titles() == ["Nebula talk"], timeout=LONG)
    qtbot.waitUntil(lambda: window.chat_view.chat_id == old, timeout=LONG)  # the latest one left
    assert Store(core.store.path).list_chats(window.chat_view.character.id)[0].id == old


def test_branch_from_a_message_opens_a_new_chat_up_to_it(qtbot: Any, window: Any, core: Any) -> None:
    view = window.chat_view
    original = view.chat_id
    for text in ("First question", "First answer", "Second question"):
        core.store.add_message(original, "user", text)
    run(qtbot, view.show_stored_messages())
    qtbot.waitUntil(lambda: len(view.widgets) == 4, timeout=LONG)

    qtbot.mouseClick(view.widgets[2].branch_button, Qt.MouseButton.LeftButton)

    qtbot.waitUntil(lambda: view.chat_id not in (None, original), timeout=LONG)
    qtbot.waitUntil(lambda: len(view.widgets) == 3, timeout=LONG)
    assert shown_texts(window)[1:] == ["First question", "First answer"]
    dialog = open_list(qtbot, window)
    assert dialog.titles()[0].startswith("Branch of Chat from ") and dialog.titles()[0].endswith(" #3")
    assert len(Store(core.store.path).list_messages(original)) == 4  # the original is untouched


def test_branch_from_a_message_deleted_meanwhile_says_so(qtbot: Any, window: Any, core: Any) -> None:
    view = window.chat_view
    message = core.store.add_message(view.chat_id, "user", "Soon gone")
    run(qtbot, view.show_stored_messages())
    qtbot.waitUntil(lambda: len(view.widgets) == 2, timeout=LONG)
    core.store.delete_message(message.id)  # e.g. by the CLI, before the window heard of it

    qtbot.mouseClick(view.widgets[1].branch_button, Qt.MouseButton.LeftButton)

    qtbot.waitUntil(lambda: bool(banner_texts(view.banners, "error")), timeout=LONG)
    assert "That message was deleted, so there is nothing to branch from" in banner_texts(view.banners)[0]
    assert len(Store(core.store.path).list_chats(view.character.id)) == 1


def test_branch_in_the_list_copies_the_whole_chat_and_opens_it(qtbot: Any, window: Any, core: Any) -> None:
    dialog = open_list(qtbot, window)
    original = window.chat_view.chat_id

    qtbot.mouseClick(dialog.branch_button, Qt.MouseButton.LeftButton)

    qtbot.waitUntil(lambda: window.chat_view.chat_id not in (None, original), timeout=LONG)
    assert len(Store(core.store.path).list_messages(window.chat_view.chat_id)) == 1


def test_search_finds_messages_of_other_characters_and_opens_them_at_the_message(
    qtbot: Any, window: Any, core: Any
) -> None:
    store = core.store
    wren = next(c for c in store.list_characters() if c.name.startswith("Wren"))
    chat = store.create_chat(wren.id, ["Hello."], title="Garden notes")
    notes = [store.add_message(chat.id, "user", f"Note {number}") for number in range(90)]
    found = notes[3]  # more than a page back: not among the messages a chat first shows
    store.edit_message(found.id, "The moonflower opens at night.")
    dialog = open_list(qtbot, window)

    qtbot.keyClicks(dialog.search, "moonflow")
    qtbot.waitUntil(lambda: dialog.hits != [], timeout=LONG)
    assert dialog.titles() == ["Garden notes"]
    assert dialog.list.item(0).data(Qt.ItemDataRole.UserRole + 1) == wren.name
    assert "\x02moonflower\x03" in dialog.hits[0].snippet
    dialog.open_selected()

    view = window.chat_view
    qtbot.waitUntil(lambda: view.chat_id == chat.id, timeout=LONG)
    assert window.top_bar.title.text() == wren.name and window.sidebar.current_id() == wren.id
    qtbot.waitUntil(lambda: any(w.message.id == found.id for w in view.widgets), timeout=LONG)
    widget = next(w for w in view.widgets if w.message.id == found.id)
    qtbot.waitUntil(lambda: _visible_in(view, widget), timeout=LONG)
    qtbot.wait(300)
    assert _visible_in(view, widget)  # and it stays there: the chat does not jump back to its end


def _visible_in(view: Any, widget: Any) -> bool:
    viewport = view.scroll_area.viewport()
    top_left = widget.mapTo(viewport, widget.rect().topLeft())
    return viewport.rect().intersects(QRect(top_left, widget.size()))


def test_with_a_group_open_the_list_holds_its_chats_and_search_results_name_it(
    qtbot: Any, window: Any, core: Any, tmp_path: Path
) -> None:
    from tests.test_ui_group_chats import make_group

    view = window.chat_view
    group = make_group(qtbot, window, ["Vega", "Bramble"], "list")
    first = view.chat_id
    core.store.add_message(first, "user", "Where does the moonflower grow?")
    qtbot.mouseClick(window.top_bar.new_chat_button, Qt.MouseButton.LeftButton)  # the group's second
    qtbot.waitUntil(lambda: view.chat_id not in (None, first), timeout=LONG)
    dialog = open_list(qtbot, window)

    assert dialog.windowTitle() == "Chats of Vega, Bramble"
    qtbot.waitUntil(lambda: len(dialog.titles()) == 2, timeout=LONG)
    assert {chat.id for chat in dialog.chats} == {first, view.chat_id}  # none of Vega's own
    dialog.list.setCurrentRow([chat.id for chat in dialog.chats].index(first))
    dialog.open_selected()
    qtbot.waitUntil(lambda: view.chat_id == first, timeout=LONG)
    assert view.group is not None and view.group.id == group.id

    dialog = open_list(qtbot, window)
    qtbot.keyClicks(dialog.search, "moonflower")
    qtbot.waitUntil(lambda: dialog.hits != [], timeout=LONG)
    assert dialog.list.item(0).data(Qt.ItemDataRole.UserRole + 1) == "Vega, Bramble (group)"

    file = tmp_path / "Night watch.jsonl"
    lines = [{"user_name": "Rowan", "character_name": "unused", "chat_metadata": {}}]
    lines += [
        {"name": "bramble", "is_user": False, "mes": "Ale?"},
        {"name": "Moss", "is_user": False, "mes": "Hm."},
    ]
    file.write_text("\n".join(json.dumps(line) for line in lines), encoding="utf-8")
    dialog.search.clear()
    dialog.import_files([file])  # into the open group: each line to the member it names
    qtbot.waitUntil(lambda: "Night watch" in dialog.titles(), timeout=LONG)
    assert any("of Vega, Bramble; the lines of Moss" in text for text in banner_texts(dialog.banners, "info"))
    imported = next(chat for chat in dialog.chats if chat.title == "Night watch")
    assert [m.speaker_name for m in core.store.list_messages(imported.id)] == ["Bramble", "Moss"]


def test_export_and_import_of_sillytavern_files_say_what_they_did(
    qtbot: Any, window: Any, core: Any, tmp_path: Path
) -> None:
    dialog = open_list(qtbot, window)
    out = tmp_path / "vega.jsonl"

    dialog.export_to(out)
    qtbot.waitUntil(lambda: bool(banner_texts(dialog.banners, "info")), timeout=LONG)
    assert f"Saved 1 messages to {out}" in banner_texts(dialog.banners)[0]
    assert json.loads(out.read_text(encoding="utf-8").splitlines()[0])["character_name"] == "Vega"

    dialog.import_files([SERAPHINA])
    qtbot.waitUntil(lambda: len(dialog.titles()) == 2, timeout=LONG)
    qtbot.waitUntil(lambda: any("Seraphina" in text for text in banner_texts(dialog.banners)), timeout=LONG)
    assert any(
        "with Vega: the file is for Seraphina, who is not among your characters" in text
        for text in banner_texts(dialog.banners)
    )
    assert SERAPHINA.stem in dialog.titles()


def test_a_malformed_chat_file_shows_the_line_and_imports_nothing(
    qtbot: Any, window: Any, core: Any, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"user_name":"A","character_name":"Vega","chat_metadata":{}}\n{"mes": 3}\n')
    dialog = open_list(qtbot, window)

    dialog.import_files([broken])

    qtbot.waitUntil(lambda: bool(banner_texts(dialog.banners, "error")), timeout=LONG)
    assert 'broken.jsonl, line 2: "mes" should be text' in banner_texts(dialog.banners, "error")[0]
    assert len(Store(core.store.path).list_chats(window.chat_view.character.id)) == 1


def test_the_list_follows_changes_made_elsewhere(qtbot: Any, window: Any, core: Any) -> None:
    dialog = open_list(qtbot, window)

    run(qtbot, core.history.rename(window.chat_view.chat_id, "Renamed from the core"))

    qtbot.waitUntil(lambda: dialog.titles() == ["Renamed from the core"], timeout=LONG)


def test_the_list_fits_a_small_window(qtbot: Any, window: Any) -> None:
    window.resize(800, 500)
    qtbot.waitUntil(lambda: window.width() == 800, timeout=LONG)
    dialog = open_list(qtbot, window)

    assert dialog.width() <= 800 and dialog.height() <= 500
    for button in (dialog.open_button, dialog.rename_button, dialog.branch_button, dialog.delete_button):
        assert button.width() >= button.minimumSizeHint().width(), button.text()
        assert dialog.rect().contains(QRect(button.mapTo(dialog, button.rect().topLeft()), button.size()))
        assert button.accessibleName() or button.text()
