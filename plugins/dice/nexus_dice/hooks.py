"""The dice module's hooks: three tools, all drawing from the OS's secure random source."""

from __future__ import annotations

import secrets
from collections.abc import Callable

from nexus_desktop.modules.hookspecs import hookimpl
from nexus_desktop.modules.specs import ToolSpec
from nexus_dice.rolls import MAX_DICE, MAX_PICK_OPTIONS, flip, pick, roll

# SystemRandom draws from os.urandom: no seed to guess, so no one can predict a roll.
_random = secrets.SystemRandom()


def roll_dice(notation: str) -> str:
    return roll(notation, _random).describe()


def flip_coin(count: int = 1) -> str:
    sides = flip(count, _random)
    if count == 1:
        return sides[0].capitalize()
    return f"{', '.join(sides).capitalize()} ({sides.count('heads')} heads, {sides.count('tails')} tails)"


def pick_from_list(options: list[str], count: int = 1) -> str:
    return "Picked: " + ", ".join(pick(options, count, _random))


class DicePlugin:
    @hookimpl
    def register_tools(self, register: Callable[[ToolSpec], None]) -> None:
        register(
            ToolSpec(
                name="dice.roll",
                description=(
                    "Roll dice in dice notation: 2d6+3, d20 adv (advantage), d20 dis, 4d6kh3, d% (a d100)."
                ),
                parameters={
                    "type": "object",
                    "properties": {"notation": {"type": "string", "minLength": 2, "maxLength": 100}},
                    "required": ["notation"],
                    "additionalProperties": False,
                },
                function=roll_dice,
            )
        )
        register(
            ToolSpec(
                name="dice.coin",
                description="Flip one or more coins.",
                parameters={
                    "type": "object",
                    "properties": {"count": {"type": "integer", "minimum": 1, "maximum": MAX_DICE}},
                    "additionalProperties": False,
                },
                function=flip_coin,
            )
        )
        register(
            ToolSpec(
                name="dice.pick",
                description="Pick one (or more) of the given options at random.",
                parameters={
                    "type": "object",
                    "properties": {
                        "options": {
                            "type": "array",
                            "items": {"type": "string"},
                            "minItems": 2,
                            "maxItems": MAX_PICK_OPTIONS,
                        },
                        "count": {"type": "integer", "minimum": 1, "maximum": MAX_PICK_OPTIONS},
                    },
                    "required": ["options"],
                    "additionalProperties": False,
                },
                function=pick_from_list,
            )
        )


plugin = DicePlugin()
