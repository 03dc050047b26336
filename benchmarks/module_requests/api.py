"""Web APIs on the benchmark's local server: pagination, API keys, token refresh, rate limits and retries.

Each module talks to the server through the app's network gatekeeper, so its manifest names the
server's exact ``127.0.0.1:PORT``.  Its own tests (run by validation, without network) hand its
functions a fake ``fetch``.
"""

from __future__ import annotations

import textwrap

from benchmarks.module_requests import Check, Request, Tool, module_files, schema
from benchmarks.module_requests.api_server import API_KEY
from nexus_desktop.builder.request import module_name_for

# Every API module's plain HTTP helper: JSON in and out with urllib, the status kept on errors.
FETCH = """
import json
import time
import urllib.error
import urllib.request

BASE = "{base}"
CREDENTIALS = {{}}


class ApiError(Exception):
    def __init__(self, status, retry_after=None):
        super().__init__(f"The service answered {{status}}.")
        self.status = status
        self.retry_after = retry_after


def http_json(path, headers=None, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(BASE + path, data=data, headers=dict(headers or {{}}))
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.loads(answer.read())
    except urllib.error.HTTPError as error:
        raise ApiError(error.code, error.headers.get("Retry-After")) from None
"""


def _request(
    base: str,
    category: str,
    level: int,
    description: str,
    code: str,
    tools: list[Tool],
    tests: str,
    checks: list[Check],
    *,
    credential: bool = False,
) -> Request:
    name = module_name_for(description)
    host = base.removeprefix("http://")
    files = module_files(
        name,
        description,
        FETCH.format(base=base) + "\n\n" + textwrap.dedent(code),
        tools,
        tests,
        network=[host],
        credential="api_key" if credential else None,
    )
    secrets = {"api_key": API_KEY} if credential else {}
    return Request(name, category, level, description, files, tuple(checks), secrets)


