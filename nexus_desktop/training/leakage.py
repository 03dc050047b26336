"""Does a held-out suite leak its training data?

A held-out row leaks when it shares wording with a training row: the same message, or any run of
``SHINGLE`` consecutive words.  A suite that leaks measures memorisation, and a bag of words scores
well on it, so the gate refuses to judge with one.  Words are compared lower-cased, without
punctuation.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from nexus_desktop.training.datasets import DatasetError

SHINGLE = 4
_WORD = re.compile(r"[\w']+")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower().replace("’", "'"))


def shingles(text: str, size: int = SHINGLE) -> set[tuple[str, ...]]:
    tokens = words(text)
    return {tuple(tokens[i : i + size]) for i in range(len(tokens) - size + 1)}


@dataclass(frozen=True)
class Overlap:
    row: int
    """1-based line of the held-out row in its suite."""
    text: str
    training_text: str
    shared: str

    def describe(self) -> str:
        return f"row {self.row} {self.text!r} shares {self.shared!r} with training row {self.training_text!r}"


def find_overlaps(
    training: Sequence[str], heldout: Sequence[str], size: int = SHINGLE, *, values: Sequence[str] = ()
) -> list[Overlap]:
    """Held-out rows (1-based) that share a whole message, a ``size``-word run, or one of ``values``
    (slot values a generator filled in) with a training row; the first match per row."""
    first_with: dict[tuple[str, ...], str] = {}
    whole: dict[tuple[str, ...], str] = {}
    for text in training:
        whole.setdefault(tuple(words(text)), text)
        for shingle in shingles(text, size):
            first_with.setdefault(shingle, text)
    value_words = [tuple(words(value)) for value in values if words(value)]
    overlaps: list[Overlap] = []
    for row, text in enumerate(heldout, start=1):
        tokens = tuple(words(text))
        if tokens in whole:
            overlaps.append(Overlap(row, text, whole[tokens], " ".join(tokens)))
            continue
        shared = next((s for s in sorted(shingles(text, size)) if s in first_with), None)
        if shared is not None:
            overlaps.append(Overlap(row, text, first_with[shared], " ".join(shared)))
            continue
        for value in value_words:
            if _contains(tokens, value):
                partner = next((t for t in training if _contains(tuple(words(t)), value)), None)
                if partner is not None:
                    overlaps.append(Overlap(row, text, partner, " ".join(value)))
                    break
    return overlaps


def _contains(tokens: tuple[str, ...], run: tuple[str, ...]) -> bool:
    return any(tokens[i : i + len(run)] == run for i in range(len(tokens) - len(run) + 1))


class LeakageError(DatasetError):
    """A held-out suite that shares wording with the training data; str() names the rows."""


def refuse_overlaps(overlaps: Sequence[Overlap], suite_name: str, *, shown: int = 5) -> None:
    if not overlaps:
        return
    listed = "; ".join(o.describe() for o in overlaps[:shown])
    more = f" (and {len(overlaps) - shown} more)" if len(overlaps) > shown else ""
    raise LeakageError(
        f"The held-out suite {suite_name} shares wording with the training data, so it would measure "
        f"memorisation: {listed}{more}. Reword or remove those held-out rows (or the training rows) "
        "so no message shares a run of four words."
    )
