"""Which lorebook entries the recent conversation brings into the prompt, and how they read there.

Follows the Character Card V2/V3 lorebook rules: constant entries always apply; an entry's keys
are looked for in the last ``scan_depth`` messages; ``selective`` entries also need one of their
secondary keys; with ``recursive_scanning`` the text of activated entries can activate more;
``token_budget`` drops the lowest-priority entries until the rest fit.

SillyTavern's own entry settings, which its exports keep in each entry's ``extensions`` (and its
world-info files at the entry's top level), are honoured too, so a card behaves as it did there:
``selectiveLogic`` (AND ANY, NOT ALL, NOT ANY, AND ALL), ``probability`` with ``useProbability``,
``exclude_recursion``, ``prevent_recursion``, ``delay_until_recursion``, ``match_whole_words`` and
``case_sensitive``.
"""

from __future__ import annotations

import logging
import math
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from nexus_desktop.cards.model import Lorebook, LorebookEntry, LorePosition

log = logging.getLogger(__name__)

DEFAULT_SCAN_DEPTH = 4
MAX_RECURSION_PASSES = 8
# Key regexes come from downloaded cards; long or nested-quantifier patterns can hang `re`.
MAX_PATTERN_CHARS = 500
_NESTED_QUANTIFIER = re.compile(r"\((?:[^()\\]|\\.)*[+*}](?:[^()\\]|\\.)*\)[+*{]")
_SLASHED_REGEX = re.compile(r"/(.+)/([a-z]*)", re.DOTALL)
_REGEX_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE}
# Scripts written without spaces between words: whole-word matching would never match there.
_NO_SPACE_SCRIPTS = re.compile(
    "[\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]"
)

TokenCounter = Callable[[str], int]
# SillyTavern's selectiveLogic: how the secondary keys of a selective entry combine.
AND_ANY, NOT_ALL, NOT_ANY, AND_ALL = 0, 1, 2, 3
# SillyTavern's positions: 0/1 around the character, 2/3 at the author's note (a depth in the
# chat), 4 at the entry's own depth, 5/6 around the example dialogue (which follows the character).
_ST_POSITIONS: dict[int, Literal["before_char", "after_char", "at_depth"]] = {
    0: "before_char",
    1: "after_char",
    2: "at_depth",
    3: "at_depth",
    4: "at_depth",
    5: "after_char",
    6: "after_char",
}
_AUTHORS_NOTE_POSITIONS = (2, 3)
AUTHORS_NOTE_DEPTH = 4
LoreRole = Literal["system", "user", "assistant"]
_ST_ROLES: dict[int, LoreRole] = {0: "system", 1: "user", 2: "assistant"}


@dataclass(frozen=True)
class DepthLore:
    """Lore that goes into the chat itself, ``depth`` messages from its end, as ``role``."""

    depth: int
    role: LoreRole
    text: str


def approximate_tokens(text: str) -> int:
    """About four characters a token, the usual rule of thumb for English."""
    return math.ceil(len(text) / 4)


def activate_entries(
    book: Lorebook | None,
    recent_messages: Sequence[str],
    *,
    token_counter: TokenCounter | None = None,
    chance: Callable[[], float] = random.random,
) -> list[LorebookEntry]:
    """The entries to inject for this conversation, in insertion order.

    ``recent_messages`` is oldest first; only the last ``scan_depth`` of them (4 if the book
    does not say) are searched for keys.  ``chance`` rolls for entries with a probability.
    """
    if book is None:
        return []
    depth = DEFAULT_SCAN_DEPTH if book.scan_depth is None else max(0, book.scan_depth)
    window = list(recent_messages)[-depth:] if depth else []
    candidates = [entry for entry in book.entries if entry.enabled]
    rolled: dict[int, bool] = {}

    def lucky(index: int) -> bool:
        """An entry with a probability is rolled for once per reply, as SillyTavern does."""
        if index not in rolled:
            rolled[index] = _passes_probability(candidates[index], chance)
        return rolled[index]

    active = [i for i, entry in enumerate(candidates) if entry.constant and lucky(i)]
    scanned = 0  # active[:scanned] have had their content searched already
    text = "\n".join(window)
    for passes in range(MAX_RECURSION_PASSES + 1):
        recursing = passes > 0
        chosen = set(active)
        active += [
            i
            for i, entry in enumerate(candidates)
            if i not in chosen
            and _may_activate(entry, recursing=recursing)
            and _triggered(entry, text)
            and lucky(i)
        ]
        if not book.recursive_scanning or passes == MAX_RECURSION_PASSES:
            break
        text = "\n".join(
            candidates[i].content
            for i in active[scanned:]
            if not _setting(candidates[i], "prevent_recursion")
        )
        scanned = len(active)
        if not text:
            break

    selected = [candidates[i] for i in active]
    if book.token_budget:
        selected = _fit_budget(selected, book.token_budget, token_counter or approximate_tokens)
    return sorted(selected, key=lambda entry: entry.insertion_order)


def _setting(entry: LorebookEntry, name: str) -> Any:
    """One of SillyTavern's entry settings: in ``extensions`` in cards (``exclude_recursion``), at
    the entry's top level in its world-info files, in camelCase there (``excludeRecursion``)."""
    first, *rest = name.split("_")
    camel = first + "".join(part.title() for part in rest)
    for place in (entry.extensions, entry.model_extra or {}):
        for key in (name, camel):
            if place.get(key) is not None:
                return place[key]
    return None


def _may_activate(entry: LorebookEntry, *, recursing: bool) -> bool:
    if recursing:
        return not _setting(entry, "exclude_recursion")
    return not _setting(entry, "delay_until_recursion")


