"""``nexus chats`` and ``nexus chat --chat``: every chat from the command line, run as the real
command on a real database; failures are one clear line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nexus_desktop.db.store import Store
from tests.test_cli import assert_one_line_error, nexus

FIXTURES = Path(__file__).parent / "fixtures" / "st_chats"
SERAPHINA = FIXTURES / "Seraphina - 2023-6-19 @14h 20m 11s 512ms.jsonl"


def make_chats(data_dir: Path) -> tuple[int, int]:
    """Vega with two chats (the older one titled), Juniper with one; returns Vega's (older, newer)."""
    store = Store(data_dir / "nexus.db")
    try:
        vega = store.add_character("Vega", {"name": "Vega"})
        juniper = store.add_character("Juniper", {"name": "Juniper"})
        older = store.create_chat(vega.id or 0, ["Ahoy, traveller."], title="Harbour")
        store.add_message(older.id or 0, "user", "Is the lighthouse lit tonight?")
        newer = store.create_chat(vega.id or 0, ["Back again?"])
        store.create_chat(juniper.id or 0, ["The lighthouse is dark."])
        return older.id or 0, newer.id or 0
    finally:
        store.close()


def test_list_search_rename_export_and_delete(private_data_dir: Path, tmp_path: Path) -> None:
    older, newer = make_chats(private_data_dir)

    listed = nexus("chats", "list", "--character", "vega", data_dir=private_data_dir)
    assert listed.returncode == 0, listed.stderr
    rows = listed.stdout.splitlines()[1:]
    assert [int(row.split()[0]) for row in rows] == [newer, older]  # the newest first
    assert "Harbour" in rows[1] and "Is the lighthouse lit tonight?" in rows[1]
    assert len(nexus("chats", "list", data_dir=private_data_dir).stdout.splitlines()) == 4  # + Juniper's

    found = nexus("chats", "search", "LIGHTHOUSE", data_dir=private_data_dir)
    assert found.returncode == 0, found.stderr
    assert f"chat {older} · Vega · Harbour: Is the [lighthouse] lit tonight?" in found.stdout
    assert "· Juniper ·" in found.stdout

    renamed = nexus("chats", "rename", str(older), "Harbour at night", data_dir=private_data_dir)
    assert renamed.returncode == 0 and "“Harbour at night”" in renamed.stdout

    out = tmp_path / "harbour.jsonl"
    exported = nexus("chats", "export", str(older), str(out), data_dir=private_data_dir)
    assert exported.returncode == 0, exported.stderr
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert lines[0]["character_name"] == "Vega"
    assert [(m["is_user"], m["mes"]) for m in lines[1:]] == [
        (False, "Ahoy, traveller."),
        (True, "Is the lighthouse lit tonight?"),
    ]

    deleted = nexus("chats", "delete", str(older), data_dir=private_data_dir)
    assert deleted.returncode == 0 and "Harbour at night" in deleted.stdout
    assert f"chat {older} " not in nexus("chats", "search", "lighthouse", data_dir=private_data_dir).stdout


def make_group_chat(data_dir: Path) -> int:
    """The group "Crew" of Vega and Juniper (list order), its chat opened by their greetings and a
    question from the user; returns the chat's ID."""
    from nexus_desktop.chat.groups import create_group, latest_group_chat

    store = Store(data_dir / "nexus.db")
    try:
        members = [store.find_character(name) for name in ("Vega", "Juniper")]
        group = create_group(store.engine, "Crew", [m.id for m in members if m and m.id], "list")
        chat = latest_group_chat(store.engine, group.id)
        store.add_message(chat.id or 0, "user", "Is the lighthouse lit tonight, you two?")
        return chat.id or 0
    finally:
        store.close()


def test_group_chats_are_listed_searched_and_imported_by_group(
    private_data_dir: Path, tmp_path: Path
) -> None:
    make_chats(private_data_dir)
    group_chat = make_group_chat(private_data_dir)

    listed = nexus("chats", "list", "--group", "crew", data_dir=private_data_dir)
    assert listed.returncode == 0, listed.stderr
    rows = listed.stdout.splitlines()[1:]
    assert [int(row.split()[0]) for row in rows] == [group_chat] and "Crew (group)" in rows[0]
    assert "Crew (group)" in nexus("chats", "list", data_dir=private_data_dir).stdout  # among every chat
    found = nexus("chats", "search", "lit tonight", data_dir=private_data_dir).stdout
    assert f"chat {group_chat} · Crew (group) · " in found
    assert_one_line_error(
        nexus("chats", "list", "--group", "Nobody", data_dir=private_data_dir),
        "No group named 'Nobody'",
        "Known groups: Crew",
    )

    file = tmp_path / "Crew night.jsonl"
    lines = [
        {"user_name": "unused", "character_name": "unused", "chat_metadata": {}},
        {"name": "Juniper", "is_user": False, "mes": "The lighthouse is dark."},
        {"name": "vega", "is_user": False, "mes": "Not for long."},
    ]
    file.write_text("\n".join(json.dumps(line) for line in lines), encoding="utf-8")
    imported = nexus("chats", "import", str(file), "--group", "Crew", data_dir=private_data_dir)
    assert imported.returncode == 0, imported.stderr
    assert (
        "into the new chat “Crew night” of Crew; each character's lines went to that member."
        in imported.stdout
    )
    assert "Crew night" in nexus("chats", "list", "-g", "Crew", data_dir=private_data_dir).stdout


