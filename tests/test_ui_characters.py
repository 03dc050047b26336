"""Characters in the real window: create and edit in the editor, import, export, delete."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from nexus_desktop.db.store import Store
from nexus_desktop.ui.character_editor import CharacterEditor
from tests import ui_support
from tests.ui_support import LONG, banner_texts

# Fixtures shared by the UI tests (the real window on a temporary data dir).
core, data_dir, qt_loop, window = ui_support.core, ui_support.data_dir, ui_support.qt_loop, ui_support.window

CARDS = Path(__file__).parent / "fixtures" / "cards"


def open_new_editor(qtbot: Any, window: Any) -> CharacterEditor:
    qtbot.mouseClick(window.sidebar.new_button, Qt.MouseButton.LeftButton)
    editor = window.findChild(CharacterEditor)
    assert editor is not None and editor.isVisible()
    return editor


def test_a_character_made_in_the_editor_appears_in_the_sidebar_and_opens(
    qtbot: Any, window: Any, core: Any
) -> None:
    editor = open_new_editor(qtbot, window)
    editor.name_edit.setText("Nova")
    editor.tags_edit.setText("space, pilot")
    editor.fields["description"].setPlainText("{{char}} is a reckless starfighter pilot.")
    editor.fields["first_mes"].setPlainText("*salutes* Ready when you are, {{user}}.")
    editor.greetings.add_greeting("Another day, another dogfight.")
    editor.lorebook.add_entry({"keys": ["Comet"], "content": "The Comet is Nova's ship."})
    qtbot.mouseClick(editor.save_button, Qt.MouseButton.LeftButton)

    sidebar, chat = window.sidebar, window.chat_view
    qtbot.waitUntil(lambda: "Nova" in sidebar.names(), timeout=LONG)
    qtbot.waitUntil(lambda: chat.character is not None and chat.character.name == "Nova", timeout=LONG)
    assert not editor.isVisible()
    assert window.top_bar.title.text() == "Nova"
    greeting = chat.widgets[0]
    assert greeting.text == "*salutes* Ready when you are, Tester."
    assert greeting.swipe_counter.text() == "1/2"  # the alternate greeting is a swipe

    stored = Store(core.store.path).find_character("Nova")
    assert stored is not None
    assert stored.card["tags"] == ["space", "pilot"]
    assert stored.card["character_book"]["entries"][0]["keys"] == ["Comet"]


def test_saving_a_character_without_a_name_says_what_to_fix(qtbot: Any, window: Any, core: Any) -> None:
    count = len(window.sidebar.names())
    editor = open_new_editor(qtbot, window)
    editor.fields["description"].setPlainText("Nameless.")
    qtbot.mouseClick(editor.save_button, Qt.MouseButton.LeftButton)

    assert editor.isVisible()
    assert any("name" in text for text in banner_texts(editor.banners, "error"))
    assert len(Store(core.store.path).list_characters()) == count
    editor.reject()


def test_editing_a_character_renames_it_everywhere(qtbot: Any, window: Any, core: Any) -> None:
    character = window.character(window.sidebar.current_id())
    editor = window.open_character_editor(character)
    editor.name_edit.setText("Vega Prime")
    qtbot.mouseClick(editor.save_button, Qt.MouseButton.LeftButton)

    qtbot.waitUntil(lambda: "Vega Prime" in window.sidebar.names(), timeout=LONG)
    qtbot.waitUntil(lambda: window.top_bar.title.text() == "Vega Prime", timeout=LONG)
    assert Store(core.store.path).get_character(character.id).name == "Vega Prime"
    assert len(window.sidebar.names()) == 3


def test_importing_a_broken_card_says_why_and_adds_nothing(
    qtbot: Any, window: Any, core: Any, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"name": "Half a card", "description": ')
    window.import_cards([broken])

    qtbot.waitUntil(lambda: bool(banner_texts(window.chat_view.banners, "error")), timeout=LONG)
    (message,) = banner_texts(window.chat_view.banners, "error")
    assert message.startswith("Could not import broken.json:")
    assert len(Store(core.store.path).list_characters()) == 3
    assert len(window.sidebar.names()) == 3


def test_importing_card_files_adds_and_opens_them(qtbot: Any, window: Any, core: Any) -> None:
    window.import_cards([CARDS / "v2_card.png", CARDS / "astra.charx"])

    qtbot.waitUntil(lambda: len(window.sidebar.names()) == 5, timeout=LONG)
    imported = window.sidebar.names()[3:]
    qtbot.waitUntil(lambda: window.top_bar.title.text() == imported[-1], timeout=LONG)
    assert any("Imported" in text for text in banner_texts(window.chat_view.banners, "info"))


def test_an_exported_card_imports_back_as_the_same_character(
    qtbot: Any, window: Any, core: Any, tmp_path: Path
) -> None:
    character = window.character(window.sidebar.current_id())
    target = tmp_path / "vega.json"
    window.export_card(character, target, 3)
    qtbot.waitUntil(target.exists, timeout=LONG)
    qtbot.waitUntil(lambda: bool(banner_texts(window.chat_view.banners, "info")), timeout=LONG)

    window.import_cards([target])
    qtbot.waitUntil(lambda: len(window.sidebar.names()) == 4, timeout=LONG)
    copies = [c for c in Store(core.store.path).list_characters() if c.name == character.name]
    assert len(copies) == 2
    assert copies[1].card["description"] == copies[0].card["description"]
    assert copies[1].card["character_book"] == copies[0].card["character_book"]


def test_the_editor_fills_itself_from_a_card_file(qtbot: Any, window: Any) -> None:
    editor = open_new_editor(qtbot, window)
    editor.import_file(CARDS / "v3_full.json")
    qtbot.waitUntil(lambda: bool(editor.name_edit.text()), timeout=LONG)
    assert editor.fields["description"].toPlainText()

    editor.import_file(CARDS / "no_card.png")
    qtbot.waitUntil(lambda: bool(banner_texts(editor.banners, "error")), timeout=LONG)
    assert "no character card" in banner_texts(editor.banners, "error")[0]
    editor.reject()


def test_deleting_a_character_asks_first_then_removes_it_and_its_chats(
    qtbot: Any, window: Any, core: Any
) -> None:
    doomed = window.character(window.sidebar.current_id())
    qtbot.mouseClick(window.sidebar.delete_button, Qt.MouseButton.LeftButton)
    box = window.findChild(QMessageBox)
    assert box is not None and doomed.name in box.text()
    delete = next(b for b in box.buttons() if b.text() == "Delete")
    qtbot.mouseClick(delete, Qt.MouseButton.LeftButton)

    qtbot.waitUntil(lambda: doomed.name not in window.sidebar.names(), timeout=LONG)
    qtbot.waitUntil(lambda: window.chat_view.character is not None, timeout=LONG)
    assert window.chat_view.character.id != doomed.id
    store = Store(core.store.path)
    assert all(c.id != doomed.id for c in store.list_characters())
    assert store.list_chats(doomed.id) == []


def test_search_filters_the_character_list(qtbot: Any, window: Any) -> None:
    sidebar = window.sidebar
    qtbot.keyClicks(sidebar.search, "noir")  # a tag of Wren's
    visible = [
        sidebar.list.item(i).text()
        for i in range(sidebar.list.count())
        if not sidebar.list.item(i).isHidden()
    ]
    assert visible == ["Wren Calloway"]
    sidebar.search.clear()
    assert all(not sidebar.list.item(i).isHidden() for i in range(sidebar.list.count()))
