"""`nexus train | gate | dataset | route` work headless and fail with one clear line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nexus_desktop.db.store import Store
from nexus_desktop.training.collector import Collector
from nexus_desktop.training.examples import ReplyRated, RouteDecided
from nexus_desktop.training.zoo import get_spec
from tests.test_training_gate import make_lora_adapter
from tests.test_training_jobs import fake_python

LABELS = ("chat", "roll_dice", "remember_note", "recall_note", "system_status", "build_module")


def nexus(*args: str, data_dir: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "NEXUS_DATA_DIR": str(data_dir), **(env or {})}
    full_env.pop("NEXUS_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "nexus_desktop.cli_train", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=full_env,
    )


def collect(data_dir: Path, *signals: object) -> None:
    store = Store(data_dir / "nexus.db")
    collector = Collector(store.path)
    for signal in signals:
        collector.collect(signal)  # type: ignore[arg-type]
    collector.close()
    store.close()


def test_status_shows_new_examples_against_each_threshold(private_data_dir: Path) -> None:
    collect(private_data_dir, RouteDecided("roll a d6", "roll_dice"), RouteDecided("hi there", "chat"))
    result = nexus("train", "status", data_dir=private_data_dir)
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()[1:]}
    assert rows["router"][1:4] == ["classifier", "2/50", "no"]
    assert rows["router"][4:] == ["base", "model"]
    assert rows["persona-vega"][2] == "0/200"


def test_dataset_export_writes_alpaca_lines_and_the_llama_factory_entry(
    private_data_dir: Path, tmp_path: Path
) -> None:
    collect(private_data_dir, RouteDecided("remind me that the key is under the mat", "remember_note"))
    out = tmp_path / "export" / "router.jsonl"
    result = nexus(
        "dataset", "export", "router", "--format", "alpaca", "--out", str(out), data_dir=private_data_dir
    )
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(records) == seed_rows() + 1  # the seed examples and the collected one
    assert {r["output"] for r in records} == set(LABELS)
    assert records[-1]["instruction"] == "remind me that the key is under the mat"
    info = json.loads((out.parent / "dataset_info.json").read_text(encoding="utf-8"))
    assert info["nexus_router_alpaca"]["file_name"] == "router.jsonl"


def seed_rows() -> int:
    seed = get_spec("router").seed_path
    assert seed is not None
    return len(seed.read_text(encoding="utf-8").splitlines())


def test_dry_run_shows_the_plan_with_size_based_hyperparameters(private_data_dir: Path) -> None:
    result = nexus("train", "run", "router", "--dry-run", data_dir=private_data_dir)
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["train_examples"] + plan["eval_examples"] == seed_rows()
    assert plan["eval_examples"] > 0
    hp = plan["hyperparameters"]
    assert (hp["lora_r"], hp["lora_alpha"], hp["learning_rate"], hp["batch_size"]) == (8, 16, 1e-3, 8)
    assert hp["max_seq_len"] == 128
    assert hp["max_steps"] == get_spec("router").hyperparameters["max_steps"]  # the spec's own
    assert plan["trainer"][-2:] == ["-m", "training.train"]


def test_train_run_trains_gates_and_records_the_decision(private_data_dir: Path, tmp_path: Path) -> None:
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    (zoo / "persona.toml").write_text(
        'id = "persona-test"\ntask = "chat_persona"\ndataset = "persona:Vega"\nauto_promote = false\n'
        'train_threshold = 1\nsignals = ["thumbs_up"]\n'
        '[gate]\npolicy = "must_improve"\nmetric = "eval_loss"\n'
        "[hyperparameters]\nmax_steps = 5\ncheckpoint_every = 2\n",
        encoding="utf-8",
    )
    context = (("system", "You are Vega."), ("user", "Hello?"))
    collect(private_data_dir, ReplyRated("Vega", context, "Bridge is yours, Captain.", thumbs_up=True))
    env = {"NEXUS_ZOO_DIR": str(zoo), "NEXUS_TRAINER_PYTHON": str(fake_python(tmp_path))}

    result = nexus("train", "run", "persona-test", data_dir=private_data_dir, env=env)
    assert result.returncode == 0, result.stderr
    assert "Job 1 done" in result.stdout
    assert "Gate (must_improve): approved." in result.stdout  # the first adapter; a person promotes it
    assert "step 5/5" in result.stderr

    jobs = nexus("train", "jobs", data_dir=private_data_dir, env=env)
    assert jobs.stdout.split()[:3] == ["1", "persona-test", "DONE"]
    history = nexus("gate", "history", data_dir=private_data_dir, env=env)
    assert "persona-test" in history.stdout and "APPROVED" in history.stdout
    numbers = json.loads(history.stdout.splitlines()[1])
    assert numbers["candidate"] == {"eval_loss": 0.5}
    status = nexus("train", "status", data_dir=private_data_dir, env=env)
    assert "0/1" in status.stdout  # trained on: nothing new since


def test_mistakes_end_with_one_line_and_no_traceback(private_data_dir: Path) -> None:
    for args in (("train", "run", "nope"), ("dataset", "export", "router", "--format", "dpo")):
        result = nexus(*args, data_dir=private_data_dir)
        assert result.returncode == 1
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.model
def test_route_prints_only_a_label_with_the_base_model_and_with_a_promoted_adapter(
    private_data_dir: Path, tmp_path: Path, smollm2_path: Path
) -> None:
    result = nexus("route", "roll a d20 for initiative", data_dir=private_data_dir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() in LABELS

    adapter = make_lora_adapter(smollm2_path, tmp_path / "router.gguf")
    promoted = nexus("train", "promote", "router", str(adapter), data_dir=private_data_dir)
    assert promoted.returncode == 0, promoted.stderr
    result = nexus("route", "roll a d20 for initiative", data_dir=private_data_dir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() in LABELS
    rolled_back = nexus("train", "rollback", "router", data_dir=private_data_dir)
    assert "now uses its base model" in rolled_back.stdout


def router_examples(data_dir: Path) -> list[tuple[str, str]]:
    store = Store(data_dir / "nexus.db")
    try:
        with store.engine.connect() as conn:
            query = "SELECT signal, payload FROM training_example WHERE dataset = 'router'"
            rows = conn.exec_driver_sql(query)
            return [(signal, json.loads(payload)["label"]) for signal, payload in rows]
    finally:
        store.close()


def test_route_correct_records_the_example_the_chat_card_would(private_data_dir: Path) -> None:
    text = "yo chuck a d20 4 me"
    said = nexus("route", text, data_dir=private_data_dir).stdout.strip()
    other = next(label for label in LABELS if label != said)
    wrong = nexus("route", "--correct", other, text, data_dir=private_data_dir)
    assert wrong.returncode == 0, wrong.stderr
    assert wrong.stdout.splitlines()[0] == said and "correction" in wrong.stdout
    right = nexus("route", "--correct", said, text, data_dir=private_data_dir)
    assert right.returncode == 0, right.stderr
    assert "confirmation" in right.stdout
    assert sorted(router_examples(private_data_dir)) == sorted(
        [("route_corrected", other), ("route_confirmed", said)]
    )


def test_route_correct_with_an_unknown_label_names_the_labels_and_records_nothing(
    private_data_dir: Path,
) -> None:
    result = nexus("route", "--correct", "dance", "yo chuck a d20", data_dir=private_data_dir)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "'dance' is not a router label" in result.stderr and "roll_dice" in result.stderr
    assert router_examples(private_data_dir) == []
