"""The weather module against a real HTTP server on 127.0.0.1 that speaks OpenWeatherMap's API."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pluggy
import pytest
from nexus_weather.client import WeatherError
from nexus_weather.hooks import WeatherPlugin

from nexus_desktop.modules import hookspecs
from nexus_desktop.modules.specs import ToolSpec

KEY = "owm-test-key-5d1e"
PARIS = {
    "name": "Paris",
    "sys": {"country": "FR"},
    "weather": [{"description": "light rain"}],
    "main": {"temp": 14.23, "feels_like": 13.5, "humidity": 82},
    "wind": {"speed": 4.1},
}


class FakeOpenWeatherMap(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = {name: values[0] for name, values in parse_qs(url.query).items()}
        if url.path != "/data/2.5/weather":
            self.answer(404, {"cod": "404", "message": "Internal error"})
        elif query.get("appid") != KEY:
            self.answer(401, {"cod": 401, "message": "Invalid API key."})
        elif query.get("q", "").lower() not in ("paris", "paris,fr"):
            self.answer(404, {"cod": "404", "message": "city not found"})
        else:
            self.answer(200, PARIS)

    def answer(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def service() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenWeatherMap)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def weather_tool(app_info: dict[str, object]) -> ToolSpec:
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    manager.register(WeatherPlugin(), name="weather")
    manager.hook.startup.call_historic(kwargs={"app_info": app_info})
    found: list[ToolSpec] = []
    manager.hook.register_tools.call_historic(kwargs={"register": found.append})
    [tool] = found
    return tool


def test_with_the_right_key_the_weather_is_told_in_one_line(service: str) -> None:
    tool = weather_tool({"credentials": {"api_key": KEY}, "config": {"base_url": service}})
    assert tool.name == "weather.current"
    assert tool.function(city="Paris") == (
        "Paris, FR: light rain, 14.2°C (feels 13.5°C), humidity 82%, wind 4.1 m/s"
    )


def test_a_wrong_key_is_reported_as_refused_with_where_to_fix_it(service: str) -> None:
    tool = weather_tool({"credentials": {"api_key": "wrong"}, "config": {"base_url": service}})
    with pytest.raises(WeatherError, match="refused the API key; check the key in the module's settings"):
        tool.function(city="Paris")


def test_no_key_at_all_says_to_add_one(service: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEXUS_CREDENTIAL_API_KEY", raising=False)
    tool = weather_tool({"config": {"base_url": service}})
    with pytest.raises(WeatherError, match="has no API key; add your OpenWeatherMap key"):
        tool.function(city="Paris")


def test_an_unknown_city_is_named_in_the_error(service: str) -> None:
    tool = weather_tool({"credentials": {"api_key": KEY}, "config": {"base_url": service}})
    with pytest.raises(WeatherError, match="does not know 'Atlantis'"):
        tool.function(city="Atlantis")


def test_a_service_that_is_down_is_reported_as_unreachable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    tool = weather_tool({"credentials": {"api_key": KEY}, "config": {"base_url": f"http://127.0.0.1:{port}"}})
    with pytest.raises(WeatherError, match=f"at 127.0.0.1:{port} cannot be reached"):
        tool.function(city="Paris")


def test_key_and_address_can_come_from_the_environment(service: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEXUS_CREDENTIAL_API_KEY", KEY)
    monkeypatch.setenv("NEXUS_WEATHER_BASE_URL", service)
    assert (
        weather_tool({})
        .function(city="paris,fr", units="imperial")
        .startswith("Paris, FR: light rain, 14.2°F")
    )
