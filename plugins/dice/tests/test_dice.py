"""The dice module's tools, called the way the app calls them: through pluggy's register_tools."""

from __future__ import annotations

import random
import re

import pluggy
import pytest
from nexus_dice.hooks import plugin
from nexus_dice.rolls import DiceError, roll

from nexus_desktop.modules import hookspecs
from nexus_desktop.modules.specs import ToolSpec


@pytest.fixture(scope="module")
def tools() -> dict[str, ToolSpec]:
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    manager.register(plugin, name="dice")
    found: list[ToolSpec] = []
    manager.hook.register_tools.call_historic(kwargs={"register": found.append})
    return {tool.name: tool for tool in found}


def total(text: str) -> int:
    return int(text.rsplit("= ", 1)[1])


def test_the_module_offers_roll_coin_and_pick(tools: dict[str, ToolSpec]) -> None:
    assert sorted(tools) == ["dice.coin", "dice.pick", "dice.roll"]


def test_a_roll_shows_each_die_the_modifier_and_a_total_in_range(tools: dict[str, ToolSpec]) -> None:
    for _ in range(200):
        text = tools["dice.roll"].function(notation="2d6+3")
        match = re.fullmatch(r"2d6\+3: \[(\d), (\d)\] \+ 3 = (\d+)", text)
        assert match, text
        first, second, shown_total = (int(group) for group in match.groups())
        assert 1 <= first <= 6 and 1 <= second <= 6 and shown_total == first + second + 3


def test_every_face_of_a_die_comes_up(tools: dict[str, ToolSpec]) -> None:
    seen = {total(tools["dice.roll"].function(notation="d6")) for _ in range(600)}
    assert seen == {1, 2, 3, 4, 5, 6}


def test_advantage_keeps_the_higher_of_two_d20s_and_disadvantage_the_lower() -> None:
    rng = random.Random(11)
    for _ in range(100):
        better = roll("d20 adv", rng)
        worse = roll("d20 disadvantage", rng)
        assert better.total == max(better.terms[0].rolls) and len(better.terms[0].rolls) == 2
        assert worse.total == min(worse.terms[0].rolls)


def test_keep_highest_drops_the_lowest_dice_and_shows_them_struck() -> None:
    result = roll("4d6kh3", random.Random(5))
    dice = sorted(result.terms[0].rolls)
    assert result.total == sum(dice[1:])
    assert result.describe().count("~") == 2


def test_percentile_dice_roll_from_1_to_100(tools: dict[str, ToolSpec]) -> None:
    values = [total(tools["dice.roll"].function(notation="d%")) for _ in range(300)]
    assert all(1 <= value <= 100 for value in values) and max(values) > 50


@pytest.mark.parametrize(
    ("notation", "advice"),
    [
        ("hello", "write it like 2d6"),
        ("0d6", "between 1 and 100 dice"),
        ("2d1", "between 2 and 1000 sides"),
        ("3d6kh4", "Keep between 1 and 3"),
        ("2d6 adv", "one plain die"),
    ],
)
def test_nonsense_notation_is_refused_with_how_to_write_it(notation: str, advice: str) -> None:
    with pytest.raises(DiceError, match=advice):
        roll(notation, random.Random(1))


def test_coins_come_up_heads_and_tails_and_are_counted(tools: dict[str, ToolSpec]) -> None:
    assert {tools["dice.coin"].function() for _ in range(100)} == {"Heads", "Tails"}
    text = tools["dice.coin"].function(count=10)
    heads, tails = (int(n) for n in re.search(r"\((\d+) heads, (\d+) tails\)", text).groups())  # type: ignore[union-attr]
    assert heads + tails == 10


def test_pick_chooses_only_from_the_options_given(tools: dict[str, ToolSpec]) -> None:
    options = ["tea", "coffee", "cocoa"]
    picks = {tools["dice.pick"].function(options=options) for _ in range(200)}
    assert picks == {f"Picked: {option}" for option in options}
    two = tools["dice.pick"].function(options=options, count=2).removeprefix("Picked: ").split(", ")
    assert len(set(two)) == 2 and set(two) <= set(options)


def test_pick_needs_two_options() -> None:
    with pytest.raises(DiceError, match="at least two options"):
        from nexus_dice.rolls import pick

        pick(["only"], 1, random.Random(1))


def test_dice_named_in_a_sentence_are_rolled(tools: dict[str, ToolSpec]) -> None:
    text = tools["dice.roll"].function(notation="roll a d20 for initiative")
    assert text.startswith("d20: [")
    with pytest.raises(DiceError, match="not dice notation"):
        tools["dice.roll"].function(notation="hello there")
