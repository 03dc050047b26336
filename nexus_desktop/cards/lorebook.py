"""Which lorebook entries the recent conversation brings into the prompt, and how they read there.

Follows the Character Card V2/V3 lorebook rules: constant entries always apply; an entry's keys
are looked for in the last ``scan_depth`` messages; ``selective`` entries also need one of their
secondary keys; with ``recursive_scanning`` the text of activated entries can activate more;
``token_budget`` drops the lowest-priority entries until the rest fit.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Sequence
from functools import lru_cache

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


def approximate_tokens(text: str) -> int:
    """About four characters a token, the usual rule of thumb for English."""
    return math.ceil(len(text) / 4)


def activate_entries(
    book: Lorebook | None,
    recent_messages: Sequence[str],
    *,
    token_counter: TokenCounter | None = None,
) -> list[LorebookEntry]:
    """The entries to inject for this conversation, in insertion order.

    ``recent_messages`` is oldest first; only the last ``scan_depth`` of them (4 if the book
    does not say) are searched for keys.
    """
    if book is None:
        return []
    depth = DEFAULT_SCAN_DEPTH if book.scan_depth is None else max(0, book.scan_depth)
    window = list(recent_messages)[-depth:] if depth else []
    candidates = [entry for entry in book.entries if entry.enabled]

    active = [index for index, entry in enumerate(candidates) if entry.constant]
    scanned = 0  # active[:scanned] have had their content searched already
    text = "\n".join(window)
    for passes in range(MAX_RECURSION_PASSES + 1):
        chosen = set(active)
        active += [i for i, entry in enumerate(candidates) if i not in chosen and _triggered(entry, text)]
        if not book.recursive_scanning or passes == MAX_RECURSION_PASSES:
            break
        text = "\n".join(candidates[i].content for i in active[scanned:])
        scanned = len(active)
        if not text:
            break

    selected = [candidates[i] for i in active]
    if book.token_budget:
        selected = _fit_budget(selected, book.token_budget, token_counter or approximate_tokens)
    return sorted(selected, key=lambda entry: entry.insertion_order)


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
    if entry.selective and entry.secondary_keys:
        return any(_matches(entry, key, text) for key in entry.secondary_keys)
    return True


def _matches(entry: LorebookEntry, key: str, text: str) -> bool:
    pattern = _compile(key, entry.use_regex, bool(entry.case_sensitive))
    return pattern is not None and pattern.search(text) is not None


@lru_cache(maxsize=2048)
def _compile(key: str, use_regex: bool, case_sensitive: bool) -> re.Pattern[str] | None:
    """A key as a pattern: ``/regex/flags``, a V3 ``use_regex`` key, or a whole-word-aware literal."""
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
    start = r"(?<!\w)" if _is_word_char(literal[0]) else ""
    end = r"(?!\w)" if _is_word_char(literal[-1]) else ""
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


def render_lore(entries: Sequence[LorebookEntry], position: LorePosition) -> str:
    """The content of the entries placed at ``position`` (unset means before the character), one per line."""
    parts = [
        _without_decorators(entry.content).strip()
        for entry in entries
        if (entry.position or "before_char") == position
    ]
    return "\n".join(part for part in parts if part)


def _without_decorators(content: str) -> str:
    """V3 lorebooks may start an entry with ``@@decorator`` lines; they are settings, not lore."""
    lines = content.splitlines()
    while lines and lines[0].lstrip().startswith("@@"):
        lines.pop(0)
    return "\n".join(lines)
