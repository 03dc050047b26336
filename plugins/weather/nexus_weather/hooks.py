"""The weather module's hooks: its key and service address (``startup``) and the weather tool."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from nexus_desktop.modules.hookspecs import hookimpl
from nexus_desktop.modules.specs import ToolSpec
from nexus_weather.client import DEFAULT_BASE_URL, current_weather

API_KEY_ENV = "NEXUS_CREDENTIAL_API_KEY"
BASE_URL_ENV = "NEXUS_WEATHER_BASE_URL"


class WeatherPlugin:
    """Reads ``app_info["credentials"]["api_key"]`` and ``app_info["config"]["base_url"]`` at startup.

    Without them it falls back to the ``NEXUS_CREDENTIAL_API_KEY`` and ``NEXUS_WEATHER_BASE_URL``
    environment variables, which is how a module process can be handed them too.
    """

    def __init__(self) -> None:
        self.api_key: str | None = None
        self.base_url: str | None = None

    @hookimpl
    def startup(self, app_info: dict[str, Any]) -> None:
        # Replaced, not merged: a key the user removed must stop working at the next start.
        self.api_key = (app_info.get("credentials") or {}).get("api_key")
        self.base_url = (app_info.get("config") or {}).get("base_url")

    def weather(self, city: str, units: str = "metric") -> str:
        return current_weather(
            city,
            api_key=self.api_key or os.environ.get(API_KEY_ENV),
            base_url=self.base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL,
            units=units,
        )

    @hookimpl
    def register_tools(self, register: Callable[[ToolSpec], None]) -> None:
        register(
            ToolSpec(
                name="weather.current",
                description="The current weather in a city, e.g. Paris or Paris,FR.",
                parameters={
                    "type": "object",
                    "properties": {
                        "city": {"type": "string", "minLength": 1, "maxLength": 100},
                        "units": {"enum": ["metric", "imperial"]},
                    },
                    "required": ["city"],
                    "additionalProperties": False,
                },
                function=self.weather,
            )
        )


plugin = WeatherPlugin()
