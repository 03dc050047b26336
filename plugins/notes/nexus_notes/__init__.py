"""The notes module: a small per-module SQLite memory of facts, searchable by words and tags."""
