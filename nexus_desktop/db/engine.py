"""The SQLite engine: WAL journal, foreign keys, and migrations on open."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event
from sqlmodel import Session, create_engine

from nexus_desktop.db.migrations import migrate


def _on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy manage transactions explicitly (pysqlite's implicit BEGIN breaks DDL steps).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # NORMAL in WAL mode survives an app crash or SIGKILL; only a power cut can lose the last commit.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def _on_begin(conn: Any) -> None:
    # IMMEDIATE: a transaction that reads and then writes would otherwise fail at once with
    # "database is locked" when another connection (the training collector, a module job)
    # committed in between; taking the write lock up front makes it wait (busy_timeout) instead.
    # Read-only sessions take it too; they last milliseconds, and readers never block in WAL.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def open_engine(path: Path) -> Engine:
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(f"sqlite:///{path}", connect_args={"check_same_thread": False})
    event.listen(engine, "connect", _on_connect)
    event.listen(engine, "begin", _on_begin)
    with engine.connect() as conn:
        migrate(conn)
    return engine


def open_read_engine(path: Path | str) -> Engine:
    """A second engine on the same file for frequent or long reads (the dashboards).

    ``open_engine``'s sessions take the write lock (BEGIN IMMEDIATE) even to read, so a dashboard
    refreshing ten times a second, or reading a day of model calls, would hold up every writer.
    These connections never begin a transaction (each SELECT reads the last committed state, which
    WAL gives without locking anyone out) and refuse to write (``query_only``).  No migrations: the
    app's own engine has run them.
    """

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA query_only=ON")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.close()

    engine = create_engine(f"sqlite:///{path}", connect_args={"check_same_thread": False})
    event.listen(engine, "connect", on_connect)
    return engine


def session(engine: Engine) -> Session:
    """A session whose rows stay readable after commit: they are handed to other threads as values."""
    return Session(engine, expire_on_commit=False)
