"""Held-out suites share nothing with training data: no slot value and no run of four words.

The committed router files are what the generator writes, the check catches a leak (the positive
controls plant one), every zoo suite passes it, and the loop refuses a leaking suite by name.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlmodel import Session, select

from nexus_desktop.db.store import Store
from nexus_desktop.training.datasets import read_jsonl
from nexus_desktop.training.examples import ROUTER_DATASET
from nexus_desktop.training.leakage import LeakageError, find_overlaps
from nexus_desktop.training.pipeline import prepare
from nexus_desktop.training.tables import TrainingExample
from nexus_desktop.training.zoo import get_spec, load_zoo
from training import router_data, router_phrases

TRAIN_VALUES = [v for values in router_phrases.TRAIN_SLOTS.values() for v in values]
HELDOUT_VALUES = [v for values in router_phrases.HELDOUT_SLOTS.values() for v in values]


def user_texts(path: Path) -> list[str]:
    return [row["messages"][-2]["content"] for row in read_jsonl(path)]


def test_the_committed_router_files_are_what_the_generator_writes() -> None:
    train, heldout = router_data.build()
    assert [json.loads(line) for line in router_data.SEED_PATH.read_text().splitlines()] == train
    assert [json.loads(line) for line in router_data.HELDOUT_PATH.read_text().splitlines()] == heldout


def test_no_router_heldout_row_shares_a_slot_value_or_four_words_with_the_seed_set() -> None:
    seed, heldout = user_texts(router_data.SEED_PATH), user_texts(router_data.HELDOUT_PATH)
    assert len(heldout) == 180 and len(seed) >= 480
    assert find_overlaps(seed, heldout, values=TRAIN_VALUES) == []
    assert find_overlaps(heldout, seed, values=HELDOUT_VALUES) == []


def test_the_overlap_check_catches_a_planted_four_word_run_and_a_slot_value() -> None:
    seed = user_texts(router_data.SEED_PATH)
    clean = "Flick a pair of dice across the table."
    copied_run = "Please could you remember that the wifi password is bluebird42"  # 4 words of a seed row
    shared_value = "Chuck 3d8."  # a seed slot value in new wording
    found = find_overlaps(seed, [clean, copied_run, shared_value], values=TRAIN_VALUES)
    assert [o.row for o in found] == [2, 3]
    assert found[1].shared == "3d8"
    assert find_overlaps(seed, [clean], values=TRAIN_VALUES) == []  # positive control


def test_every_zoo_suite_shares_no_four_words_with_its_seed_set() -> None:
    checked = 0
    for spec in load_zoo().values():
        if spec.benchmark_path is None or spec.seed_path is None:
            continue
        assert find_overlaps(user_texts(spec.seed_path), user_texts(spec.benchmark_path)) == [], spec.id
        checked += 1
    assert checked >= 1


def write_router_zoo(folder: Path, seed_rows: list[str]) -> Path:
    """A copy of the router spec whose seed file is ``seed_rows`` (JSON lines)."""
    router = load_zoo(router_data.ROOT / "resources" / "zoo")["router"]  # the shipped spec
    zoo = folder / "zoo"
    zoo.mkdir(parents=True)
    (folder / "seed.jsonl").write_text("\n".join(seed_rows) + "\n", encoding="utf-8")
    assert router.source is not None and router.benchmark_path is not None
    text = router.source.read_text(encoding="utf-8")
    text = text.replace(
        'seed_dataset = "training/router_seed.jsonl"', f'seed_dataset = "{folder / "seed.jsonl"}"'
    )
    text = text.replace(
        'benchmark = "benchmarks/router_heldout.jsonl"', f'benchmark = "{router.benchmark_path}"'
    )
    (zoo / "router.toml").write_text(text, encoding="utf-8")
    return zoo


def test_training_refuses_a_seed_set_that_overlaps_the_suite_and_names_the_rows(
    tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_lines = router_data.SEED_PATH.read_text(encoding="utf-8").splitlines()
    heldout_lines = router_data.HELDOUT_PATH.read_text(encoding="utf-8").splitlines()
    monkeypatch.setenv("NEXUS_ZOO_DIR", str(write_router_zoo(tmp_path / "clean", seed_lines)))
    assert prepare(store.engine, get_spec("router"), tmp_path / "plan-clean").train_examples > 0

    leaked = json.loads(heldout_lines[41])["messages"][-2]["content"]
    monkeypatch.setenv(
        "NEXUS_ZOO_DIR", str(write_router_zoo(tmp_path / "leaky", [*seed_lines, heldout_lines[41]]))
    )
    with pytest.raises(LeakageError) as refused:
        prepare(store.engine, get_spec("router"), tmp_path / "plan-leaky")
    assert "row 42" in str(refused.value) and leaked in str(refused.value)
    assert not (tmp_path / "plan-leaky").exists()  # nothing written


def test_a_collected_message_that_shares_wording_with_the_suite_is_kept_but_not_trained_on(
    tmp_path: Path, store: Store
) -> None:
    spec = get_spec("router")
    heldout = user_texts(router_data.HELDOUT_PATH)
    leaking, fresh = heldout[70], "Could you flip a coin and roll a d20 afterwards?"
    with Session(store.engine) as s:
        for n, text in enumerate([leaking, fresh]):
            payload = {"text": text, "label": "roll_dice"}
            s.add(
                TrainingExample(
                    dataset=ROUTER_DATASET,
                    kind="classification",
                    signal="route_corrected",
                    content_hash=f"c{n}",
                    payload=payload,
                )
            )
        s.commit()
    plan = prepare(store.engine, spec, tmp_path)
    trained = user_texts(plan.dataset) + (user_texts(plan.eval_dataset) if plan.eval_dataset else [])
    assert fresh in trained and leaking not in trained
    assert plan.held_back == (leaking,)
    with Session(store.engine) as s:
        assert len(s.exec(select(TrainingExample)).all()) == 2  # nothing lost
