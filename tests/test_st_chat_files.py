"""SillyTavern chat files: imported with swipes, roles and dates; exported so SillyTavern reads them
back unchanged; a malformed file is refused whole with the line and what to do.

The fixtures in tests/fixtures/st_chats are written by hand in SillyTavern's chat format (a header
line, then one JSON object per message), as the card tests' fixtures are.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from nexus_desktop.chat.history import ChatHistory
from nexus_desktop.chat.personas import add_persona
from nexus_desktop.chat.st_chat import ChatFileError, parse_st_date, read_st_chat
from nexus_desktop.db.store import AsyncStore, Store

FIXTURES = Path(__file__).parent / "fixtures" / "st_chats"
SERAPHINA = FIXTURES / "Seraphina - 2023-6-19 @14h 20m 11s 512ms.jsonl"
NOBODY = FIXTURES / "Nobody Here - 2024-7-12@01h31m37s.jsonl"


@pytest.fixture
def history(store: Store) -> Iterator[ChatHistory]:
    db = AsyncStore(store)
    yield ChatHistory(db)
    db._executor.shutdown(wait=True)


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def chat_count(store: Store) -> int:
    return sum(len(store.list_chats(c.id or 0)) for c in store.list_characters())


def test_a_sillytavern_chat_imports_with_its_swipes_roles_and_dates(
    store: Store, history: ChatHistory
) -> None:
    seraphina = store.add_character("Seraphina", {"name": "Seraphina"})
    store.add_character("Vega", {"name": "Vega"})
    vega_id = store.list_characters()[1].id

    imported = asyncio.run(history.import_st(SERAPHINA, vega_id))

    # The file names Seraphina, who exists: the chat goes to her, not to the chosen Vega, and it says so.
    assert imported.chat.character_id == seraphina.id
    assert "with Seraphina, the character the file is for" in imported.describe()
    assert imported.chat.title == SERAPHINA.stem
    chat, messages = asyncio.run(history.open(imported.chat.id))
    assert [m.role for m in messages] == ["assistant", "user", "assistant", "user", "user", "assistant"]
    greeting, _, reply, hidden, _, last = messages
    assert greeting.swipe_index == 1 and len(greeting.swipes) == 2
    assert greeting.content.startswith("*The glade is quiet.*")
    assert reply.swipe_index == 1 and len(reply.swipes) == 3
    assert reply.content.startswith('"You\'re in the Eldoria forest,"')
    assert hidden.hidden  # SillyTavern's "hidden from the model" is NEXUS's own hide from context
    assert last.content == '*She laughs.* "No café here, only nettle tea."'
    # "June 19, 2023 2:20pm" is local time; ISO dates are UTC.
    assert greeting.created_at.replace(tzinfo=None) == datetime(2023, 6, 19, 14, 20).astimezone(UTC).replace(
        tzinfo=None
    )
    assert reply.created_at.replace(tzinfo=None) == datetime(2023, 6, 19, 14, 22, 5, 120000)
    assert chat.st_metadata["note_prompt"] == "Seraphina is wary of fire."
    assert imported.chat.message_count == 6


def test_a_chat_for_an_absent_character_goes_to_the_chosen_one_and_says_so(
    store: Store, history: ChatHistory
) -> None:
    vega = store.add_character("Vega", {"name": "Vega"})

    with pytest.raises(LookupError, match="No character named Nobody Here; choose the character"):
        asyncio.run(history.import_st(NOBODY, None))
    assert chat_count(store) == 0

    imported = asyncio.run(history.import_st(NOBODY, vega.id))
    assert imported.chat.character_id == vega.id
    assert "the file is for Nobody Here, who is not among your characters" in imported.describe()
    assert [m.content for m in store.list_messages(imported.chat.id)] == ["Hello, stranger.", "Who are you?"]


def test_sillytavern_to_nexus_to_sillytavern_gives_the_same_chat_back(
    store: Store, history: ChatHistory, tmp_path: Path
) -> None:
    store.add_character("Seraphina", {"name": "Seraphina"})
    add_persona(store.engine, "Ash")  # the default
    rowan = add_persona(store.engine, "Rowan")
    imported = asyncio.run(history.import_st(SERAPHINA, None))
    # The user was Rowan in SillyTavern, and has a persona of that name: they are Rowan here too.
    assert asyncio.run(history.open(imported.chat.id))[0].persona_id == rowan.id
    out = tmp_path / "again.jsonl"

    assert asyncio.run(history.export_st(imported.chat.id, out)) == 6

    original, exported = lines(SERAPHINA), lines(out)
    assert len(exported) == len(original)
    header = exported[0]
    assert (header["character_name"], header["chat_metadata"]) == ("Seraphina", original[0]["chat_metadata"])
    for before, after in zip(original[1:], exported[1:], strict=True):
        for key in ("name", "is_user", "is_system", "mes", "swipes", "swipe_id", "extra", "swipe_info"):
            assert after.get(key) == before.get(key), (key, before["mes"])
        assert parse_st_date(after["send_date"]) == parse_st_date(before["send_date"])
        assert after.get("gen_finished") == before.get("gen_finished")


def test_nexus_to_sillytavern_to_nexus_keeps_swipes_roles_and_tool_results(
    store: Store, history: ChatHistory, tmp_path: Path
) -> None:
    vega = store.add_character("Vega", {"name": "Vega"})
    assert vega.id is not None
    chat = store.create_chat(vega.id, ["Ahoy!", "Welcome aboard!"])
    assert chat.id is not None
    store.add_message(chat.id, "user", "What time is it?")
    tool = store.add_message(chat.id, "tool", "clock() → 12:00", {"tool": "clock", "arguments": {}})
    reply = store.add_message(chat.id, "assistant", "It is noon.")
    store.add_swipe(reply.id or 0, "Noon, sailor.")
    store.set_swipe_index(reply.id or 0, 0)
    out = tmp_path / "vega.jsonl"

    asyncio.run(history.export_st(chat.id, out))
    written = lines(out)
    assert [(m["is_user"], m["is_system"]) for m in written[1:]] == [
        (False, False),
        (True, False),
        (False, True),  # a tool result is a system line to SillyTavern: shown, never sent
        (False, False),
    ]
    assert written[4]["swipes"] == ["It is noon.", "Noon, sailor."] and written[4]["swipe_id"] == 0

    again = asyncio.run(history.import_st(out, None))
    before, after = store.list_messages(chat.id), store.list_messages(again.chat.id)
    assert again.chat.character_id == vega.id  # the file names Vega
    assert [(m.role, m.swipes, m.swipe_index) for m in after] == [
        (m.role, m.swipes, m.swipe_index) for m in before
    ]
    assert after[2].swipe_stats == [{"tool": "clock", "arguments": {}}] == tool.swipe_stats


@pytest.mark.parametrize(
    ("name", "line", "problem"),
    [
        ("bad_json.jsonl", 3, "not valid JSON"),
        ("missing_mes.jsonl", 3, '"mes" (the message\'s text) is missing'),
        ("wrong_types.jsonl", 3, '"is_user" should be true or false, not text'),
        ("bad_swipes.jsonl", 2, '"swipes" should be a list of texts'),
        ("swipe_id_out_of_range.jsonl", 2, '"swipe_id" is 5 but the message has 2 swipes'),
        ("no_header.jsonl", 1, "should be the chat's header"),
    ],
)
def test_a_malformed_chat_file_names_the_line_and_imports_nothing(
    store: Store, history: ChatHistory, name: str, line: int, problem: str
) -> None:
    store.add_character("Seraphina", {"name": "Seraphina"})

    with pytest.raises(ChatFileError) as raised:
        asyncio.run(history.import_st(FIXTURES / name, None))

    message = str(raised.value)
    assert f"{name}, line {line}: " in message and problem in message
    assert "Fix that line in a text editor" in message and "nothing was imported" in message
    assert chat_count(store) == 0
    asyncio.run(history.import_st(SERAPHINA, None))  # positive control: a good file imports
    assert chat_count(store) == 1


def test_an_empty_or_binary_file_is_refused_with_what_to_pick(tmp_path: Path) -> None:
    with pytest.raises(ChatFileError, match=r"empty\.jsonl is empty; a SillyTavern chat file holds a header"):
        read_st_chat(FIXTURES / "empty.jsonl")
    binary = tmp_path / "photo.jsonl"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00")
    with pytest.raises(ChatFileError, match=r"photo\.jsonl is not UTF-8 text"):
        read_st_chat(binary)
    assert len(read_st_chat(SERAPHINA).messages) == 6  # positive control


def test_a_header_only_file_is_an_empty_chat_and_a_bom_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "new.jsonl"
    path.write_bytes('\ufeff{"user_name":"Rowan","character_name":"Vega","chat_metadata":{}}\n'.encode())
    chat = read_st_chat(path)
    assert (chat.character_name, chat.messages) == ("Vega", [])


def test_exporting_into_a_folder_that_cannot_exist_says_so_and_leaves_nothing(
    store: Store, history: ChatHistory, tmp_path: Path
) -> None:
    vega = store.add_character("Vega", {"name": "Vega"})
    chat = store.create_chat(vega.id or 0, ["Ahoy!"])
    exports = tmp_path / "exports"
    exports.mkdir()
    blocker = exports / "a-file"
    blocker.write_text("not a folder")

    with pytest.raises(ChatFileError, match=r"could not be saved to .*; pick another folder"):
        asyncio.run(history.export_st(chat.id or 0, blocker / "chat.jsonl"))
    assert list(exports.iterdir()) == [blocker]
    asyncio.run(history.export_st(chat.id or 0, exports / "chat.jsonl"))  # positive control
    assert lines(exports / "chat.jsonl")[1]["mes"] == "Ahoy!"


@pytest.mark.parametrize(
    ("written", "utc"),
    [
        ("2023-06-19T14:22:05.120Z", datetime(2023, 6, 19, 14, 22, 5, 120000, UTC)),
        (1687184640000, datetime(2023, 6, 19, 14, 24, tzinfo=UTC)),
        ("June 19, 2023 2:20pm", datetime(2023, 6, 19, 14, 20).astimezone(UTC)),
        ("2023-6-19 @14h 20m 11s 512ms", datetime(2023, 6, 19, 14, 20, 11, 512000).astimezone(UTC)),
        ("2024-7-12@01h31m37s", datetime(2024, 7, 12, 1, 31, 37).astimezone(UTC)),
        ("yesterday-ish", None),
        (None, None),
    ],
)
def test_every_date_shape_sillytavern_wrote_is_read(written: object, utc: datetime | None) -> None:
    assert parse_st_date(written) == utc
