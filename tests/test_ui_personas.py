"""Personas in the window: the first run asks the user's name, the picker switches who the user is
in the open chat, and the manager creates, edits, deletes and picks the default."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt

from nexus_desktop.chat import personas
from tests.ui_support import LONG, MODEL_SETTINGS, banner_texts, close_window, run

AHOY = "Ahoy, {{user}}!"


def add_captain(core: Any) -> int:
    """A character whose greeting names the user, opened first."""
    from nexus_desktop.cards.io import card_to_record
    from nexus_desktop.cards.model import CharacterCard

    name, record = card_to_record(CharacterCard(name="Reed", first_mes=AHOY))
    character = core.store.add_character(name, record)
    core.settings = core.settings.model_copy(update={"last_character_id": character.id})
    core.store.save_settings(core.settings)
    assert character.id is not None
    return character.id


def open_window(qtbot: Any, core: Any) -> Any:
    from nexus_desktop.ui.main_window import MainWindow

    window = MainWindow()
    window.resize(1100, 700)
    window.show()
    run(qtbot, window.attach(core, load_model=False))
    return window


def greeting_text(window: Any) -> str:
    return str(window.chat_view.widgets[0].text)


@pytest.fixture
def first_run_core(data_dir: Path, qt_loop: Any) -> Iterator[Any]:
    """A core as on the very first start: no persona yet."""
    from nexus_desktop.core import AppCore

    core = AppCore()
    core.settings = core.settings.model_copy(update=MODEL_SETTINGS)
    add_captain(core)
    yield core


@pytest.fixture
def first_run_window(qtbot: Any, first_run_core: Any) -> Iterator[Any]:
    window = open_window(qtbot, first_run_core)
    yield window
    close_window(qtbot, window, first_run_core)


@pytest.fixture
def captain_window(qtbot: Any, core: Any) -> Iterator[Any]:
    """The usual test core (persona "Tester"), with Reed's chat open."""
    add_captain(core)
    window = open_window(qtbot, core)
    yield window
    close_window(qtbot, window, core)


def first_run_panel(qtbot: Any, window: Any) -> Any:
    from nexus_desktop.ui.first_run import FirstRunPanel, ask_name_if_new

    ask_name_if_new(window.chat_view)
    qtbot.waitUntil(lambda: window.chat_view.findChild(FirstRunPanel) is not None, timeout=LONG)
    panel = window.chat_view.findChild(FirstRunPanel)
    assert panel.isVisible()
    return panel


def panel_gone(window: Any) -> bool:
    from nexus_desktop.ui.first_run import FirstRunPanel

    return window.chat_view.findChild(FirstRunPanel) is None


# First run ---------------------------------------------------------------------------------


def test_the_first_run_asks_the_name_and_the_greeting_then_uses_it(
    qtbot: Any, first_run_window: Any, first_run_core: Any
) -> None:
    window = first_run_window
    assert greeting_text(window) == f"Ahoy, {personas.suggested_name()}!"  # the chat is open meanwhile
    assert greeting_text(window) != "Ahoy, You!"
    panel = first_run_panel(qtbot, window)
    qtbot.keyClicks(panel.name_edit, "Sam")
    qtbot.mouseClick(panel.save_button, Qt.MouseButton.LeftButton)

    qtbot.waitUntil(lambda: greeting_text(window) == "Ahoy, Sam!", timeout=LONG)
    qtbot.waitUntil(lambda: panel_gone(window), timeout=LONG)
    [saved] = personas.list_personas(first_run_core.store.engine)
    assert (saved.name, saved.is_default) == ("Sam", True)
    assert window.chat_view.persona_picker.toolTip().startswith("You are Sam")


def test_skipping_the_name_keeps_a_real_name_and_is_not_asked_again(
    qtbot: Any, first_run_window: Any, first_run_core: Any
) -> None:
    from nexus_desktop.ui.first_run import ask_name_if_new
    from nexus_desktop.ui.ops import wait_for_running_ops

    window = first_run_window
    panel = first_run_panel(qtbot, window)
    qtbot.mouseClick(panel.skip_button, Qt.MouseButton.LeftButton)
    suggested = personas.suggested_name()
    qtbot.waitUntil(lambda: personas.list_personas(first_run_core.store.engine) != [], timeout=LONG)
    assert [p.name for p in personas.list_personas(first_run_core.store.engine)] == [suggested]
    assert greeting_text(window) == f"Ahoy, {suggested}!"
    qtbot.waitUntil(lambda: panel_gone(window), timeout=LONG)

    ask_name_if_new(window.chat_view)  # the next start asks nothing
    run(qtbot, wait_for_running_ops())
    assert panel_gone(window)


def test_a_name_that_is_too_long_is_explained_in_the_panel(qtbot: Any, first_run_window: Any) -> None:
    panel = first_run_panel(qtbot, first_run_window)
    panel._name_user("x" * 80)  # the field stops at 64; the service says why all the same
    qtbot.waitUntil(lambda: panel.error.isVisible(), timeout=LONG)
    assert "64 characters" in panel.error.text()
    assert panel.save_button.isEnabled()
    panel.name_edit.setText("Ada")
    qtbot.mouseClick(panel.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: greeting_text(first_run_window) == "Ahoy, Ada!", timeout=LONG)


