"""The local HTTP API the suite's API requests are built against, on 127.0.0.1.

It stands in for the web services a user asks modules for: a paged book catalogue and a paged
order list, a cursor-paged event feed, services that want an API key (as a query parameter, as a
header, or traded for a short-lived token that must be refreshed), a rate-limited quote service
(429 with Retry-After) and a flaky status service (503 twice, then an answer).  Counters of the
flaky endpoints are kept per query, so each acceptance check meets the failures afresh.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

API_KEY = "bench-key-7f3a"
BOOKS = [
    {
        "title": f"Book {number:02d}",
        "author": ["Le Guin", "Pratchett", "Banks"][number % 3],
        "year": 1960 + number,
    }
    for number in range(1, 24)
]
ORDERS = [
    {"id": number, "amount": round(number * 1.25, 2), "status": "paid" if number % 4 else "refunded"}
    for number in range(1, 38)
]
EVENTS = [
    {"id": number, "type": ["login", "purchase", "logout"][number % 3], "name": f"event-{number}"}
    for number in range(1, 18)
]
GAMES = [
    {"name": "Factorio", "playtime_minutes": 5400},
    {"name": "Hades", "playtime_minutes": 2130},
    {"name": "Celeste", "playtime_minutes": 610},
    {"name": "Portal 2", "playtime_minutes": 845},
]
QUOTES = {"AAPL": 191.5, "MSFT": 411.25, "NVDA": 880.0}
READINGS = [{"hour": hour, "celsius": round(12 + (hour % 12) * 0.75, 2)} for hour in range(30)]


def _page(items: list[dict[str, Any]], page: int, size: int) -> dict[str, Any]:
    chunk = items[(page - 1) * size : page * size]
    more = page * size < len(items)
    return {"items": chunk, "page": page, "next_page": page + 1 if more else None}


class _Handler(BaseHTTPRequestHandler):
    server: ApiServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = {key: values[0] for key, values in parse_qs(url.query).items()}
        self.server.calls[url.path] += 1
        routes = {
            "/books": self._books,
            "/orders": self._orders,
            "/events": self._events,
            "/steam/games": self._games,
            "/quotes/today": self._quote_of_the_day,
            "/me": self._me,
            "/stocks": self._stock,
            "/status": self._status,
            "/readings": self._readings,
        }
        route = routes.get(url.path)
        if route is None:
            self._json(404, {"error": "no such endpoint"})
        else:
            route(query)

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        self.server.calls[url.path] += 1
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            body = {}
        if url.path != "/auth/token":
            self._json(404, {"error": "no such endpoint"})
        elif body.get("api_key") != API_KEY:
            self._json(401, {"error": "invalid api_key"})
        else:
            with self.server.lock:
                self.server.token_serial += 1
                token = f"token-{self.server.token_serial}"
                self.server.tokens[token] = 2  # a token is good for two calls, then expires
            self._json(200, {"access_token": token, "expires_in": 60})

    def _books(self, query: dict[str, str]) -> None:
        self._json(200, _page(BOOKS, int(query.get("page", "1")), 5))

    def _orders(self, query: dict[str, str]) -> None:
        size = min(int(query.get("per_page", "10")), 10)
        self._json(200, _page(ORDERS, int(query.get("page", "1")), size))

    def _events(self, query: dict[str, str]) -> None:
        start = int(query.get("cursor") or 0)
        chunk = EVENTS[start : start + 4]
        following = start + 4 if start + 4 < len(EVENTS) else None
        self._json(200, {"data": chunk, "next_cursor": None if following is None else str(following)})

    def _games(self, query: dict[str, str]) -> None:
        if query.get("key") != API_KEY:
            self._json(401, {"error": "invalid key"})
        else:
            self._json(200, {"response": {"game_count": len(GAMES), "games": GAMES}})

    def _quote_of_the_day(self, query: dict[str, str]) -> None:
        if self.headers.get("X-Api-Key") != API_KEY:
            self._json(401, {"error": "missing or wrong X-Api-Key header"})
        else:
            self._json(200, {"quote": "Simplicity is prerequisite for reliability.", "author": "Dijkstra"})

    def _me(self, query: dict[str, str]) -> None:
        token = (self.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
        with self.server.lock:
            left = self.server.tokens.get(token, 0)
            if left > 0:
                self.server.tokens[token] = left - 1
        if left <= 0:
            self._json(401, {"error": "token expired or invalid"})
        else:
            self._json(200, {"user": "ada", "plan": "pro", "storage_gb": 50})

    def _stock(self, query: dict[str, str]) -> None:
        symbol = query.get("symbol", "").upper()
        if self._first_calls(f"stock:{symbol}", 1):
            self._json(429, {"error": "rate limited"}, {"Retry-After": "1"})
        elif symbol not in QUOTES:
            self._json(404, {"error": "unknown symbol"})
        else:
            self._json(200, {"symbol": symbol, "price": QUOTES[symbol]})

    def _status(self, query: dict[str, str]) -> None:
        service = query.get("service", "")
        if self._first_calls(f"status:{service}", 2):
            self._json(503, {"error": "try again"})
        else:
            self._json(200, {"service": service, "state": "operational"})

    def _readings(self, query: dict[str, str]) -> None:
        page = int(query.get("page", "1"))
        if self._first_calls(f"readings:{query.get('run', '')}:{page}", 1):
            self._json(429, {"error": "rate limited"}, {"Retry-After": "0"})
        else:
            self._json(200, _page(READINGS, page, 8))

    def _first_calls(self, key: str, failures: int) -> bool:
        """True for the first ``failures`` calls with this key."""
        with self.server.lock:
            self.server.seen[key] += 1
            return self.server.seen[key] <= failures

    def _json(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


class ApiServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.seen: Counter[str] = Counter()
        self.tokens: dict[str, int] = {}
        self.token_serial = 0
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    @property
    def host_port(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> ApiServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
