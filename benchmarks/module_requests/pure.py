"""Pure functions: no files, no network; the easiest rung of the suite."""

from __future__ import annotations

from benchmarks.module_requests import Check, Request, Tool, module_files, schema
from nexus_desktop.builder.request import module_name_for


def _request(
    level: int, description: str, code: str, tools: list[Tool], tests: str, checks: list[Check]
) -> Request:
    name = module_name_for(description)
    return Request(
        name, "pure", level, description, module_files(name, description, code, tools, tests), tuple(checks)
    )


def requests() -> list[Request]:
    return [
        _request(
            1,
            "Word counter: a tool count that counts the words in a text (runs of letters, digits or "
            "apostrophes), returning a whole number.",
            """
            import re


            def count(text):
                return len(re.findall(r"[\\w']+", text))
            """,
            [Tool("count", "Count the words in a text.", schema(text="string"), "count")],
            """
            def test_counts_words_and_ignores_punctuation():
                assert count("Hello, world! It's here.") == 4
                assert count("") == 0
            """,
            [
                Check("count", {"text": "The quick brown fox, jumps."}, 5),
                Check("count", {"text": "   "}, 0),
                Check("count", {"text": "don't stop-now 42"}, 4),
            ],
        ),
        _request(
            1,
            "Temperature: tools to_fahrenheit and to_celsius converting a number of "
            "degrees, rounded to 2 decimals.",
            """
            def to_fahrenheit(degrees):
                return round(degrees * 9 / 5 + 32, 2)


            def to_celsius(degrees):
                return round((degrees - 32) * 5 / 9, 2)
            """,
            [
                Tool("to_fahrenheit", "Celsius to Fahrenheit.", schema(degrees="number"), "to_fahrenheit"),
                Tool("to_celsius", "Fahrenheit to Celsius.", schema(degrees="number"), "to_celsius"),
            ],
            """
            def test_round_trip():
                assert to_fahrenheit(100) == 212
                assert to_celsius(212) == 100
            """,
            [
                Check("to_fahrenheit", {"degrees": 37}, 98.6),
                Check("to_celsius", {"degrees": 0}, -17.78),
                Check("to_fahrenheit", {"degrees": -40}, -40),
            ],
        ),
        _request(
            1,
            "Day count: a tool between giving the number of days from one ISO date (YYYY-MM-DD) to "
            "another, negative when the second is earlier.",
            """
            import datetime


            def between(start, end):
                return (datetime.date.fromisoformat(end) - datetime.date.fromisoformat(start)).days
            """,
            [Tool("between", "Days between two ISO dates.", schema(start="string", end="string"), "between")],
            """
            def test_days_between():
                assert between("2024-01-01", "2024-03-01") == 60
                assert between("2024-01-02", "2024-01-01") == -1
            """,
            [
                Check("between", {"start": "2023-12-25", "end": "2024-01-01"}, 7),
                Check("between", {"start": "2024-02-28", "end": "2024-03-01"}, 2),
                Check("between", {"start": "2025-01-10", "end": "2025-01-01"}, -9),
            ],
        ),
        _request(
            1,
            "Primes: tools is_prime (true or false for a whole number) and next_prime (the "
            "smallest prime above a whole number).",
            """
            def is_prime(number):
                if number < 2:
                    return False
                factor = 2
                while factor * factor <= number:
                    if number % factor == 0:
                        return False
                    factor += 1
                return True


            def next_prime(number):
                candidate = number + 1
                while not is_prime(candidate):
                    candidate += 1
                return candidate
            """,
            [
                Tool("is_prime", "Whether a number is prime.", schema(number="integer"), "is_prime"),
                Tool("next_prime", "The next prime above a number.", schema(number="integer"), "next_prime"),
            ],
            """
            def test_primes():
                assert [n for n in range(12) if is_prime(n)] == [2, 3, 5, 7, 11]
                assert next_prime(13) == 17
            """,
            [
                Check("is_prime", {"number": 97}, True),
                Check("is_prime", {"number": 1}, False),
                Check("next_prime", {"number": 89}, 97),
            ],
        ),
        _request(
            2,
            "Roman: tools to_roman (a whole number from 1 to 3999 to Roman numerals) and "
            "from_roman (Roman numerals to the number; an invalid numeral is an error).",
            """
            NUMERALS = [(1000, "M"), (900, "CM"), (500, "D"), (400, "CD"), (100, "C"), (90, "XC"),
                        (50, "L"), (40, "XL"), (10, "X"), (9, "IX"), (5, "V"), (4, "IV"), (1, "I")]


            def to_roman(number):
                if not 1 <= number <= 3999:
                    raise ValueError("Give a number from 1 to 3999.")
                out = ""
                for value, letters in NUMERALS:
                    while number >= value:
                        out += letters
                        number -= value
                return out


            def from_roman(numeral):
                text = numeral.strip().upper()
                total, index = 0, 0
                for value, letters in NUMERALS:
                    while text.startswith(letters, index):
                        total += value
                        index += len(letters)
                if index != len(text) or not text or to_roman(total) != text:
                    raise ValueError(f"{numeral!r} is not a Roman numeral.")
                return total
            """,
            [
                Tool("to_roman", "A number as Roman numerals.", schema(number="integer"), "to_roman"),
                Tool("from_roman", "Roman numerals as a number.", schema(numeral="string"), "from_roman"),
            ],
            """
            import pytest


            def test_both_ways():
                assert to_roman(1994) == "MCMXCIV"
                assert from_roman("MCMXCIV") == 1994


            def test_rejects_nonsense():
                with pytest.raises(ValueError):
                    from_roman("IIII")
            """,
            [
                Check("to_roman", {"number": 2024}, "MMXXIV"),
                Check("from_roman", {"numeral": "xliv"}, 44),
                Check("to_roman", {"number": 3999}, "MMMCMXCIX"),
            ],
        ),
        _request(
            2,
            "Ability scores: a tool roll that rolls D&D ability scores: six scores, each 4d6 keeping "
            "the highest three, from a given whole-number seed so a seed always gives the same six; "
            "return the list of six numbers.",
            """
            import random


            def roll(seed):
                dice = random.Random(seed)
                scores = []
                for _ in range(6):
                    rolls = sorted(dice.randint(1, 6) for _ in range(4))
                    scores.append(sum(rolls[1:]))
                return scores
            """,
            [Tool("roll", "Six D&D ability scores from a seed.", schema(seed="integer"), "roll")],
            """
            def test_six_scores_in_range_and_repeatable():
                scores = roll(7)
                assert len(scores) == 6 and all(3 <= s <= 18 for s in scores)
                assert roll(7) == scores
            """,
            [
                Check(
                    "roll",
                    {"seed": 1},
                    lambda v: len(v) == 6 and all(3 <= s <= 18 for s in v),
                    "six scores 3-18",
                ),
                Check("roll", {"seed": 99}, lambda v: len(set(map(int, v))) >= 2, "not all the same"),
            ],
        ),
    ]
