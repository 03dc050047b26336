"""The lexical baseline: a bag-of-words classifier trained on the same rows as a zoo classifier.

A multinomial naive Bayes over lowercased word unigrams and bigrams, with Laplace smoothing, in
plain Python.  It costs microseconds and no model call, so a learned classifier is worth having
only when it beats this one on the same held-out suite: the gate puts its score beside the
candidate's, and the intent router falls back to it when it does as well as the learned router.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from nexus_desktop import paths
from nexus_desktop.training.datasets import DatasetError, read_jsonl

FORMAT = "nexus-lexical-nb"
VERSION = 1
WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")

Row = tuple[str, str]
"""(text, label)"""


class LexicalError(ValueError):
    """A baseline file that cannot be read; str() says which and what to do."""


def features(text: str, *, bigrams: bool = True) -> list[str]:
    words = WORD.findall(text.lower())
    if not bigrams:
        return words
    return words + [f"{a} {b}" for a, b in itertools.pairwise(words)]


@dataclass(frozen=True)
class LexicalClassifier:
    labels: tuple[str, ...]
    """In tie-break order: of two labels with the same score, the earlier one wins."""
    documents: dict[str, int]
    counts: dict[str, dict[str, int]]
    alpha: float = 1.0
    bigrams: bool = True

    @classmethod
    def fit(
        cls, rows: Iterable[Row], labels: Sequence[str], *, alpha: float = 1.0, bigrams: bool = True
    ) -> LexicalClassifier:
        """Train on ``(text, label)`` rows; rows whose label is not in ``labels`` are left out (the
        learned model cannot answer them either)."""
        if not labels:
            raise DatasetError("A lexical baseline needs at least one label.")
        documents = dict.fromkeys(labels, 0)
        counts: dict[str, Counter[str]] = {label: Counter() for label in labels}
        for text, label in rows:
            if label in documents:
                documents[label] += 1
                counts[label].update(features(text, bigrams=bigrams))
        return cls(tuple(labels), documents, {k: dict(v) for k, v in counts.items()}, alpha, bigrams)

    @property
    def examples(self) -> int:
        return sum(self.documents.values())

    @cached_property
    def _vocabulary(self) -> frozenset[str]:
        return frozenset(f for per_label in self.counts.values() for f in per_label)

    @cached_property
    def _denominators(self) -> dict[str, float]:
        size = self.alpha * len(self._vocabulary)
        return {label: sum(self.counts[label].values()) + size for label in self.labels}

    def log_scores(self, text: str) -> dict[str, float]:
        """log P(label) + sum of log P(feature | label) over the features seen in training (the
        others say nothing about any label)."""
        found = [f for f in features(text, bigrams=self.bigrams) if f in self._vocabulary]
        total_docs = self.examples + self.alpha * len(self.labels)
        scores: dict[str, float] = {}
        for label in self.labels:
            per_label, denominator = self.counts[label], self._denominators[label]
            score = math.log((self.documents[label] + self.alpha) / total_docs)
            for feature in found:
                score += math.log((per_label.get(feature, 0) + self.alpha) / denominator)
            scores[label] = score
        return scores

    def predict(self, text: str) -> str:
        scores = self.log_scores(text)
        best = self.labels[0]
        for label in self.labels[1:]:
            if scores[label] > scores[best]:
                best = label
        return best

    def accuracy(self, rows: Sequence[Row]) -> float:
        if not rows:
            raise DatasetError("There are no held-out rows to score the lexical baseline on.")
        return sum(self.predict(text) == label for text, label in rows) / len(rows)

    # Saving and loading ---------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "labels": list(self.labels),
            "alpha": self.alpha,
            "bigrams": self.bigrams,
            "documents": self.documents,
            "counts": self.counts,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "the lexical baseline") -> LexicalClassifier:
        if data.get("format") != FORMAT or data.get("version") != VERSION:
            raise LexicalError(f"{where} is not a version {VERSION} {FORMAT} file; judge the model again.")
        try:
            labels = tuple(str(label) for label in data["labels"])
            documents = {label: int(data["documents"][label]) for label in labels}
            counts = {label: {str(k): int(v) for k, v in data["counts"][label].items()} for label in labels}
            return cls(labels, documents, counts, float(data["alpha"]), bool(data["bigrams"]))
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise LexicalError(f"{where} is damaged ({error!r}); judge the model again.") from None

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        partial.write_text(json.dumps(self.to_json(), sort_keys=True), encoding="utf-8")
        partial.replace(path)
        return path

    @classmethod
    def load(cls, path: Path) -> LexicalClassifier:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise LexicalError(f"The lexical baseline {path} cannot be read ({error}).") from None
        if not isinstance(data, dict):
            raise LexicalError(f"The lexical baseline {path} is not a JSON object; judge the model again.")
        return cls.from_json(data, str(path))


def saved_path(model_id: str) -> Path:
    """Where the gate keeps a zoo model's latest baseline (the one its latest decision scored)."""
    return paths.data_dir() / "training" / "lexical" / f"{model_id}.json"


def chat_row(messages: Sequence[Mapping[str, str]]) -> Row | None:
    """(last user turn, last assistant turn) of a chat, or None when it lacks either."""
    if not messages or messages[-1].get("role") != "assistant":
        return None
    users = [m for m in messages[:-1] if m.get("role") == "user"]
    if not users:
        return None
    return str(users[-1]["content"]), str(messages[-1]["content"]).strip()


def rows_from_chats(chats: Iterable[Sequence[Mapping[str, str]]]) -> list[Row]:
    return [row for chat in chats if (row := chat_row(chat)) is not None]


def rows_from_jsonl(path: Path) -> list[Row]:
    """The rows of a training file ``prepare()`` wrote: ``{"messages": [system, user, label]}``."""
    return rows_from_chats(record["messages"] for record in read_jsonl(path) if "messages" in record)
