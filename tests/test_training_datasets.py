"""Collected examples export as Alpaca, ShareGPT and DPO files that LLaMA-Factory and Unsloth read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nexus_desktop.db.store import Store
from nexus_desktop.training.collector import Collector
from nexus_desktop.training.datasets import DatasetError, read_jsonl, to_alpaca, to_dpo, to_sharegpt
from nexus_desktop.training.examples import ReplyEdited, ReplyRated, RouteDecided
from nexus_desktop.training.zoo import ZooError, chat_records, export_records, get_spec, load_zoo

CHAT = [
    {"role": "system", "content": "You are Vega."},
    {"role": "assistant", "content": "Bridge is yours, Captain."},
    {"role": "user", "content": "I keep losing to this boss."},
    {"role": "assistant", "content": "Dodge right."},
    {"role": "user", "content": "And then?"},
    {"role": "assistant", "content": "Heal at thirty percent."},
]


def test_alpaca_records_carry_instruction_output_system_and_history_pairs() -> None:
    record = to_alpaca(CHAT)
    assert record == {
        "instruction": "And then?",
        "input": "",
        "output": "Heal at thirty percent.",
        "system": "You are Vega.",
        "history": [["", "Bridge is yours, Captain."], ["I keep losing to this boss.", "Dodge right."]],
    }


def test_sharegpt_conversations_alternate_human_and_gpt_after_an_optional_system_turn() -> None:
    conversations = to_sharegpt(CHAT)["conversations"]
    assert conversations[0] == {"from": "system", "value": "You are Vega."}
    turns = conversations[1:]
    assert [t["from"] for t in turns] == ["human", "gpt"] * 3
    assert turns[-1] == {"from": "gpt", "value": "Heal at thirty percent."}
    assert all(set(t) == {"from", "value"} for t in conversations)


def test_dpo_records_have_prompt_chosen_rejected_for_trl_and_instruction_for_llama_factory() -> None:
    record = to_dpo(CHAT[:5], "Heal at thirty percent.", "Give up.")
    assert record["prompt"] == record["instruction"] == "And then?"
    assert record["chosen"] == "Heal at thirty percent."
    assert record["rejected"] == "Give up."
    assert record["input"] == ""
    assert record["system"] == "You are Vega."


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = Store(tmp_path / "nexus.db")
    collector = Collector(store.path)
    context = (("system", "You are Vega."), ("user", "Any tips?"))
    collector.collect(ReplyRated("Vega", context, "Dodge right, Captain.", thumbs_up=True))
    collector.collect(ReplyEdited("Vega", context, "Go left.", "Go right, Captain."))
    collector.collect(RouteDecided("roll two dice please", "roll_dice"))
    collector.collect(RouteDecided("what is the weather on mars", "not_a_label"))
    collector.close()
    return store


def test_the_shipped_zoo_has_the_router_and_a_persona() -> None:
    zoo = load_zoo()
    # The reply-quality evaluator is out until it has a held-out suite to be judged on (its
    # examples are still collected in the reply_quality dataset).
    assert {"router", "persona-vega"} <= set(zoo)
    router = zoo["router"]
    assert router.labels == (
        "chat",
        "roll_dice",
        "remember_note",
        "recall_note",
        "system_status",
        "build_module",
    )
    assert router.benchmark_path is not None and router.benchmark_path.exists()
    assert router.seed_path is not None and router.seed_path.exists()
    assert next(iter(zoo)) == "router"  # highest priority first


def test_router_training_chats_use_the_seed_prompt_and_drop_unknown_labels(store: Store) -> None:
    spec = get_spec("router")
    chats = chat_records(store.engine, spec)
    seed_prompt = next(read_jsonl(spec.seed_path))["messages"][0]["content"]  # type: ignore[arg-type]
    assert seed_prompt == spec.system_prompt
    collected = [c for c in chats if c[1]["content"] == "roll two dice please"]
    assert collected == [
        [
            {"role": "system", "content": spec.system_prompt},
            {"role": "user", "content": "roll two dice please"},
            {"role": "assistant", "content": "roll_dice"},
        ]
    ]
    assert not any(c[-1]["content"] == "not_a_label" for c in chats)


def test_exports_write_one_json_object_per_line(store: Store) -> None:
    persona = get_spec("persona-vega")
    alpaca = export_records(store.engine, persona, "alpaca")
    assert {r["output"] for r in alpaca} == {"Dodge right, Captain.", "Go right, Captain."}
    dpo = export_records(store.engine, persona, "dpo")
    assert dpo == [
        {
            "instruction": "Any tips?",
            "input": "",
            "prompt": "Any tips?",
            "chosen": "Go right, Captain.",
            "rejected": "Go left.",
            "system": "You are Vega.",
        }
    ]
    for record in alpaca + dpo:
        json.loads(json.dumps(record))


def test_dpo_export_without_preference_pairs_says_where_pairs_come_from(store: Store) -> None:
    with pytest.raises(DatasetError, match="no preference pairs yet"):
        export_records(store.engine, get_spec("router"), "dpo")


def test_unknown_model_names_the_known_ones() -> None:
    with pytest.raises(ZooError, match="known models: router"):
        get_spec("nope")


def test_a_broken_spec_is_reported_by_file_name(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text('id = "x"\ntask = "classifier"\ndataset = "x"\n', encoding="utf-8")
    with pytest.raises(ZooError, match=r"bad\.toml is a classifier but lists no labels"):
        load_zoo(tmp_path)
