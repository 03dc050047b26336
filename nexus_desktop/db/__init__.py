"""Persistence: sqlmodel tables on SQLite (WAL), schema migrations, and the store API."""