def requests(base: str) -> list[Request]:
    return [
        _request(
            base,
            "pagination",
            2,
            f"Book catalog: a tool titles_by that lists every book title by an author from the book API at "
            f"{base}/books?page=N (JSON with items [{{title, author, year}}] and next_page, null on the last "
            f"page; 5 per page), in the API's order.",
            """
            def titles_by(author, fetch=http_json):
                titles, page = [], 1
                while page:
                    answer = fetch(f"/books?page={page}")
                    titles += [book["title"] for book in answer["items"] if book["author"] == author]
                    page = answer["next_page"]
                return titles
            """,
            [Tool("titles_by", "Every title by an author.", schema(author="string"), "titles_by")],
            """
            def test_follows_pages():
                pages = {"/books?page=1": {"items": [{"title": "A", "author": "X"}], "next_page": 2},
                         "/books?page=2": {"items": [{"title": "B", "author": "X"}], "next_page": None}}
                assert titles_by("X", fetch=pages.__getitem__) == ["A", "B"]
            """,
            [
                Check("titles_by", {"author": "Banks"}, [f"Book {n:02d}" for n in range(2, 24, 3)]),
                Check("titles_by", {"author": "Nobody"}, []),
            ],
        ),
        _request(
            base,
            "pagination",
            2,
            f"Order totals: a tool paid_total giving the total amount of all orders with status 'paid' "
            f"from {base}/orders?page=N&per_page=10 (items [{{id, amount, status}}], next_page null on "
            f"the last page), rounded to 2 decimals.",
            """
            def paid_total(fetch=http_json):
                total, page = 0.0, 1
                while page:
                    answer = fetch(f"/orders?page={page}&per_page=10")
                    total += sum(o["amount"] for o in answer["items"] if o["status"] == "paid")
                    page = answer["next_page"]
                return round(total, 2)
            """,
            [Tool("paid_total", "Total of paid orders.", {"type": "object", "properties": {}}, "paid_total")],
            """
            def test_sums_paid_across_pages():
                first = {"items": [{"amount": 1.5, "status": "paid"}], "next_page": 2}
                last = {"items": [{"amount": 9, "status": "refunded"}], "next_page": None}
                pages = {"/orders?page=1&per_page=10": first, "/orders?page=2&per_page=10": last}
                assert paid_total(fetch=pages.__getitem__) == 1.5
            """,
            [Check("paid_total", {}, round(sum(n * 1.25 for n in range(1, 38) if n % 4), 2))],
        ),
        _request(
            base,
            "pagination",
            3,
            f"Event feed: a tool names that returns the names of all events of a given type from the "
            f"cursor-paged feed {base}/events (first call without a cursor, then ?cursor=VALUE from "
            f"next_cursor until it is null; each page has data [{{id, type, name}}]).",
            """
            import urllib.parse


            def names(event_type, fetch=http_json):
                found, cursor = [], None
                while True:
                    path = "/events" if cursor is None else "/events?cursor=" + urllib.parse.quote(cursor)
                    answer = fetch(path)
                    found += [event["name"] for event in answer["data"] if event["type"] == event_type]
                    cursor = answer.get("next_cursor")
                    if cursor is None:
                        return found
            """,
            [Tool("names", "Names of events of a type.", schema(event_type="string"), "names")],
            """
            def test_follows_the_cursor():
                pages = {"/events": {"data": [{"type": "a", "name": "1"}], "next_cursor": "x"},
                         "/events?cursor=x": {"data": [{"type": "a", "name": "2"}], "next_cursor": None}}
                assert names("a", fetch=pages.__getitem__) == ["1", "2"]
            """,
            [
                Check(
                    "names", {"event_type": "purchase"}, [f"event-{n}" for n in range(1, 18) if n % 3 == 1]
                ),
                Check("names", {"event_type": "logout"}, [f"event-{n}" for n in range(1, 18) if n % 3 == 2]),
            ],
        ),
        _request(
            base,
            "api-key",
            2,
            f"A tracker for my Steam playtime: a tool summary returning total hours "
            f"(1 decimal) and the most played game's name, from {base}/steam/games?key=API_KEY "
            f"(response.games [{{name, playtime_minutes}}]); the API key is a credential named api_key.",
            """
            import urllib.parse


            def summary(fetch=http_json):
                key = CREDENTIALS.get("api_key")
                if not key:
                    raise ValueError("Enter the api_key credential first.")
                games = fetch("/steam/games?key=" + urllib.parse.quote(key))["response"]["games"]
                top = max(games, key=lambda g: g["playtime_minutes"])
                total = sum(g["playtime_minutes"] for g in games) / 60
                return {"total_hours": round(total, 1), "most_played": top["name"]}
            """,
            [
                Tool(
                    "summary",
                    "Total Steam hours and the most played game.",
                    {"type": "object", "properties": {}},
                    "summary",
                )
            ],
            """
            def test_summary():
                CREDENTIALS["api_key"] = "k"
                data = {"response": {"games": [{"name": "A", "playtime_minutes": 90},
                                               {"name": "B", "playtime_minutes": 30}]}}
                assert summary(fetch=lambda path: data) == {"total_hours": 2.0, "most_played": "A"}
            """,
            [Check("summary", {}, {"total_hours": 149.8, "most_played": "Factorio"})],
            credential=True,
        ),
        _request(
            base,
            "api-key",
            2,
            f"Daily quote: a tool today returning today's quote as 'QUOTE - AUTHOR' from "
            f"{base}/quotes/today, which wants the API key (a credential named api_key) in an "
            "X-Api-Key header.",
            """
            def today(fetch=http_json):
                answer = fetch("/quotes/today", {"X-Api-Key": CREDENTIALS.get("api_key", "")})
                return f"{answer['quote']} - {answer['author']}"
            """,
            [Tool("today", "Today's quote.", {"type": "object", "properties": {}}, "today")],
            """
            def test_formats_the_quote():
                seen = []
                CREDENTIALS["api_key"] = "k"

                def fake(path, headers=None):
                    seen.append(headers)
                    return {"quote": "Q", "author": "A"}

                assert today(fetch=fake) == "Q - A"
                assert seen == [{"X-Api-Key": "k"}]
            """,
            [Check("today", {}, "Simplicity is prerequisite for reliability. - Dijkstra")],
            credential=True,
        ),
        _request(
            base,
            "api-key",
            3,
            f"Account profile: a tool storage returning my plan and storage (object with plan and "
            f"storage_gb) from {base}/me, which needs 'Authorization: Bearer TOKEN'. Tokens come from POST "
            f'{base}/auth/token with JSON {{"api_key": KEY}} (the key is the credential api_key) and '
            f"expire quickly: on a 401, get a new token once and retry.",
            """
            TOKEN = {}


            def token(fetch, fresh=False):
                if fresh or "value" not in TOKEN:
                    answer = fetch("/auth/token", None, {"api_key": CREDENTIALS.get("api_key", "")})
                    TOKEN["value"] = answer["access_token"]
                return TOKEN["value"]


            def storage(fetch=http_json):
                for attempt in range(2):
                    headers = {"Authorization": "Bearer " + token(fetch, fresh=attempt > 0)}
                    try:
                        answer = fetch("/me", headers)
                        return {"plan": answer["plan"], "storage_gb": answer["storage_gb"]}
                    except ApiError as error:
                        if error.status != 401 or attempt:
                            raise
            """,
            [Tool("storage", "My plan and storage.", {"type": "object", "properties": {}}, "storage")],
            """
            def test_refreshes_an_expired_token():
                calls = []

                def fake(path, headers=None, body=None):
                    calls.append(path)
                    if path == "/auth/token":
                        return {"access_token": f"t{len(calls)}"}
                    if headers["Authorization"] == "Bearer t1":
                        raise ApiError(401)
                    return {"plan": "p", "storage_gb": 1}

                TOKEN.clear()
                assert storage(fetch=fake) == {"plan": "p", "storage_gb": 1}
                assert calls == ["/auth/token", "/me", "/auth/token", "/me"]
            """,
            [Check("storage", {}, {"plan": "pro", "storage_gb": 50}, f"call {n}") for n in range(1, 5)],
            credential=True,
        ),
        _request(
            base,
            "retries",
            2,
            f"Stock price: a tool price giving a stock's price from {base}/stocks?symbol=SYMBOL (JSON "
            f"{{symbol, price}}). The service rate-limits: on 429 wait the Retry-After seconds and try "
            f"again, up to 3 tries.",
            """
            import urllib.parse


            def price(symbol, fetch=http_json, sleep=time.sleep):
                for attempt in range(3):
                    try:
                        return fetch("/stocks?symbol=" + urllib.parse.quote(symbol))["price"]
                    except ApiError as error:
                        if error.status != 429 or attempt == 2:
                            raise
                        sleep(float(error.retry_after or 1))
            """,
            [Tool("price", "A stock's price.", schema(symbol="string"), "price")],
            """
            def test_waits_after_429():
                answers = [ApiError(429, "2"), {"price": 5.0}]
                waits = []

                def fake(path):
                    answer = answers.pop(0)
                    if isinstance(answer, Exception):
                        raise answer
                    return answer

                assert price("X", fetch=fake, sleep=waits.append) == 5.0
                assert waits == [2.0]
            """,
            [Check("price", {"symbol": "AAPL"}, 191.5), Check("price", {"symbol": "nvda"}, 880.0)],
        ),
        _request(
            base,
            "retries",
            2,
            f"Service status: a tool state returning the state of a named service from "
            f"{base}/status?service=NAME (JSON {{service, state}}). The service is flaky: retry 503 "
            f"answers with a short backoff, up to 4 tries.",
            """
            import urllib.parse


            def state(service, fetch=http_json, sleep=time.sleep):
                for attempt in range(4):
                    try:
                        return fetch("/status?service=" + urllib.parse.quote(service))["state"]
                    except ApiError as error:
                        if error.status != 503 or attempt == 3:
                            raise
                        sleep(0.1 * 2**attempt)
            """,
            [Tool("state", "A service's state.", schema(service="string"), "state")],
            """
            import pytest


            def test_retries_503_then_gives_up_on_others():
                answers = [ApiError(503), ApiError(503), {"state": "ok"}]

                def fake(path):
                    answer = answers.pop(0)
                    if isinstance(answer, Exception):
                        raise answer
                    return answer

                assert state("x", fetch=fake, sleep=lambda s: None) == "ok"
                with pytest.raises(ApiError):
                    state("x", fetch=lambda p: (_ for _ in ()).throw(ApiError(404)), sleep=lambda s: None)
            """,
            [
                Check("state", {"service": "mail"}, "operational"),
                Check("state", {"service": "dns"}, "operational"),
            ],
        ),
        _request(
            base,
            "retries",
            3,
            f"Sensor average: a tool mean giving the mean temperature (2 decimals) of all readings from "
            f"{base}/readings?page=N&run=RUN (items [{{hour, celsius}}], next_page null on the last page), "
            f"where RUN is the text the tool is given. Pages are rate-limited: on 429 wait Retry-After "
            f"seconds and fetch that page again (up to 3 tries per page).",
            """
            import urllib.parse


            def page_of(number, run, fetch, sleep):
                for attempt in range(3):
                    try:
                        return fetch(f"/readings?page={number}&run=" + urllib.parse.quote(run))
                    except ApiError as error:
                        if error.status != 429 or attempt == 2:
                            raise
                        sleep(float(error.retry_after or 1))


            def mean(run, fetch=http_json, sleep=time.sleep):
                values, number = [], 1
                while number:
                    answer = page_of(number, run, fetch, sleep)
                    values += [item["celsius"] for item in answer["items"]]
                    number = answer["next_page"]
                return round(sum(values) / len(values), 2)
            """,
            [Tool("mean", "Mean of all readings.", schema(run="string"), "mean")],
            """
            def test_pages_and_429():
                answers = {1: [ApiError(429, "0"), {"items": [{"celsius": 1}], "next_page": 2}],
                           2: [{"items": [{"celsius": 3}], "next_page": None}]}

                def fake(path):
                    answer = answers[int(path.split("page=")[1].split("&")[0])].pop(0)
                    if isinstance(answer, Exception):
                        raise answer
                    return answer

                assert mean("r", fetch=fake, sleep=lambda s: None) == 2
            """,
            [
                Check("mean", {"run": "a"}, round(sum(12 + (h % 12) * 0.75 for h in range(30)) / 30, 2)),
                Check("mean", {"run": "b"}, round(sum(12 + (h % 12) * 0.75 for h in range(30)) / 30, 2)),
            ],
        ),
    ]
