"""Writes the intent-router seed set and its held-out benchmark (deterministic; the files are committed).

    python -m training.router_data

The held-out phrasings use verbs and wordings that never occur in the seed set: a router must
generalise to how people actually ask, and a held-out set that repeats the training wording
would only measure memorisation.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from nexus_desktop.training.leakage import find_overlaps
from training import router_phrases as phrases

LABELS = ("chat", "roll_dice", "remember_note", "recall_note", "system_status", "build_module")
SYSTEM_PROMPT = (
    "You are the intent router of a desktop assistant. Classify the user's message into exactly one "
    "label: chat, roll_dice, remember_note, recall_note, system_status, build_module. "
    "Answer with the label only."
)
ROOT = Path(__file__).resolve().parent.parent
SEED_PATH = ROOT / "resources" / "training" / "router_seed.jsonl"
HELDOUT_PATH = ROOT / "resources" / "benchmarks" / "router_heldout.jsonl"


def _row(text: str, label: str) -> dict[str, object]:
    return {
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": text},
            {"role": "assistant", "content": label},
        ]
    }


def fill_templates(
    templates: list[str], slots: dict[str, list[str]], count: int, rng: random.Random
) -> list[str]:
    """Up to ``count`` distinct texts, cycling through the templates so each wording is used evenly."""
    texts: list[str] = []
    seen: set[str] = set()
    attempts = 0
    while len(texts) < count and attempts < count * 50:
        template = templates[attempts % len(templates)]
        attempts += 1
        text = template.format(**{key: rng.choice(options) for key, options in slots.items()})
        if text not in seen:
            seen.add(text)
            texts.append(text)
    return texts


def _values(slots: dict[str, list[str]]) -> list[str]:
    return [value for options in slots.values() for value in options]


def _clean(candidates: list[str], training: list[str], count: int) -> list[str]:
    """The first ``count`` candidates that share no wording or slot value with ``training``."""
    train_values, held_values = _values(phrases.TRAIN_SLOTS), _values(phrases.HELDOUT_SLOTS)
    leaking = {o.row for o in find_overlaps(training, candidates, values=train_values)}
    leaking |= {o.row for o in find_overlaps(candidates, training, values=held_values)}
    return [text for row, text in enumerate(candidates, start=1) if row not in leaking][:count]


def build(train_per_label: int = 120, heldout_per_label: int = 30, seed: int = 7) -> tuple[list, list]:
    rng = random.Random(seed)
    chat = phrases.TRAIN_CHAT
    # Chat has no slots: pad with lightly varied casing/punctuation of its own lines.
    chat_texts = (chat + [t.lower().rstrip(".!?") for t in chat])[:train_per_label]
    train_texts = {"chat": chat_texts}
    for label, templates in phrases.TRAIN_TEMPLATES.items():
        train_texts[label] = fill_templates(templates, phrases.TRAIN_SLOTS, train_per_label, rng)
    every_train = [text for texts in train_texts.values() for text in texts]

    held_rng = random.Random(seed + 1)  # its own draws: the suite stays put when the seed set grows
    held_texts = {"chat": _clean(phrases.HELDOUT_CHAT, every_train, heldout_per_label)}
    for label, templates in phrases.HELDOUT_TEMPLATES.items():
        candidates = fill_templates(templates, phrases.HELDOUT_SLOTS, heldout_per_label * 4, held_rng)
        held_texts[label] = _clean(candidates, every_train, heldout_per_label)
    short = {label: len(texts) for label, texts in held_texts.items() if len(texts) < heldout_per_label}
    if short:
        raise SystemExit(f"Too few clean held-out rows for {short}; add held-out wordings.")

    train = [_row(text, label) for label, texts in train_texts.items() for text in texts]
    heldout = [_row(text, label) for label, texts in held_texts.items() for text in texts]
    rng.shuffle(train)
    return train, heldout


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def main() -> None:
    train, heldout = build()
    write_jsonl(SEED_PATH, train)
    write_jsonl(HELDOUT_PATH, heldout)
    print(f"{len(train)} seed rows -> {SEED_PATH}\n{len(heldout)} held-out rows -> {HELDOUT_PATH}")


if __name__ == "__main__":
    main()
