"""Engram with the real SmolLM2 embeddings: recall by meaning, scopes, forget, and a crashing child."""

from __future__ import annotations

import asyncio
import os
import re
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from nexus_desktop.changes import Change, Changes
from nexus_desktop.db.store import AsyncStore, Store
from nexus_desktop.engram.embedder import Embedder, EmbedderCrashedError, EmbedderError
from nexus_desktop.engram.service import Engram, MemoryTextError
from nexus_desktop.engram.store import MemoryNotFoundError
from nexus_desktop.llm.catalog import default_model_path

pytestmark = pytest.mark.model

T = TypeVar("T")

# Facts, and questions about each that share no content word with it (checked below).
FACTS_AND_PARAPHRASES = [
    ("Mara keeps three cats in her flat.", "Does she own any pets?"),
    ("Mara's brother is a pilot for an airline.", "What does her sibling do for a living?"),
    ("Mara hates the taste of coffee and only drinks tea.", "Which hot drink does she prefer?"),
    ("Mara broke her left arm skiing in January.", "Was she injured recently?"),
    ("Mara is saving money to buy a sailboat.", "What boat purchase is she planning?"),
    ("Mara grew up on a farm in Ireland.", "Where was her childhood home?"),
    ("Mara reads detective novels before bed.", "What books does she enjoy at night?"),
    ("Mara's wedding anniversary is in October.", "When did she get married?"),
    ("The user's daughter started primary school this year.", "How old is my kid?"),
    ("The user plays chess online every evening.", "Which board game do I enjoy?"),
]
_STOPWORDS = frozenset(
    {
        *("a", "an", "the", "is", "are", "was", "in", "on", "at", "for", "to", "of", "and", "or"),
        *("her", "she", "his", "he", "my", "i", "do", "does", "did", "what", "which", "when", "where"),
        *("how", "any", "this", "that", "every", "only", "before", "s", "user"),
    }
)


def words(text: str) -> set[str]:
    return {word for word in re.findall(r"[a-z]+", text.lower()) if word not in _STOPWORDS}


def bag_of_words_first(query: str, facts: list[str]) -> int | None:
    """The baseline: the fact sharing the most words with the query (None on a tie or no overlap)."""
    overlaps = [len(words(query) & words(fact)) for fact in facts]
    best = max(overlaps)
    return overlaps.index(best) if best > 0 and overlaps.count(best) == 1 else None


def run_with_engram(tmp_path: Path, body: Callable[[Engram, list[int]], Awaitable[T]]) -> T:
    """``body(engram, character ids)`` on a fresh database with two characters, closed after."""
    store = Store(tmp_path / "nexus.db")
    ids = [store.add_character(name, {}).id for name in ("Vega", "Orin")]

    async def scenario() -> T:
        engram = Engram(AsyncStore(store), Changes(), Embedder(default_model_path()))
        try:
            return await body(engram, [i for i in ids if i is not None])
        finally:
            await engram.aclose()

    try:
        return asyncio.run(scenario())
    finally:
        store.close()


def test_recall_by_meaning_finds_paraphrased_facts_better_than_shared_words(tmp_path: Path) -> None:
    facts = [fact for fact, _ in FACTS_AND_PARAPHRASES]
    queries = [query for _, query in FACTS_AND_PARAPHRASES]
    for fact, query in FACTS_AND_PARAPHRASES:  # the point of the test: nothing to match word for word
        assert not words(fact) & words(query), (fact, query)

    async def body(engram: Engram, ids: list[int]) -> list[int | None]:
        remembered = [await engram.imprint(ids[0], fact) for fact in facts]
        firsts: list[int | None] = []
        for query in queries:
            (best, _score), *_ = await engram.recall(ids[0], query, k=3)
            firsts.append(next(i for i, memory in enumerate(remembered) if memory.id == best.id))
        return firsts

    firsts = run_with_engram(tmp_path, body)
    learned = sum(first == i for i, first in enumerate(firsts))
    baseline = sum(bag_of_words_first(query, facts) == i for i, query in enumerate(queries))
    n = len(queries)
    print(f"\nright fact ranked first on {n} paraphrases: SmolLM2 embeddings {learned}/{n}, ", end="")
    print(f"bag of words {baseline}/{n}")
    print(f"  (chance: {n / n:.0f}/{n}; per query: {firsts})")
    assert learned >= baseline
    # 4 of 10 or better happens by chance about 1.3% of the time: a real signal, if a weak one.
    assert learned >= 4, f"only {learned}/{n} paraphrases found their fact"
    assert baseline < learned


