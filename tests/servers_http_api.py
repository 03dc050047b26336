"""A stand-in for OpenWeatherMap's current-weather API on 127.0.0.1, for the weather module.

It checks the API key the way the real service does (401 for a wrong one) and knows one city.
Import the ``weather_api`` fixture into a test module to use it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

WEATHER_API_KEY = "owm-test-key-0c4a7e"
PARIS = {
    "name": "Paris",
    "sys": {"country": "FR"},
    "weather": [{"description": "clear sky"}],
    "main": {"temp": 21.04, "feels_like": 20.5, "humidity": 40},
    "wind": {"speed": 3.6},
}


@dataclass
class WeatherApi:
    base_url: str
    key: str
    requests: list[dict[str, str]]


def _handler(requests: list[dict[str, str]]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = {name: values[0] for name, values in parse_qs(url.query).items()}
            requests.append(query)
            if url.path != "/data/2.5/weather":
                self._answer(404, {"cod": "404", "message": "Internal error"})
            elif query.get("appid") != WEATHER_API_KEY:
                self._answer(401, {"cod": 401, "message": "Invalid API key."})
            elif query.get("q", "").lower() != "paris":
                self._answer(404, {"cod": "404", "message": "city not found"})
            else:
                self._answer(200, PARIS)

        def _answer(self, status: int, body: object) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def weather_api() -> Iterator[WeatherApi]:
    requests: list[dict[str, str]] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(requests))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield WeatherApi(f"http://127.0.0.1:{server.server_address[1]}", WEATHER_API_KEY, requests)
    finally:
        server.shutdown()
        server.server_close()
