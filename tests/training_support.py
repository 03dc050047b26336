"""A tiny zoo, collected examples and a fake trainer for the training service and page tests."""

from __future__ import annotations

import sys
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import Session

from nexus_desktop.training.service import TrainingService
from nexus_desktop.training.tables import TrainingExample
from tests.test_training_jobs import write_fake_trainer

SPEC = """
id = "persona-test"
name = "Test persona"
base_model = "{base}"
task = "chat_persona"
dataset = "persona:Test"
train_threshold = 8
signals = ["thumbs_up"]
auto_promote = false
priority = 10

[gate]
policy = "no_regression"
metric = "eval_loss"
threshold = 1.0

[hyperparameters]
max_steps = {steps}
checkpoint_every = 2
fake_step_seconds = {delay}
"""

SECOND = """
id = "router-test"
name = "Test router"
base_model = "{base}"
task = "classifier"
dataset = "router-test"
labels = ["chat", "roll_dice"]
train_threshold = 50
priority = 5
"""


def make_zoo(folder: Path, *, steps: int = 10, delay: float = 0.0) -> Path:
    zoo = folder / "zoo"
    zoo.mkdir(parents=True, exist_ok=True)
    base = folder / "base.gguf"
    base.write_bytes(b"not a real model")
    (zoo / "persona.toml").write_text(SPEC.format(base=base, steps=steps, delay=delay), encoding="utf-8")
    (zoo / "router.toml").write_text(SECOND.format(base=base), encoding="utf-8")
    return zoo


def add_examples(engine: Engine, count: int, *, preference: int = 0) -> None:
    with Session(engine) as s:
        for n in range(count):
            payload = {
                "messages": [
                    {"role": "user", "content": f"Hello number {n}"},
                    {"role": "assistant", "content": f"Hi there, {n}!"},
                ]
            }
            s.add(
                TrainingExample(
                    dataset="persona:Test",
                    kind="sft",
                    signal="thumbs_up",
                    content_hash=f"s{n}",
                    payload=payload,
                )
            )
        for n in range(preference):
            payload = {
                "prompt": [{"role": "user", "content": f"Q{n}"}],
                "chosen": f"good {n}",
                "rejected": f"bad {n}",
            }
            s.add(
                TrainingExample(
                    dataset="persona:Test",
                    kind="preference",
                    signal="edit",
                    content_hash=f"p{n}",
                    payload=payload,
                )
            )
        s.commit()


def make_service(engine: Engine, folder: Path, *, steps: int = 10, delay: float = 0.0) -> TrainingService:
    script = write_fake_trainer(folder)
    return TrainingService(
        engine,
        trainer_command=[sys.executable, str(script)],
        zoo_folder=make_zoo(folder, steps=steps, delay=delay),
        jobs_dir=folder / "jobs",
        datasets_dir=folder / "datasets",
    )
