"""The notes module with a real SQLite file in the data folder the app hands it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pluggy
import pytest
from nexus_notes.hooks import NotesPlugin
from nexus_notes.store import NoteError

from nexus_desktop.modules import hookspecs
from nexus_desktop.modules.specs import ToolSpec


def start(data_dir: Path) -> dict[str, ToolSpec]:
    """A fresh copy of the module, started the way the app starts it."""
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    manager.register(NotesPlugin(), name="notes")
    manager.hook.startup.call_historic(kwargs={"app_info": {"module_dir": str(data_dir)}})
    found: list[ToolSpec] = []
    manager.hook.register_tools.call_historic(kwargs={"register": found.append})
    return {tool.name: tool for tool in found}


@pytest.fixture
def tools(tmp_path: Path) -> dict[str, ToolSpec]:
    return start(tmp_path / "notes-data")


def test_a_remembered_fact_is_stored_in_the_modules_data_folder(tmp_path: Path) -> None:
    tools = start(tmp_path / "notes-data")
    assert (
        tools["notes.remember"].function(text="My cat is called Tom.")
        == "Remembered note #1: My cat is called Tom."
    )
    with sqlite3.connect(tmp_path / "notes-data" / "notes.sqlite3") as db:
        assert db.execute("SELECT text FROM notes").fetchall() == [("My cat is called Tom.",)]


def test_recall_finds_facts_by_their_words_and_ignores_unrelated_ones(tools: dict[str, ToolSpec]) -> None:
    tools["notes.remember"].function(text="My cat is called Tom.")
    tools["notes.remember"].function(text="I work as a nurse on night shifts.", tags=["Work"])
    tools["notes.remember"].function(text="Favourite drink: green tea.")
    assert tools["notes.recall"].function(query="What are my cats called?") == "#1: My cat is called Tom."
    assert tools["notes.recall"].function(query="work") == "#2: I work as a nurse on night shifts. [work]"
    assert tools["notes.recall"].function(query="spaceships") == "No notes match that."


def test_recall_without_a_query_lists_the_newest_first(tools: dict[str, ToolSpec]) -> None:
    assert tools["notes.recall"].function() == "There are no notes yet."
    tools["notes.remember"].function(text="First fact.")
    tools["notes.remember"].function(text="Second fact.")
    assert tools["notes.recall"].function().splitlines() == ["#2: Second fact.", "#1: First fact."]


def test_notes_survive_a_restart_of_the_module(tmp_path: Path) -> None:
    start(tmp_path / "data")["notes.remember"].function(text="Birthday on 3 March.", tags=["birthday"])
    again = start(tmp_path / "data")
    assert again["notes.recall"].function(query="birthday") == "#1: Birthday on 3 March. [birthday]"


def test_forget_removes_the_note_and_says_which(tools: dict[str, ToolSpec]) -> None:
    tools["notes.remember"].function(text="Allergic to peanuts.")
    assert tools["notes.forget"].function(id=1) == "Forgot note #1: Allergic to peanuts."
    assert tools["notes.recall"].function(query="peanuts") == "No notes match that."


def test_forgetting_a_note_that_is_not_there_says_how_to_find_the_numbers(tools: dict[str, ToolSpec]) -> None:
    with pytest.raises(NoteError, match="There is no note #7; recall notes to see their numbers"):
        tools["notes.forget"].function(id=7)


def test_an_empty_note_is_refused(tools: dict[str, ToolSpec]) -> None:
    with pytest.raises(NoteError, match="The note is empty"):
        tools["notes.remember"].function(text="   ")


def test_without_a_data_folder_from_the_app_the_env_variable_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEXUS_MODULE_DATA_DIR", str(tmp_path / "from-env"))
    plugin = NotesPlugin()
    plugin.remember_note("Likes jazz.")
    assert (tmp_path / "from-env" / "notes.sqlite3").is_file()
