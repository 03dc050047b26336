"""Start-up in the real window: the message box takes typing before the core has opened the chat,
and the pages other than the chat are built after it, not on the way to the first keystroke."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QWidget

from nexus_desktop.db.store import Store
from tests import ui_support
from tests.ui_support import LONG, close_window, needs_model, run, wait_reply_done

core, data_dir, qt_loop = ui_support.core, ui_support.data_dir, ui_support.qt_loop

EARLY = "Hello from before the chat had loaded"


@pytest.fixture
def starting_window(qtbot: Any, core: Any) -> Iterator[Any]:
    """The main window as ``app.main`` leaves it before the core is up: built, shown, not attached."""
    from nexus_desktop.ui.main_window import APP_PAGES, MainWindow

    window = MainWindow(build=False, reserved_pages=APP_PAGES)
    window.resize(1280, 800)
    window.show()
    window.build_ui()
    window.chat_view.wait_for_chat()
    yield window
    close_window(qtbot, window, core)


def type_early_and_press_enter(qtbot: Any, window: Any, text: str) -> None:
    box = window.chat_view.composer.input
    qtbot.waitUntil(lambda: window.focusWidget() is box, timeout=10_000)
    assert box.isEnabled() and window.chat_view.chat_id is None
    qtbot.keyClicks(box, text)
    qtbot.keyClick(box, Qt.Key.Key_Return)


def user_messages(core: Any, chat_id: int) -> list[str]:
    return [m.content for m in Store(core.store.path).list_messages(chat_id) if m.role == "user"]


@pytest.mark.model
@needs_model
def test_typing_before_the_chat_has_loaded_is_kept_and_sent_once_the_chat_opens(
    qtbot: Any, starting_window: Any, core: Any
) -> None:
    chat = starting_window.chat_view
    type_early_and_press_enter(qtbot, starting_window, EARLY)
    # Not sent (there is no chat yet) and not lost: the box keeps it and says it is queued.
    assert chat.composer.text == EARLY
    assert chat.composer.hint.isVisible() and "Loading your chat" in chat.composer.hint.text()
    assert chat.widgets == []

    run(qtbot, starting_window.attach(core))

    assert chat.chat_id is not None
    qtbot.waitUntil(lambda: any(w.role == "user" and w.text == EARLY for w in chat.widgets), timeout=LONG)
    wait_reply_done(qtbot, starting_window)
    assert chat.composer.text == ""  # moved into the chat, once
    assert [w.text for w in chat.widgets if w.role == "user"] == [EARLY]
    assert user_messages(core, chat.chat_id) == [EARLY]


def test_a_queued_send_sends_what_the_box_holds_when_the_chat_opens_so_emptying_it_cancels(
    qtbot: Any, starting_window: Any, core: Any
) -> None:
    chat = starting_window.chat_view
    type_early_and_press_enter(qtbot, starting_window, EARLY)
    chat.composer.clear()

    run(qtbot, starting_window.attach(core))

    assert chat.chat_id is not None and chat.generation_task is None  # nothing was sent
    assert user_messages(core, chat.chat_id) == []
    assert chat.composer.input.isEnabled() and not chat.composer.hint.isVisible()


def test_typing_before_the_chat_has_loaded_is_kept_when_no_chat_opens(
    qtbot: Any, starting_window: Any, core: Any
) -> None:
    for character in core.store.list_characters():
        core.store.delete_character(character.id)
    chat = starting_window.chat_view
    type_early_and_press_enter(qtbot, starting_window, EARLY)

    run(qtbot, starting_window.attach(core))

    assert chat.chat_id is None and chat.generation_task is None
    assert chat.composer.text == EARLY  # still there for when a character is picked
    assert not chat.composer.input.isEnabled() and not chat.composer.send_button.isEnabled()


def test_other_pages_are_built_on_first_visit_or_after_the_chat_not_before(
    qtbot: Any, starting_window: Any
) -> None:
    built: list[str] = []

    def builder(key: str) -> Any:
        def build() -> QWidget:
            built.append(key)
            return QLabel(f"the real {key} page")

        return build

    for key, title, icon_name in (("modules", "Modules", "grid"), ("training", "Training", "chart")):
        starting_window.add_lazy_page(key, title, icon_name, builder(key))
    assert built == []  # adding them costs nothing on the way to the first keystroke

    qtbot.mouseClick(starting_window.nav_rail.buttons["training"], Qt.MouseButton.LeftButton)
    page = starting_window.pages.currentWidget()
    assert built == ["training"] and isinstance(page, QLabel) and page.text() == "the real training page"
    assert page.isVisible() and starting_window.current_page() == "training"

    starting_window.build_pages_soon()
    qtbot.waitUntil(lambda: built == ["training", "modules"], timeout=10_000)
    starting_window.show_page("modules")
    assert built == ["training", "modules"]  # built once
    assert starting_window.pages.currentWidget().text() == "the real modules page"
    assert list(starting_window.nav_rail.buttons) == ["chat", "models", "modules", "training", "dashboards"]