# The picker -----------------------------------------------------------------------------------


def test_switching_the_chats_persona_changes_user_in_shown_messages(
    qtbot: Any, captain_window: Any, core: Any
) -> None:
    window, chat = captain_window, captain_window.chat_view
    kit = personas.add_persona(core.store.engine, "Kit", "{{user}} races motorbikes.")
    assert chat.chat_id is not None and kit.id is not None
    core.store.add_message(chat.chat_id, "user", "{{user}} reporting in.")
    run(qtbot, window._show_character(chat.character.id))
    assert greeting_text(window) == "Ahoy, Tester!"
    assert chat.widgets[1].name_label.text() == "Tester"

    picker = chat.persona_picker
    picker.menu_.aboutToShow.emit()  # opening the menu reads personas added elsewhere (here: no event)
    qtbot.waitUntil(lambda: len(picker.personas) == 2, timeout=LONG)
    picker._fill_menu()
    labels = [action.text() for action in picker.menu_.actions()]
    assert labels == ["Tester (default)", "Kit", "", "Manage personas…"]
    picker.menu_.actions()[1].trigger()

    qtbot.waitUntil(lambda: greeting_text(window) == "Ahoy, Kit!", timeout=LONG)
    assert chat.widgets[1].text == "Kit reporting in."
    assert chat.widgets[1].name_label.text() == "Kit"
    assert picker.toolTip().startswith("You are Kit")
    assert personas.persona_for_chat(core.store.engine, chat.chat_id).name == "Kit"

    run(qtbot, window._show_character(chat.character.id, new_chat=True))  # new chats: the default
    assert greeting_text(window) == "Ahoy, Tester!"


# The manager ----------------------------------------------------------------------------------


def test_the_manager_creates_edits_defaults_and_deletes_personas(
    qtbot: Any, captain_window: Any, core: Any, tmp_path: Path
) -> None:
    from PIL import Image

    window = captain_window
    dialog = window.chat_view.persona_picker.open_manager()
    qtbot.waitUntil(lambda: dialog.list.count() == 1, timeout=LONG)
    assert dialog.list.item(0).text() == "Tester (default)"
    qtbot.mouseClick(dialog.delete_button, Qt.MouseButton.LeftButton)  # the default cannot go
    qtbot.waitUntil(lambda: banner_texts(dialog.banners, "error") != [], timeout=LONG)
    assert "Make another persona the default first" in banner_texts(dialog.banners, "error")[0]
    assert dialog.list.count() == 1

    dialog.start_new()
    dialog.name_edit.setText("Kit")
    dialog.description_edit.setPlainText("{{user}} races motorbikes.")
    picture = tmp_path / "kit.png"
    Image.new("RGB", (32, 32), "orange").save(picture)
    dialog.load_avatar(picture)
    qtbot.waitUntil(lambda: dialog.avatar_png is not None, timeout=LONG)
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.list.count() == 2, timeout=LONG)
    kit = personas.find_persona(core.store.engine, "Kit")
    assert kit is not None and kit.avatar is not None and kit.description == "{{user}} races motorbikes."

    dialog.start_new()  # an empty name is refused, with the reason, and nothing is added
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: banner_texts(dialog.banners, "error") != [], timeout=LONG)
    assert "Give the persona a name" in banner_texts(dialog.banners, "error")[0]
    assert len(personas.list_personas(core.store.engine)) == 2

    dialog.list.setCurrentRow(1)
    assert dialog.name_edit.text() == "Kit"
    qtbot.mouseClick(dialog.default_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.list.item(0).text() == "Kit (default)", timeout=LONG)
    # The open chat never picked a persona, so it follows the default.
    qtbot.waitUntil(lambda: greeting_text(window) == "Ahoy, Kit!", timeout=LONG)

    tester = personas.find_persona(core.store.engine, "Tester")
    assert tester is not None and tester.id is not None
    dialog.list.setCurrentRow(1)
    dialog.name_edit.setText("Tess")
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.list.item(1).text() == "Tess", timeout=LONG)

    box = dialog.ask_delete()
    assert box is not None
    delete = next(b for b in box.buttons() if b.text() == "Delete")
    qtbot.mouseClick(delete, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.list.count() == 1, timeout=LONG)
    assert [p.name for p in personas.list_personas(core.store.engine)] == ["Kit"]
    dialog.accept()


def test_the_picker_fits_in_the_message_box_at_800_by_500(qtbot: Any, captain_window: Any) -> None:
    window = captain_window
    window.setMinimumSize(0, 0)
    window.resize(800, 500)
    qtbot.waitUntil(lambda: window.width() == 800, timeout=LONG)
    picker, composer = window.chat_view.persona_picker, window.chat_view.composer
    qtbot.waitUntil(lambda: composer.input.width() > 200, timeout=LONG)  # the layout settles
    assert picker.isVisible() and picker.isEnabled()
    inside = composer.frame.rect().contains(picker.geometry())
    assert inside, (picker.geometry(), composer.frame.rect())
    assert picker.accessibleName() == "Persona" and picker.toolTip()
