"""The character editor's Memories page: a character's memories and the shared ones (marked),
remembered and forgotten through the real Engram with real embeddings."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt

from nexus_desktop.db.store import Store
from nexus_desktop.ui.memories_page import SHARED
from tests import ui_support
from tests.ui_support import LONG, banner_texts, needs_model, run

core, data_dir, qt_loop, window = ui_support.core, ui_support.data_dir, ui_support.qt_loop, ui_support.window

pytestmark = needs_model


def rows(page: Any) -> list[tuple[str, str]]:
    table = page.table
    return [
        (table.item(row, page.TEXT).text(), table.item(row, page.SCOPE).text())
        for row in range(table.rowCount())
    ]


def stored(core: Any) -> list[tuple[str, int | None]]:
    store = Store(core.store.path)
    try:
        with store.engine.connect() as db:
            return [(text, who) for text, who in db.exec_driver_sql("SELECT text, character_id FROM memory")]
    finally:
        store.close()


def test_the_editor_lists_memories_marks_shared_ones_and_forgets_and_remembers(
    qtbot: Any, window: Any, core: Any
) -> None:
    vega = window.character(window.sidebar.current_id())
    others = [c for c in core.store.list_characters() if c.id != vega.id]
    run(qtbot, core.engram.imprint(vega.id, "The user's sister Ana lives in Porto.", source="chat"))
    run(qtbot, core.engram.imprint(vega.id, "Everyone on the station eats at noon.", shared=True))
    run(qtbot, core.engram.imprint(others[0].id, "Another character's secret."))

    editor = window.open_character_editor(vega)
    page = editor.memories
    assert page is not None
    editor.tabs.setCurrentWidget(page)
    qtbot.waitUntil(lambda: page.table.rowCount() == 2, timeout=LONG)
    assert rows(page) == [
        ("The user's sister Ana lives in Porto.", vega.name),
        ("Everyone on the station eats at noon.", SHARED),
    ]
    assert not page.forget_button.isEnabled()

    # Remember a new one, typed by the user.
    qtbot.keyClicks(page.new_text, "The user is learning the violin.")
    qtbot.mouseClick(page.add_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.table.rowCount() == 3, timeout=LONG)
    assert page.new_text.text() == ""
    assert rows(page)[2] == ("The user is learning the violin.", vega.name)

    # Forget the shared one: gone from the page and from the database, the others stay.
    page.table.selectRow(1)
    assert page.forget_button.isEnabled()
    qtbot.mouseClick(page.forget_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.table.rowCount() == 2, timeout=LONG)
    assert [text for text, _ in rows(page)] == [
        "The user's sister Ana lives in Porto.",
        "The user is learning the violin.",
    ]
    assert sorted(stored(core)) == sorted(
        [
            ("The user's sister Ana lives in Porto.", vega.id),
            ("The user is learning the violin.", vega.id),
            ("Another character's secret.", others[0].id),
        ]
    )
    editor.reject()


def test_an_empty_memory_is_not_sent_and_a_refused_one_says_why_keeping_the_text(
    qtbot: Any, window: Any, core: Any
) -> None:
    vega = window.character(window.sidebar.current_id())
    editor = window.open_character_editor(vega)
    page = editor.memories
    assert page is not None
    qtbot.waitUntil(lambda: not page.empty_label.isHidden(), timeout=LONG)
    qtbot.mouseClick(page.add_button, Qt.MouseButton.LeftButton)  # nothing typed: nothing happens
    too_long = "x" * 2001
    page.new_text.setText(too_long)
    qtbot.mouseClick(page.add_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(banner_texts(editor.banners, "error")), timeout=LONG)
    assert any("over 2000 characters" in text for text in banner_texts(editor.banners, "error"))
    assert page.new_text.text() == too_long and page.add_button.isEnabled()
    assert stored(core) == []
    editor.reject()


def test_a_new_character_has_no_memories_page(qtbot: Any, window: Any) -> None:
    editor = window.open_character_editor(None)
    assert editor.memories is None
    assert [editor.tabs.tabText(i) for i in range(editor.tabs.count())][-1] == "Limits"
    editor.reject()


def test_memory_is_switched_off_and_its_count_set_in_settings(qtbot: Any, window: Any, core: Any) -> None:
    from nexus_desktop.ui.ops import wait_for_running_ops

    dialog = window.open_settings("app")
    assert dialog.memory_enabled.isChecked() and dialog.memory_recall_count.value() == 4
    dialog.memory_recall_count.setValue(7)
    dialog.memory_enabled.setChecked(False)
    assert not dialog.memory_recall_count.isEnabled()
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not core.settings.memory_enabled, timeout=LONG)
    run(qtbot, wait_for_running_ops())
    stored = Store(core.store.path).load_settings()
    assert not stored.memory_enabled and stored.memory_recall_count == 7
