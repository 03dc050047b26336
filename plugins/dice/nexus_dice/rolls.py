"""Dice notation and the random choices behind the tools, with the random source passed in.

Supported: ``NdM`` (``d6`` means ``1d6``), ``d%`` (a d100), ``+``/``-`` terms and modifiers
(``2d6+1d4-1``), keep highest/lowest (``4d6kh3``, ``2d20kl1``), and ``advantage`` /
``disadvantage`` after a single d20 (``d20 adv``), which rolls two and keeps the better/worse.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

MAX_DICE = 100
MAX_SIDES = 1000
MAX_TERMS = 20
MAX_PICK_OPTIONS = 100

_TERM = re.compile(r"([+-])?\s*(?:(\d*)d(\d+|%)(?:(kh|kl)(\d+))?|(\d+))", re.IGNORECASE)
_ADVANTAGE = re.compile(r"\s+(adv|advantage|dis|disadvantage)\s*$", re.IGNORECASE)


class DiceError(ValueError):
    """Notation that cannot be rolled; ``str()`` says what is wrong and how to write it."""


@dataclass(frozen=True)
class TermRoll:
    sign: int
    label: str
    rolls: tuple[int, ...]
    kept: tuple[int, ...]

    @property
    def total(self) -> int:
        return self.sign * sum(self.kept)


@dataclass(frozen=True)
class Roll:
    notation: str
    terms: tuple[TermRoll, ...]

    @property
    def total(self) -> int:
        return sum(term.total for term in self.terms)

    def describe(self) -> str:
        """``2d6+3: [4, 2] + 3 = 9``; dropped dice are shown struck through as ``~1~``."""
        parts = []
        for index, term in enumerate(self.terms):
            if term.label.isdigit():
                shown = term.label
            else:
                shown = "[" + ", ".join(_show_die(term, i) for i in range(len(term.rolls))) + "]"
            if index:
                parts.append("-" if term.sign < 0 else "+")
            elif term.sign < 0:
                shown = "-" + shown
            parts.append(shown)
        return f"{self.notation}: {' '.join(parts)} = {self.total}"


def _show_die(term: TermRoll, index: int) -> str:
    kept = list(term.kept)
    value = term.rolls[index]
    # A die is dropped if its value is not among the kept ones still unmatched to its left.
    for earlier in term.rolls[:index]:
        if earlier in kept:
            kept.remove(earlier)
    return str(value) if value in kept else f"~{value}~"


_IN_SENTENCE = re.compile(
    r"(?<![\w])\d*d(?:\d+|%)(?:k[hl]\d+)?(?:\s*[+-]\s*\d+(?!\s*d))*(?:\s+(?:adv|advantage|dis|disadvantage)\b)?",
    re.IGNORECASE,
)


def roll(notation: str, rng: random.Random) -> Roll:
    """Roll ``notation``, or the dice named in a sentence ("roll a d20 for initiative");
    raises ``DiceError`` when there are none."""
    try:
        return _roll_exact(notation, rng)
    except DiceError:
        found = _IN_SENTENCE.search(notation)
        if found is None or found.group(0).strip() == notation.strip():
            raise
        return _roll_exact(found.group(0), rng)


def _roll_exact(notation: str, rng: random.Random) -> Roll:
    text = " ".join(notation.strip().split())
    if not text:
        raise DiceError("No dice were given; write them like 2d6, d20+3 or 4d6kh3.")
    advantage = _ADVANTAGE.search(text)
    mode = advantage.group(1).lower()[:3] if advantage else ""
    body = text[: advantage.start()] if advantage else text
    terms: list[TermRoll] = []
    position = 0
    compact = body.replace(" ", "")
    while position < len(compact):
        match = _TERM.match(compact, position)
        if not match or match.end() == position or (terms and not match.group(1)):
            raise DiceError(f"{notation!r} is not dice notation; write it like 2d6, d20+3 or 4d6kh3.")
        if len(terms) >= MAX_TERMS:
            raise DiceError(f"{notation!r} has more than {MAX_TERMS} parts; roll fewer at once.")
        terms.append(_roll_term(match, rng))
        position = match.end()
    if mode:
        terms = [_with_advantage(terms, mode, notation, rng)]
    return Roll(text, tuple(terms))


def _roll_term(match: re.Match[str], rng: random.Random) -> TermRoll:
    sign = -1 if match.group(1) == "-" else 1
    if match.group(6) is not None:
        value = int(match.group(6))
        return TermRoll(sign, str(value), (value,), (value,))
    count = int(match.group(2) or 1)
    sides = 100 if match.group(3) == "%" else int(match.group(3))
    if not 1 <= count <= MAX_DICE:
        raise DiceError(f"Roll between 1 and {MAX_DICE} dice at a time, not {count}.")
    if not 2 <= sides <= MAX_SIDES:
        raise DiceError(f"A die needs between 2 and {MAX_SIDES} sides, not {sides}.")
    rolls = tuple(rng.randint(1, sides) for _ in range(count))
    kept = rolls
    label = f"{count}d{match.group(3)}"
    if match.group(4):
        keep = int(match.group(5))
        if not 1 <= keep <= count:
            raise DiceError(f"Keep between 1 and {count} of {label}, not {keep}.")
        ordered = sorted(rolls, reverse=match.group(4).lower() == "kh")
        kept = tuple(ordered[:keep])
        label += f"{match.group(4).lower()}{keep}"
    return TermRoll(sign, label, rolls, kept)


def _with_advantage(terms: list[TermRoll], mode: str, notation: str, rng: random.Random) -> TermRoll:
    first = terms[0] if len(terms) == 1 else None
    if first is None or first.label.isdigit() or len(first.rolls) != 1 or "k" in first.label:
        raise DiceError(f"Advantage applies to one plain die, like 'd20 adv'; {notation!r} is not that.")
    sides_text = first.label.split("d", 1)[1]
    sides = 100 if sides_text == "%" else int(sides_text)
    pair = (first.rolls[0], rng.randint(1, sides))
    best = max(pair) if mode == "adv" else min(pair)
    return TermRoll(1, f"{first.label} {'advantage' if mode == 'adv' else 'disadvantage'}", pair, (best,))


def flip(count: int, rng: random.Random) -> list[str]:
    if not 1 <= count <= MAX_DICE:
        raise DiceError(f"Flip between 1 and {MAX_DICE} coins at a time, not {count}.")
    return [rng.choice(("heads", "tails")) for _ in range(count)]


def pick(options: list[str], count: int, rng: random.Random) -> list[str]:
    choices = [option.strip() for option in options if option.strip()]
    if len(choices) < 2:
        raise DiceError("Give at least two options to pick from, e.g. tea, coffee.")
    if len(choices) > MAX_PICK_OPTIONS:
        raise DiceError(f"Give at most {MAX_PICK_OPTIONS} options to pick from.")
    if not 1 <= count <= len(choices):
        raise DiceError(f"Pick between 1 and {len(choices)} of the options, not {count}.")
    return rng.sample(choices, count)
