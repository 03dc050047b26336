"""Chat datasets: JSONL rows ``{"messages": [{"role", "content"}, ...]}``, loss on the LAST assistant turn."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.progress import TrainerError, log

_ROLES = ("system", "user", "assistant", "tool")

Messages = list[dict[str, str]]


@dataclass(frozen=True)
class Example:
    input_ids: list[int]
    labels: list[int]
    """-100 where no loss is taken (the prompt); the token id on the last assistant turn."""

    @property
    def trained_tokens(self) -> int:
        return sum(1 for label in self.labels if label != -100)


def load_conversations(path: str | Path, what: str = "dataset") -> list[Messages]:
    """Read and check every row; a bad row is reported with its line number."""
    path = Path(path)
    if not path.is_file():
        raise TrainerError("dataset", f"The {what} file {path} does not exist; pick an existing JSONL file.")
    rows: list[Messages] = []
    try:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    rows.append(_parse_row(line, number, path.name))
    except UnicodeDecodeError:
        raise TrainerError("dataset", f"{path.name} is not UTF-8 text; save it as UTF-8 JSONL.") from None
    if not rows:
        raise TrainerError("dataset", f"The {what} {path.name} has no rows; add at least one conversation.")
    return rows


def _parse_row(line: str, number: int, name: str) -> Messages:
    where = f"Line {number} of {name}"
    try:
        row: Any = json.loads(line)
    except ValueError:
        raise TrainerError("dataset", f"{where} is not valid JSON; fix or remove that line.") from None
    messages = row.get("messages") if isinstance(row, dict) else None
    if not isinstance(messages, list) or not messages:
        raise TrainerError(
            "dataset", f'{where} has no "messages" list; each row needs {{"messages": [...]}}.'
        )
    for message in messages:
        if (
            not isinstance(message, dict)
            or message.get("role") not in _ROLES
            or not isinstance(message.get("content"), str)
        ):
            raise TrainerError(
                "dataset",
                f'{where} has a message without a valid "role" ({"/".join(_ROLES)}) and text "content"; '
                "fix that line.",
            )
    if messages[-1]["role"] != "assistant" or not messages[-1]["content"].strip():
        raise TrainerError(
            "dataset", f"{where} does not end with a non-empty assistant message to learn; fix that line."
        )
    if len(messages) < 2:
        raise TrainerError("dataset", f"{where} has no prompt before the assistant answer; fix that line.")
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def render(tokenizer: Any, messages: Messages, add_generation_prompt: bool = False) -> str:
    text = tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=add_generation_prompt
    )
    return str(text)


def tokenize(tokenizer: Any, conversations: list[Messages], max_seq_len: int) -> list[Example]:
    """Prompt and answer are tokenised apart, so the loss mask falls exactly on the answer tokens."""
    if not getattr(tokenizer, "chat_template", None):
        raise TrainerError(
            "base_model", "The base model has no chat template; pick an instruction-tuned (chat) model."
        )
    examples: list[Example] = []
    truncated = 0
    for conversation in conversations:
        prompt = render(tokenizer, conversation[:-1], add_generation_prompt=True)
        full = render(tokenizer, conversation)
        if not full.startswith(prompt):
            raise TrainerError(
                "base_model",
                "The model's chat template does not extend the prompt with the answer; pick another model.",
            )
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        answer_ids = tokenizer(full[len(prompt) :], add_special_tokens=False)["input_ids"]
        answer_ids = answer_ids[:max_seq_len]
        room = max_seq_len - len(answer_ids)
        if len(prompt_ids) > room:
            truncated += 1
            prompt_ids = prompt_ids[len(prompt_ids) - room :] if room else []
        examples.append(Example(prompt_ids + answer_ids, [-100] * len(prompt_ids) + answer_ids))
    if truncated:
        log(f"{truncated} of {len(examples)} conversations were cut to max_seq_len={max_seq_len} tokens")
    return examples


def batches(examples: list[Example], batch_size: int, seed: int) -> Iterator[list[Example]]:
    """Endless shuffled epochs; every batch is full (the last partial batch wraps into the next epoch)."""
    rng = random.Random(seed)
    pending: list[Example] = []
    while True:
        order = list(examples)
        rng.shuffle(order)
        pending.extend(order)
        while len(pending) >= batch_size:
            yield pending[:batch_size]
            pending = pending[batch_size:]
