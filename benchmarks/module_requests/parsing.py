"""Parsing: text in a format the module must read (CSV, INI, logs, durations, JSON, Markdown)."""

from __future__ import annotations

from benchmarks.module_requests import Check, Request, Tool, module_files, schema
from nexus_desktop.builder.request import module_name_for


def _request(
    level: int, description: str, code: str, tools: list[Tool], tests: str, checks: list[Check]
) -> Request:
    name = module_name_for(description)
    return Request(
        name,
        "parsing",
        level,
        description,
        module_files(name, description, code, tools, tests),
        tuple(checks),
    )


def requests() -> list[Request]:
    return [
        _request(
            2,
            "Duration: a tool seconds that reads a duration like '1h 30m', '2h5m10s' or '45s' (any of "
            "d, h, m, s, in any order, spaces optional) and returns the total in seconds; text that "
            "is not a duration is an error.",
            """
            import re

            UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


            def seconds(text):
                compact = re.sub(r"\\s+", "", text.lower())
                parts = re.findall(r"(\\d+)([dhms])", compact)
                if not compact or "".join(n + u for n, u in parts) != compact:
                    raise ValueError(f"{text!r} is not a duration like 1h 30m.")
                return sum(int(number) * UNITS[unit] for number, unit in parts)
            """,
            [Tool("seconds", "A duration in seconds.", schema(text="string"), "seconds")],
            """
            import pytest


            def test_durations():
                assert seconds("1h 30m") == 5400
                with pytest.raises(ValueError):
                    seconds("soon")
            """,
            [
                Check("seconds", {"text": "2h5m10s"}, 7510),
                Check("seconds", {"text": "1d 1s"}, 86401),
                Check("seconds", {"text": " 45s "}, 45),
            ],
        ),
        _request(
            2,
            "Csv column: a tool total that takes CSV text with a header row and a column name and "
            "returns the sum of that column's numbers (blank cells count as 0), rounded to 2 decimals.",
            """
            import csv
            import io


            def total(csv_text, column):
                rows = csv.DictReader(io.StringIO(csv_text.strip()))
                if column not in (rows.fieldnames or []):
                    raise ValueError(f"No column {column!r}.")
                return round(sum(float(row[column] or 0) for row in rows), 2)
            """,
            [Tool("total", "Sum a CSV column.", schema(csv_text="string", column="string"), "total")],
            """
            def test_total():
                assert total("a,b\\n1,2\\n3,\\n", "a") == 4
                assert total("a,b\\n1,2\\n3,\\n", "b") == 2
            """,
            [
                Check(
                    "total",
                    {"csv_text": "item,price\nbread,2.50\nmilk,1.25\njam,\n", "column": "price"},
                    3.75,
                ),
                Check("total", {"csv_text": 'name,qty\n"Smith, J",3\nLee,4\n', "column": "qty"}, 7),
            ],
        ),
        _request(
            2,
            "Ini lookup: a tool get that takes INI text, a section and a key and returns the value as "
            "text, or null when the section or key is missing.",
            """
            import configparser


            def get(ini_text, section, key):
                parser = configparser.ConfigParser(interpolation=None)
                parser.read_string(ini_text)
                if not parser.has_option(section, key):
                    return None
                return parser.get(section, key)
            """,
            [
                Tool(
                    "get",
                    "A value from INI text.",
                    schema(ini_text="string", section="string", key="string"),
                    "get",
                )
            ],
            """
            def test_lookup():
                assert get("[a]\\nx = 1\\n", "a", "x") == "1"
                assert get("[a]\\nx = 1\\n", "b", "x") is None
            """,
            [
                Check(
                    "get",
                    {"ini_text": "[server]\nport = 8080\nhost=example\n", "section": "server", "key": "host"},
                    "example",
                ),
                Check(
                    "get", {"ini_text": "[server]\nport = 8080\n", "section": "server", "key": "user"}, None
                ),
                Check("get", {"ini_text": "[db]\nurl = a%b\n", "section": "db", "key": "url"}, "a%b"),
            ],
        ),
        _request(
            2,
            "Log levels: a tool count that reads log text where each line looks like "
            "'2024-05-01 12:00:00 LEVEL message' and returns how many lines each level has, as an "
            "object from level name to count; lines without a level are ignored.",
            """
            import re

            LINE = re.compile(r"^\\S+ \\S+ (DEBUG|INFO|WARNING|ERROR|CRITICAL) ")


            def count(log_text):
                counts = {}
                for line in log_text.splitlines():
                    found = LINE.match(line.strip())
                    if found:
                        counts[found.group(1)] = counts.get(found.group(1), 0) + 1
                return counts
            """,
            [Tool("count", "Lines per log level.", schema(log_text="string"), "count")],
            """
            def test_counts():
                text = "2024-05-01 12:00:00 INFO up\\nnoise\\n2024-05-01 12:00:01 ERROR down\\n"
                assert count(text) == {"INFO": 1, "ERROR": 1}
            """,
            [
                Check(
                    "count",
                    {
                        "log_text": "2024-05-01 10:00:00 INFO a\n2024-05-01 10:00:01 INFO b\n"
                        "2024-05-01 10:00:02 WARNING c\ntraceback line\n2024-05-01 10:00:03 ERROR d\n"
                    },
                    {"INFO": 2, "WARNING": 1, "ERROR": 1},
                ),
                Check("count", {"log_text": "nothing here"}, {}),
            ],
        ),
        _request(
            2,
            "Markdown links: a tool extract that returns every inline link in Markdown text as a list "
            "of {text, url} objects in order, leaving out images (![alt](src)).",
            """
            import re

            LINK = re.compile(r"(!?)\\[([^\\]]*)\\]\\(([^)\\s]+)(?:\\s+\\"[^\\"]*\\")?\\)")


            def extract(markdown):
                return [
                    {"text": text, "url": url}
                    for bang, text, url in LINK.findall(markdown)
                    if not bang
                ]
            """,
            [Tool("extract", "Links in Markdown text.", schema(markdown="string"), "extract")],
            """
            def test_links_not_images():
                found = extract("See [docs](https://a.example) and ![logo](l.png).")
                assert found == [{"text": "docs", "url": "https://a.example"}]
            """,
            [
                Check(
                    "extract",
                    {"markdown": '[one](http://1.example) text [two](http://2.example "title") ![x](y.png)'},
                    [{"text": "one", "url": "http://1.example"}, {"text": "two", "url": "http://2.example"}],
                ),
                Check("extract", {"markdown": "no links"}, []),
            ],
        ),
        _request(
            3,
            "Playtime report: a tool top that reads a Steam owned-games JSON export (an object with "
            "response.games, each game with name and playtime_forever in minutes) and returns the N "
            "most played games as a list of {name, hours} with hours rounded to 1 decimal, most "
            "played first; games never played are left out.",
            """
            import json


            def top(export_json, count):
                games = json.loads(export_json).get("response", {}).get("games", [])
                played = [g for g in games if g.get("playtime_forever", 0) > 0]
                played.sort(key=lambda g: g["playtime_forever"], reverse=True)
                return [
                    {"name": g["name"], "hours": round(g["playtime_forever"] / 60, 1)} for g in played[:count]
                ]
            """,
            [Tool("top", "The most played games.", schema(export_json="string", count="integer"), "top")],
            """
            import json


            def test_top():
                data = json.dumps({"response": {"games": [{"name": "A", "playtime_forever": 90},
                                                          {"name": "B", "playtime_forever": 0}]}})
                assert top(data, 5) == [{"name": "A", "hours": 1.5}]
            """,
            [
                Check(
                    "top",
                    {
                        "export_json": '{"response": {"game_count": 3, "games": ['
                        '{"appid": 1, "name": "Hades", "playtime_forever": 2130}, '
                        '{"appid": 2, "name": "Factorio", "playtime_forever": 5400}, '
                        '{"appid": 3, "name": "Unplayed", "playtime_forever": 0}]}}',
                        "count": 2,
                    },
                    [{"name": "Factorio", "hours": 90.0}, {"name": "Hades", "hours": 35.5}],
                ),
                Check("top", {"export_json": '{"response": {"games": []}}', "count": 3}, []),
            ],
        ),
    ]