def test_a_characters_memory_is_never_recalled_for_another_and_a_shared_one_is_for_both(
    tmp_path: Path,
) -> None:
    async def body(engram: Engram, ids: list[int]) -> dict[str, list[list[str]]]:
        vega, orin = ids
        await engram.imprint(vega, "Vega's ship is called the Kestrel.")
        await engram.imprint(orin, "Orin's ship is called the Heron.")
        await engram.imprint(vega, "Everyone in the crew meets on Fridays.", shared=True)
        seen = {}
        for name, character in (("vega", vega), ("orin", orin)):
            recalls = [await engram.recall(character, "What is the ship's name?", k=10)]
            recalls.append(await engram.recall(character, "When does the crew meet?", k=10))
            seen[name] = [[memory.text for memory, _ in recalled] for recalled in recalls]
        seen["orin only"] = [
            [m.text for m, _ in await engram.recall(orin, "ship", k=10, include_shared=False)]
        ]
        return seen

    seen = run_with_engram(tmp_path, body)
    for recalled in seen["vega"]:
        assert "Orin's ship is called the Heron." not in recalled
        assert "Everyone in the crew meets on Fridays." in recalled
    for recalled in seen["orin"]:
        assert "Vega's ship is called the Kestrel." not in recalled
        assert "Everyone in the crew meets on Fridays." in recalled
    assert seen["orin only"] == [["Orin's ship is called the Heron."]]


def test_forget_removes_a_memory_from_recall_and_announces_it(tmp_path: Path) -> None:
    heard: list[Change] = []

    async def body(engram: Engram, ids: list[int]) -> tuple[list[str], list[str], str]:
        engram.changes.subscribe(heard.append)
        kept = await engram.imprint(ids[0], "The user's cat is named Pixel.")
        gone = await engram.imprint(ids[0], "The user was born in Oslo.")
        before = [m.text for m, _ in await engram.recall(ids[0], "Where is my hometown?", k=5)]
        assert gone.id is not None
        await engram.forget(gone.id)
        after = [m.text for m, _ in await engram.recall(ids[0], "Where is my hometown?", k=5)]
        with pytest.raises(MemoryNotFoundError) as missing:
            await engram.forget(gone.id)
        assert [m.id for m in await engram.list(ids[0])] == [kept.id]
        return before, after, str(missing.value)

    before, after, missing = run_with_engram(tmp_path, body)
    assert "The user was born in Oslo." in before
    assert after == ["The user's cat is named Pixel."]
    assert "There is no memory #" in missing and "list a character's memories" in missing
    assert [change.kind for change in heard] == ["memories"] * 3


def test_empty_or_huge_text_is_refused_and_nothing_is_stored(tmp_path: Path) -> None:
    async def body(engram: Engram, ids: list[int]) -> list[str]:
        for bad in ("   ", "x" * 2001):
            with pytest.raises(MemoryTextError):
                await engram.imprint(ids[0], bad)
        with pytest.raises(LookupError, match="no character #999"):
            await engram.imprint(999, "A fact about nobody.")
        await engram.imprint(ids[0], "  A fact   worth keeping. ")  # the positive control
        return [memory.text for memory in await engram.list(ids[0])]

    assert run_with_engram(tmp_path, body) == ["A fact worth keeping."]


def test_a_crashing_embedding_process_gives_a_clear_error_and_the_next_call_starts_afresh() -> None:
    async def scenario() -> tuple[str, int, int | None]:
        embedder = Embedder(default_model_path())
        try:
            await embedder.embed(["warm up"])
            pid = embedder.pid
            assert pid is not None
            # Long texts keep the child busy for many seconds; it dies a moment into them.
            working = asyncio.ensure_future(embedder.embed(["a long story " * 130] * 30))
            await asyncio.sleep(0.5)
            os.kill(pid, signal.SIGSEGV)
            with pytest.raises(EmbedderCrashedError) as crashed:
                await asyncio.wait_for(working, timeout=30)
            (again,) = await embedder.embed(["the next call works"])
            return str(crashed.value), len(again), embedder.pid
        finally:
            await embedder.aclose()

    message, dimensions, new_pid = asyncio.run(scenario())
    assert "The embedding process crashed (SIGSEGV) while embedding text" in message
    assert "the app is fine" in message
    assert dimensions == 576 and new_pid is not None


def test_without_a_model_every_call_says_what_to_do() -> None:
    async def scenario() -> str:
        embedder = Embedder(None)
        with pytest.raises(EmbedderError) as error:
            await embedder.embed(["anything"])
        return str(error.value)

    assert "reinstall NEXUS Desktop" in asyncio.run(scenario())