def test_import_goes_to_the_named_character_or_the_one_given(private_data_dir: Path) -> None:
    make_chats(private_data_dir)

    refused = nexus("chats", "import", str(SERAPHINA), data_dir=private_data_dir)
    assert_one_line_error(refused, "No character named Seraphina", "--character NAME")

    imported = nexus("chats", "import", str(SERAPHINA), "--character", "Juniper", data_dir=private_data_dir)
    assert imported.returncode == 0, imported.stderr
    assert "6 messages" in imported.stdout and "with Juniper" in imported.stdout
    assert "the file is for Seraphina, who is not among your characters" in imported.stdout
    listed = nexus("chats", "list", "-c", "Juniper", data_dir=private_data_dir).stdout
    assert SERAPHINA.stem[:31] in listed


def test_a_malformed_chat_file_is_one_line_naming_the_line_and_nothing_is_imported(
    private_data_dir: Path,
) -> None:
    make_chats(private_data_dir)

    result = nexus(
        "chats", "import", str(FIXTURES / "missing_mes.jsonl"), "-c", "Vega", data_dir=private_data_dir
    )

    assert_one_line_error(result, "missing_mes.jsonl, line 3", '"mes"', "nothing was imported")
    assert len(nexus("chats", "list", data_dir=private_data_dir).stdout.splitlines()) == 4


def test_an_unknown_chat_id_says_where_to_find_the_ids(private_data_dir: Path) -> None:
    make_chats(private_data_dir)
    assert_one_line_error(nexus("chats", "export", "999", "x.jsonl", data_dir=private_data_dir), "Chat 999")
    assert_one_line_error(
        nexus("chat", "--chat", "999", "hi", data_dir=private_data_dir), "no chat 999", "nexus chats list"
    )


@pytest.mark.model
def test_chat_continues_the_chosen_chat(private_data_dir: Path) -> None:
    older, newer = make_chats(private_data_dir)

    result = nexus(
        "chat", "--chat", str(older), "--max-tokens", "8", "Hello there", data_dir=private_data_dir
    )

    assert result.returncode == 0, result.stderr
    store = Store(private_data_dir / "nexus.db")
    try:
        continued = store.list_messages(older)
        assert [m.role for m in continued[-2:]] == ["user", "assistant"]
        assert continued[-2].content == "Hello there"
        assert len(store.list_messages(newer)) == 1  # the newest chat, which plain `nexus chat` continues
    finally:
        store.close()


@pytest.mark.model
def test_chat_in_a_group_chat_runs_the_groups_turn_and_names_each_speaker(private_data_dir: Path) -> None:
    from nexus_desktop.chat.groups import list_groups, set_turn_order

    make_chats(private_data_dir)
    group_chat = make_group_chat(private_data_dir)

    result = nexus(
        "chat", "--chat", str(group_chat), "--max-tokens", "8", "Hello there", data_dir=private_data_dir
    )

    assert result.returncode == 0, result.stderr
    # Each reply is printed after its speaker's name, in the group's (list) order.
    assert result.stdout.startswith("Vega: ") and "\nJuniper: " in result.stdout
    store = Store(private_data_dir / "nexus.db")
    try:
        stored = store.list_messages(group_chat)
        assert [(m.role, m.speaker_name) for m in stored[-3:]] == [
            ("user", ""),
            ("assistant", "Vega"),
            ("assistant", "Juniper"),
        ]
        set_turn_order(store.engine, list_groups(store.engine)[0].id, "manual")
    finally:
        store.close()

    # In manual order the message is saved and nobody answers: the CLI says so, and how to go on.
    waiting = nexus("chat", "--chat", str(group_chat), "Anyone?", data_dir=private_data_dir)
    assert waiting.returncode == 0 and waiting.stdout == ""
    assert "note: Your message is saved. In this group's manual turn order nobody answers" in waiting.stderr
