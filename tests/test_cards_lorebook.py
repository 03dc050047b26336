"""Lorebook entries come into the prompt when the conversation mentions them, within budget."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from nexus_desktop.cards.lorebook import DepthLore, activate_entries, lore_at_depth, render_lore
from nexus_desktop.cards.model import Lorebook, LorebookEntry


def entry(keys: list[str], content: str, **fields: Any) -> LorebookEntry:
    return LorebookEntry(keys=keys, content=content, **fields)


def book(*entries: LorebookEntry, **fields: Any) -> Lorebook:
    return Lorebook(entries=list(entries), **fields)


def contents(entries: list[LorebookEntry]) -> list[str]:
    return [e.content for e in entries]


def test_a_key_in_a_recent_message_injects_its_entry() -> None:
    lore = book(entry(["dragon"], "Dragons sleep on gold."), entry(["elf"], "Elves live long."))

    active = activate_entries(lore, ["hello", "Tell me about the dragon"])

    assert contents(active) == ["Dragons sleep on gold."]


def test_a_key_older_than_scan_depth_does_not_inject() -> None:
    lore = book(entry(["dragon"], "Dragons sleep on gold."), scan_depth=2)

    assert activate_entries(lore, ["the dragon!", "two", "three"]) == []
    assert contents(activate_entries(lore, ["the dragon!", "two"])) == ["Dragons sleep on gold."]


def test_scan_depth_defaults_to_the_last_four_messages() -> None:
    lore = book(entry(["dragon"], "Dragons sleep on gold."))

    assert activate_entries(lore, ["dragon", "1", "2", "3", "4"]) == []
    assert len(activate_entries(lore, ["dragon", "1", "2", "3"])) == 1


def test_scan_depth_zero_scans_nothing_but_constants_still_apply() -> None:
    lore = book(entry(["dragon"], "keyed"), entry([], "always", constant=True), scan_depth=0)

    assert contents(activate_entries(lore, ["dragon"])) == ["always"]


def test_keys_match_any_case_unless_the_entry_is_case_sensitive() -> None:
    lore = book(entry(["Dragon"], "loose"), entry(["Dragon"], "strict", case_sensitive=True))

    assert contents(activate_entries(lore, ["a DRAGON appears"])) == ["loose"]
    assert contents(activate_entries(lore, ["a Dragon appears"])) == ["loose", "strict"]


@pytest.mark.parametrize(
    ("key", "message", "expected"),
    [
        ("cat", "I like concatenation", False),
        ("cat", "My cat!", True),
        ("cat", "cats", False),
        ("space station", "the Space Station hums", True),
        ("Dr.", "ask Dr.Who", True),
        ("café", "au café, s'il vous plaît", True),
        ("龙", "我看见一条龙王", True),  # no spaces between words in Chinese: substring match
    ],
)
def test_keys_match_whole_words_where_words_have_edges(key: str, message: str, expected: bool) -> None:
    lore = book(entry([key], "lore"))

    assert bool(activate_entries(lore, [message])) is expected


def test_slash_regex_keys_use_their_own_flags() -> None:
    lore = book(entry([r"/drag(on|ons)\b/i"], "regex"), entry([r"/^Exact$/"], "anchored"))

    assert contents(activate_entries(lore, ["DRAGONS!"])) == ["regex"]
    assert contents(activate_entries(lore, ["Exact"])) == ["anchored"]
    assert activate_entries(lore, ["exact"]) == []


def test_v3_use_regex_keys_are_patterns_without_slashes() -> None:
    lore = book(entry([r"comet\s+\w+"], "omen", use_regex=True))

    assert contents(activate_entries(lore, ["look, a Comet Halley"])) == ["omen"]
    assert activate_entries(lore, ["comets"]) == []


def test_broken_or_dangerous_regex_keys_are_ignored_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    lore = book(entry(["/([unclosed/"], "broken"), entry([r"/(a+)+$/"], "slow"), entry(["ok"], "fine"))

    with caplog.at_level(logging.WARNING):
        active = activate_entries(lore, ["aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa! ok"])

    assert contents(active) == ["fine"]
    assert "could take too long" in caplog.text


def test_selective_entries_also_need_a_secondary_key() -> None:
    lore = book(entry(["castle"], "secret passage", selective=True, secondary_keys=["night", "moon"]))

    assert activate_entries(lore, ["the castle at noon"]) == []
    assert contents(activate_entries(lore, ["the castle under the moon"])) == ["secret passage"]


def test_selective_without_secondary_keys_works_like_a_plain_entry() -> None:
    lore = book(entry(["castle"], "walls", selective=True))

    assert contents(activate_entries(lore, ["castle"])) == ["walls"]


@pytest.mark.parametrize(
    ("logic", "message", "expected"),
    [
        (0, "castle moon", True),  # AND ANY
        (0, "castle", False),
        (1, "castle moon", True),  # NOT ALL: one secondary key is missing
        (1, "castle moon night", False),
        (2, "castle", True),  # NOT ANY
        (2, "castle night", False),
        (3, "castle moon night", True),  # AND ALL
        (3, "castle moon", False),
    ],
)
def test_sillytavern_selective_logic_combines_the_secondary_keys_as_it_did_there(
    logic: int, message: str, expected: bool
) -> None:
    options = {"selectiveLogic": logic}
    lore = book(
        entry(["castle"], "lore", selective=True, secondary_keys=["moon", "night"], extensions=options)
    )

    assert bool(activate_entries(lore, [message])) is expected


def test_an_entry_with_a_probability_applies_only_when_its_roll_succeeds() -> None:
    settings = {"probability": 30, "useProbability": True}
    lore = book(entry(["fog"], "fog lore", extensions=settings), entry([], "always", constant=True))

    unlucky = activate_entries(lore, ["fog"], chance=lambda: 0.5)
    lucky = activate_entries(lore, ["fog"], chance=lambda: 0.1)
    switched_off = book(entry(["fog"], "fog lore", extensions={**settings, "useProbability": False}))

    assert contents(unlucky) == ["always"]
    assert contents(lucky) == ["always", "fog lore"]
    assert contents(activate_entries(switched_off, ["fog"], chance=lambda: 0.99)) == ["fog lore"]


def test_recursion_settings_keep_entries_out_of_or_only_in_recursion() -> None:
    ship = entry(["ship"], "The ship sailed from Port Vell.")
    port = entry(["Port Vell"], "Port Vell is ruled by the Salt Queen.")
    queen = entry(["Salt Queen"], "The Salt Queen is old.")

    excluded = book(ship, port.model_copy(update={"extensions": {"exclude_recursion": True}}), queen)
    prevented = book(ship.model_copy(update={"extensions": {"prevent_recursion": True}}), port, queen)
    delayed = book(entry(["ship"], "only through lore", extensions={"delay_until_recursion": True}))

    assert contents(activate_entries(excluded.model_copy(update={"recursive_scanning": True}), ["ship"])) == [
        "The ship sailed from Port Vell."
    ]
    assert len(activate_entries(prevented.model_copy(update={"recursive_scanning": True}), ["ship"])) == 1
    assert activate_entries(delayed, ["ship"]) == []


def test_match_whole_words_off_finds_keys_inside_longer_words() -> None:
    lore = book(entry(["cat"], "cats", extensions={"match_whole_words": False}), entry(["dog"], "dogs"))

    assert contents(activate_entries(lore, ["categories of dogma"])) == ["cats"]


def test_a_sillytavern_world_info_file_keeps_its_settings_at_the_entry_top_level() -> None:
    world = Lorebook.model_validate(
        {
            "entries": {
                "0": {
                    "uid": 0,
                    "key": ["castle"],
                    "keysecondary": ["moon"],
                    "content": "no moon tonight",
                    "selective": True,
                    "selectiveLogic": 2,
                    "caseSensitive": None,
                    "matchWholeWords": False,
                    "disable": False,
                }
            }
        }
    )

    assert contents(activate_entries(world, ["the castles"])) == ["no moon tonight"]
    assert activate_entries(world, ["the castle and the moon"]) == []


def test_sillytavern_positions_outside_the_system_prompt_become_lore_in_the_chat() -> None:
    exported = entry(
        ["a"],
        "at depth 3, as the user",
        position="after_char",
        extensions={"position": 4, "depth": 3, "role": 1},
    )
    authors_note = entry(["a"], "at the author's note", extensions={"position": 2})
    world_file = LorebookEntry.model_validate(
        {"key": ["a"], "content": "from a world file", "position": 4, "depth": 1}
    )
    examples = entry(["a"], "after the examples", extensions={"position": 6})

    active = [exported, authors_note, world_file, examples]

    assert lore_at_depth(active) == [
        DepthLore(3, "user", "at depth 3, as the user"),
        DepthLore(4, "system", "at the author's note"),
        DepthLore(1, "system", "from a world file"),
    ]
    assert render_lore(active, "after_char") == "after the examples"
    assert render_lore(active, "before_char") == ""
    assert world_file.extensions == {"position": 4}


def test_constant_entries_always_apply_even_with_no_messages() -> None:
    lore = book(entry([], "The year is 1888.", constant=True), entry(["fog"], "fog lore"))

    assert contents(activate_entries(lore, [])) == ["The year is 1888."]


def test_disabled_entries_never_apply() -> None:
    lore = book(entry(["fog"], "off", enabled=False), entry([], "off too", constant=True, enabled=False))

    assert activate_entries(lore, ["fog"]) == []


def test_entries_come_back_in_insertion_order() -> None:
    lore = book(
        entry(["a"], "third", insertion_order=30),
        entry(["b"], "first", insertion_order=-5),
        entry(["c"], "second", insertion_order=10),
    )

    assert contents(activate_entries(lore, ["a b c"])) == ["first", "second", "third"]


def test_recursive_scanning_lets_activated_lore_activate_more() -> None:
    entries = (
        entry(["ship"], "The ship sailed from Port Vell."),
        entry(["Port Vell"], "Port Vell is ruled by the Salt Queen."),
        entry(["Salt Queen"], "The Salt Queen is three hundred years old."),
    )

    flat = activate_entries(book(*entries), ["what ship is that?"])
    deep = activate_entries(book(*entries, recursive_scanning=True), ["what ship is that?"])

    assert len(flat) == 1
    assert len(deep) == 3


def test_recursion_through_a_cycle_ends() -> None:
    lore = book(entry(["ping"], "ping pong"), entry(["pong"], "pong ping"), recursive_scanning=True)

    assert len(activate_entries(lore, ["ping"])) == 2


def test_token_budget_drops_lowest_priority_first() -> None:
    lore = book(
        entry(["a"], "x" * 40, priority=1, insertion_order=1),  # 10 tokens at 4 characters a token
        entry(["a"], "y" * 40, priority=9, insertion_order=2),
        entry(["a"], "z" * 40, priority=5, insertion_order=3),
        token_budget=20,
    )

    assert contents(activate_entries(lore, ["a"])) == ["y" * 40, "z" * 40]


def test_token_budget_uses_the_given_token_counter() -> None:
    lore = book(
        entry(["a"], "one two three", priority=2), entry(["a"], "four five", priority=1), token_budget=3
    )

    active = activate_entries(lore, ["a"], token_counter=lambda text: len(text.split()))

    assert contents(active) == ["one two three"]


def test_no_book_activates_nothing() -> None:
    assert activate_entries(None, ["anything"]) == []


def test_render_lore_places_entries_by_position_and_drops_v3_decorators() -> None:
    entries = [
        entry([], "Before one."),
        entry([], "@@depth 4\n@@role system\nAfter one.", position="after_char"),
        entry([], "Before two.", position="before_char"),
        entry([], "   ", position="after_char"),
    ]

    assert render_lore(entries, "before_char") == "Before one.\nBefore two."
    assert render_lore(entries, "after_char") == "After one."
