"""Bring your own labelled data: `nexus dataset import MODEL FILE` keeps every good row, names the
line of every bad one, stores nothing twice, and the imported rows train the model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nexus_desktop.db.store import Store
from nexus_desktop.training.datasets import DatasetError
from nexus_desktop.training.importer import import_file
from nexus_desktop.training.zoo import candidate_count, chat_records, get_spec
from tests.test_training_cli import nexus


def write_jsonl(path: Path, *rows: object) -> Path:
    path.write_text("\n".join(row if isinstance(row, str) else json.dumps(row) for row in rows) + "\n")
    return path


def test_mixed_good_and_bad_rows_keep_the_good_ones_and_name_each_bad_line(
    store: Store, tmp_path: Path
) -> None:
    router = get_spec("router")
    before = candidate_count(store.engine, router)
    data = write_jsonl(
        tmp_path / "mine.jsonl",
        {"text": "chuck a d20 pls", "label": "roll_dice"},
        {"text": "wats my cpu doin", "label": "system_status"},
        "{not json",
        {"text": "dance for me", "label": "dance"},
        {"instruction": "keep in mind: locker 12 is mine", "output": "remember_note"},
        {"text": "", "label": "chat"},
    )
    report = import_file(store.engine, router, data)
    assert (report.rows, report.added, report.duplicates) == (6, 3, 0)
    assert [p.split(":")[0] for p in report.problems] == ["line 3", "line 4", "line 6"]
    assert "'dance' is not one of chat, roll_dice" in report.problems[1]
    assert set(report.missing_labels) == {"chat", "recall_note", "build_module"}
    assert candidate_count(store.engine, router) == before + 3  # they count toward training
    texts = [chat[-2]["content"] for chat in chat_records(store.engine, router, include_seed=False)]
    assert texts == ["chuck a d20 pls", "wats my cpu doin", "keep in mind: locker 12 is mine"]

    again = import_file(store.engine, router, data)  # the same file twice stores nothing twice
    assert (again.added, again.duplicates) == (0, 3)


def test_sharegpt_and_alpaca_rows_become_a_chat_models_examples(store: Store, tmp_path: Path) -> None:
    persona = get_spec("persona-vega")
    data = write_jsonl(
        tmp_path / "vega.jsonl",
        {"conversations": [{"from": "human", "value": "Ready?"}, {"from": "gpt", "value": "Engines hot."}]},
        {"instruction": "Greet the captain.", "output": "Welcome aboard, captain."},
        {"conversations": [{"from": "gpt", "value": "Hi"}, {"from": "human", "value": "no reply here"}]},
    )
    report = import_file(store.engine, persona, data)
    assert report.added == 2 and len(report.problems) == 1
    assert report.problems[0].startswith("line 3: the conversation must end with the reply")
    chats = chat_records(store.engine, persona, include_seed=False)
    assert chats[0] == [
        {"role": "user", "content": "Ready?"},
        {"role": "assistant", "content": "Engines hot."},
    ]


@pytest.mark.parametrize(
    ("content", "says"),
    [("", "is empty"), ("\n\n", "is empty"), ('{"prompt": "a", "completion": "b"}\n', "No row")],
)
def test_an_empty_or_wrong_format_file_is_refused_and_stores_nothing(
    store: Store, tmp_path: Path, content: str, says: str
) -> None:
    router = get_spec("router")
    before = candidate_count(store.engine, router)
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(DatasetError, match=says):
        import_file(store.engine, router, path)
    assert candidate_count(store.engine, router) == before


def test_nexus_dataset_import_prints_what_it_kept_and_skipped(private_data_dir: Path, tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "mine.jsonl", {"text": "yo roll 3d6", "label": "roll_dice"}, "oops")
    result = nexus("dataset", "import", "router", str(data), data_dir=private_data_dir)
    assert result.returncode == 0, result.stderr
    assert "Imported 1 of 2 rows into router" in result.stdout and "line 2: not JSON" in result.stdout
    empty = write_jsonl(tmp_path / "empty.jsonl", "")
    refused = nexus("dataset", "import", "router", str(empty), data_dir=private_data_dir)
    assert refused.returncode == 1 and "is empty" in refused.stderr and "Traceback" not in refused.stderr
