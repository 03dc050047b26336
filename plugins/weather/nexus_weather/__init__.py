"""The weather module: current weather from an OpenWeatherMap-compatible HTTP API."""
