"""Reading collected examples back and writing them as training files.

- ``messages``: ``{"messages": [...]}`` per line, what NEXUS's own trainer reads.
- ``alpaca``: instruction / input / output (+ system, history), LLaMA-Factory's default format and
  the one Unsloth's Alpaca notebooks read.
- ``sharegpt``: ``{"conversations": [{"from": "human"|"gpt"|"system", "value": ...}]}``; a leading
  system turn is how both LLaMA-Factory and Unsloth's ``standardize_sharegpt`` take a system prompt.
- ``dpo``: instruction / input / chosen / rejected (+ system, history) for LLaMA-Factory
  (``ranking: true``), plus ``prompt`` so TRL's and Unsloth's DPOTrainer read the same file.

Every export also writes ``dataset_info.json`` beside the file, the entry LLaMA-Factory needs.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from nexus_desktop.training.tables import TrainingExample

ExportFormat = Literal["alpaca", "sharegpt", "dpo", "messages"]
FORMATS: tuple[str, ...] = ("alpaca", "sharegpt", "dpo", "messages")
Message = dict[str, str]


class DatasetError(ValueError):
    """A dataset that cannot be exported or read; str() says what to do."""


def count_examples(engine: Engine, dataset: str, kinds: Iterable[str] | None = None) -> int:
    with Session(engine) as s:
        query = select(func.count()).select_from(TrainingExample).where(TrainingExample.dataset == dataset)
        if kinds is not None:
            query = query.where(col(TrainingExample.kind).in_(list(kinds)))
        return int(s.exec(query).one())


def iter_examples(
    engine: Engine, dataset: str, kind: str, signals: Iterable[str] | None = None
) -> list[TrainingExample]:
    with Session(engine) as s:
        query = select(TrainingExample).where(
            TrainingExample.dataset == dataset, TrainingExample.kind == kind
        )
        if signals is not None:
            query = query.where(col(TrainingExample.signal).in_(list(signals)))
        return list(s.exec(query.order_by(col(TrainingExample.id))))


# Classification examples become chats, so one trainer and one chat template serve every task.


def classification_messages(system_prompt: str, text: str, label: str | None = None) -> list[Message]:
    messages = [{"role": "system", "content": system_prompt}, {"role": "user", "content": text}]
    if label is not None:
        messages.append({"role": "assistant", "content": label})
    return messages


def _split(messages: list[Message]) -> tuple[str, list[list[str]], str, str]:
    """(system, history pairs, last user message, last assistant reply) of a chat ending in a reply."""
    system = "\n".join(m["content"] for m in messages if m["role"] == "system")
    turns = [m for m in messages if m["role"] in ("user", "assistant")]
    reply = turns.pop()["content"] if turns and turns[-1]["role"] == "assistant" else ""
    prompt = turns.pop()["content"] if turns and turns[-1]["role"] == "user" else ""
    history: list[list[str]] = []
    pending_user: str | None = None
    for turn in turns:
        if turn["role"] == "user":
            pending_user = turn["content"] if pending_user is None else f"{pending_user}\n{turn['content']}"
        else:
            # A greeting before the first user message pairs with an empty prompt.
            history.append([pending_user or "", turn["content"]])
            pending_user = None
    if pending_user is not None:
        prompt = f"{pending_user}\n{prompt}" if prompt else pending_user
    return system, history, prompt, reply


def to_alpaca(messages: list[Message]) -> dict[str, Any]:
    system, history, prompt, reply = _split(messages)
    record: dict[str, Any] = {"instruction": prompt, "input": "", "output": reply}
    if system:
        record["system"] = system
    if history:
        record["history"] = history
    return record


def to_sharegpt(messages: list[Message]) -> dict[str, Any]:
    system, history, prompt, reply = _split(messages)
    conversations = [{"from": "system", "value": system}] if system else []
    for user, assistant in history:
        conversations += [{"from": "human", "value": user}, {"from": "gpt", "value": assistant}]
    conversations += [{"from": "human", "value": prompt}, {"from": "gpt", "value": reply}]
    return {"conversations": conversations}


def to_dpo(prompt_messages: list[Message], chosen: str, rejected: str) -> dict[str, Any]:
    system, history, prompt, _ = _split([*prompt_messages, {"role": "assistant", "content": ""}])
    record: dict[str, Any] = {
        "instruction": prompt,
        "input": "",
        "prompt": prompt,
        "chosen": chosen,
        "rejected": rejected,
    }
    if system:
        record["system"] = system
    if history:
        record["history"] = history
    return record


DATASET_INFO: dict[str, dict[str, Any]] = {
    "alpaca": {
        "columns": {
            "prompt": "instruction",
            "query": "input",
            "response": "output",
            "system": "system",
            "history": "history",
        }
    },
    "sharegpt": {"formatting": "sharegpt", "columns": {"messages": "conversations"}},
    "dpo": {
        "ranking": True,
        "columns": {
            "prompt": "instruction",
            "query": "input",
            "chosen": "chosen",
            "rejected": "rejected",
            "system": "system",
            "history": "history",
        },
    },
}


def write_jsonl(records: Iterable[dict[str, Any]], path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    temporary = path.with_name(path.name + ".part")
    with temporary.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    temporary.replace(path)
    return count


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as error:
                raise DatasetError(
                    f"Line {number} of {path.name} is not JSON ({error}); fix or remove it."
                ) from None
            if not isinstance(record, dict):
                raise DatasetError(f"Line {number} of {path.name} is not a JSON object; fix or remove it.")
            yield record


def write_dataset_info(path: Path, fmt: str, name: str) -> Path | None:
    entry = DATASET_INFO.get(fmt)
    if entry is None:
        return None
    info_path = path.parent / "dataset_info.json"
    info: dict[str, Any] = {}
    if info_path.exists():
        try:
            info = json.loads(info_path.read_text(encoding="utf-8"))
        except ValueError:
            info = {}
    info[name] = {"file_name": path.name, **entry}
    info_path.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return info_path