def _passes_probability(entry: LorebookEntry, chance: Callable[[], float]) -> bool:
    if _setting(entry, "useProbability") is False:
        return True
    probability = _setting(entry, "probability")
    if not isinstance(probability, int | float) or isinstance(probability, bool) or probability >= 100:
        return True
    return chance() * 100 < probability


def _fit_budget(entries: list[LorebookEntry], budget: int, count: TokenCounter) -> list[LorebookEntry]:
    """Drop entries until the rest fit: lowest priority first, then lowest insertion order."""
    costs = [count(entry.content) for entry in entries]
    total = sum(costs)
    drop_order = sorted(
        range(len(entries)),
        key=lambda i: (entries[i].priority or 0, bool(entries[i].constant), entries[i].insertion_order, -i),
    )
    dropped: set[int] = set()
    for index in drop_order:
        if total <= budget:
            break
        dropped.add(index)
        total -= costs[index]
    return [entry for index, entry in enumerate(entries) if index not in dropped]


def _triggered(entry: LorebookEntry, text: str) -> bool:
    if not text or not any(_matches(entry, key, text) for key in entry.keys):
        return False
    secondary = [key for key in entry.secondary_keys if key.strip()]
    if not entry.selective or not secondary:
        return True
    found = [_matches(entry, key, text) for key in secondary]
    logic = _setting(entry, "selectiveLogic")
    if logic == NOT_ALL:
        return not all(found)
    if logic == NOT_ANY:
        return not any(found)
    if logic == AND_ALL:
        return all(found)
    return any(found)


def _matches(entry: LorebookEntry, key: str, text: str) -> bool:
    case_sensitive = entry.case_sensitive
    if case_sensitive is None:
        case_sensitive = _setting(entry, "case_sensitive")
    whole_words = _setting(entry, "match_whole_words") is not False
    pattern = _compile(key, entry.use_regex, bool(case_sensitive), whole_words)
    return pattern is not None and pattern.search(text) is not None


@lru_cache(maxsize=2048)
def _compile(
    key: str, use_regex: bool, case_sensitive: bool, whole_words: bool = True
) -> re.Pattern[str] | None:
    """A key as a pattern: ``/regex/flags``, a V3 ``use_regex`` key, or a literal (whole words
    unless the entry says otherwise)."""
    slashed = _SLASHED_REGEX.fullmatch(key.strip())
    if slashed or use_regex:
        source, flag_letters = (slashed.group(1), slashed.group(2)) if slashed else (key, "")
        flags = 0 if case_sensitive or slashed else re.IGNORECASE
        for letter in flag_letters:
            flags |= _REGEX_FLAGS.get(letter, 0)  # JavaScript's g, u and y change nothing here
        return _safe_regex(source, flags)
    literal = key.strip()
    if not literal:
        return None
    start = r"(?<!\w)" if whole_words and _is_word_char(literal[0]) else ""
    end = r"(?!\w)" if whole_words and _is_word_char(literal[-1]) else ""
    return re.compile(start + re.escape(literal) + end, 0 if case_sensitive else re.IGNORECASE)


def _safe_regex(source: str, flags: int) -> re.Pattern[str] | None:
    if len(source) > MAX_PATTERN_CHARS or _NESTED_QUANTIFIER.search(source):
        log.warning("Ignoring a lorebook key regex that could take too long to run: %.80s", source)
        return None
    try:
        return re.compile(source, flags)
    except re.error as error:
        log.warning("Ignoring a lorebook key regex Python cannot read (%s): %.80s", error, source)
        return None


def _is_word_char(char: str) -> bool:
    return (char.isalnum() or char == "_") and not _NO_SPACE_SCRIPTS.match(char)


def placement(entry: LorebookEntry) -> Literal["before_char", "after_char", "at_depth"]:
    """Where an entry goes: SillyTavern's number when the card has one, else the spec's words
    (unset means before the character)."""
    number = _setting(entry, "position")
    if isinstance(number, int) and not isinstance(number, bool) and number in _ST_POSITIONS:
        return _ST_POSITIONS[number]
    return entry.position or "before_char"


def render_lore(entries: Sequence[LorebookEntry], position: LorePosition) -> str:
    """The content of the entries placed at ``position`` in the system prompt, one per line."""
    parts = [_without_decorators(entry.content).strip() for entry in entries if placement(entry) == position]
    return "\n".join(part for part in parts if part)


def lore_at_depth(entries: Sequence[LorebookEntry]) -> list[DepthLore]:
    """The entries that go into the chat, one message per depth and role, as SillyTavern joins them."""
    grouped: dict[tuple[int, LoreRole], list[str]] = {}
    for entry in entries:
        text = _without_decorators(entry.content).strip()
        if placement(entry) != "at_depth" or not text:
            continue
        depth = _setting(entry, "depth")
        at_note = _setting(entry, "position") in _AUTHORS_NOTE_POSITIONS
        if at_note or not isinstance(depth, int) or isinstance(depth, bool):
            depth = AUTHORS_NOTE_DEPTH
        role = _ST_ROLES.get(_setting(entry, "role"), "system")
        grouped.setdefault((max(0, depth), role), []).append(text)
    return [DepthLore(depth, role, "\n".join(texts)) for (depth, role), texts in grouped.items()]


def _without_decorators(content: str) -> str:
    """V3 lorebooks may start an entry with ``@@decorator`` lines; they are settings, not lore."""
    lines = content.splitlines()
    while lines and lines[0].lstrip().startswith("@@"):
        lines.pop(0)
    return "\n".join(lines)
