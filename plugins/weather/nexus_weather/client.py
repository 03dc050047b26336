"""A small client for OpenWeatherMap's current-weather endpoint (``/data/2.5/weather``).

The standard library's HTTP client is enough for one GET, so the module needs no packages.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

DEFAULT_BASE_URL = "https://api.openweathermap.org"
TIMEOUT_SECONDS = 10.0
_UNIT_SYMBOLS = {"metric": ("°C", "m/s"), "imperial": ("°F", "mph")}


class WeatherError(RuntimeError):
    """The weather could not be fetched; ``str()`` says why and what to do."""


def current_weather(
    city: str, *, api_key: str | None, base_url: str = DEFAULT_BASE_URL, units: str = "metric"
) -> str:
    """One line such as ``Paris, FR: light rain, 14.2°C (feels 13.5°C), humidity 82%, wind 4.1 m/s``."""
    city = " ".join(city.split())
    if not city:
        raise WeatherError("No place was given; name a city, e.g. Paris or Paris,FR.")
    if not api_key:
        raise WeatherError(
            "The weather module has no API key; add your OpenWeatherMap key in the module's settings."
        )
    query = urllib.parse.urlencode({"q": city, "appid": api_key, "units": units})
    url = f"{base_url.rstrip('/')}/data/2.5/weather?{query}"
    host = urllib.parse.urlsplit(base_url).netloc or base_url
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
            data = json.loads(response.read(1_000_000))
    except urllib.error.HTTPError as error:
        raise _http_error(error.code, city) from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        raise WeatherError(
            f"The weather service at {host} cannot be reached ({_reason(error)}); "
            "check your internet connection and try again."
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise WeatherError(
            f"The weather service at {host} sent an answer that is not JSON; try later."
        ) from None
    return _describe(data, units)


def _reason(error: BaseException) -> str:
    reason = getattr(error, "reason", error)
    return str(getattr(reason, "strerror", None) or reason)


def _http_error(status: int, city: str) -> WeatherError:
    if status == 401:
        return WeatherError(
            "The weather service refused the API key; check the key in the module's settings "
            "(a new OpenWeatherMap key can take two hours to start working)."
        )
    if status == 404:
        return WeatherError(
            f"The weather service does not know {city!r}; check the spelling or add the country."
        )
    if status == 429:
        return WeatherError("The weather service says too many requests were made with this key; try later.")
    return WeatherError(f"The weather service answered with error {status}; try again later.")


def _describe(data: Any, units: str) -> str:
    try:
        main = data["main"]
        place = data.get("name") or "There"
        country = (data.get("sys") or {}).get("country")
        sky = ", ".join(item["description"] for item in data.get("weather") or []) or "no sky report"
        degrees, speed = _UNIT_SYMBOLS.get(units, ("K", "m/s"))
        text = f"{place}{', ' + country if country else ''}: {sky}, {float(main['temp']):.1f}{degrees}"
        if "feels_like" in main:
            text += f" (feels {float(main['feels_like']):.1f}{degrees})"
        if "humidity" in main:
            text += f", humidity {int(main['humidity'])}%"
        wind = (data.get("wind") or {}).get("speed")
        if wind is not None:
            text += f", wind {float(wind):.1f} {speed}"
        return text
    except (KeyError, TypeError, ValueError, AttributeError):
        raise WeatherError("The weather service sent an answer in an unknown format; try later.") from None
