"""Schema migrations, applied in order and tracked in SQLite's ``user_version``.

Append a new step to ``MIGRATIONS`` to change the schema; never edit a released one.
Each step runs in one transaction, so a crash mid-migration leaves the old schema intact.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, text

Migration = Callable[[Connection], None]


def _v1_initial(conn: Connection) -> None:
    statements = [
        """CREATE TABLE character (
            id INTEGER PRIMARY KEY,
            name VARCHAR NOT NULL,
            card JSON NOT NULL,
            avatar BLOB,
            builtin BOOLEAN NOT NULL DEFAULT 0,
            created_at DATETIME NOT NULL,
            updated_at DATETIME NOT NULL)""",
        "CREATE INDEX ix_character_name ON character (name)",
        """CREATE TABLE chat (
            id INTEGER PRIMARY KEY,
            character_id INTEGER NOT NULL REFERENCES character (id) ON DELETE CASCADE,
            title VARCHAR NOT NULL DEFAULT '',
            created_at DATETIME NOT NULL,
            updated_at DATETIME NOT NULL)""",
        "CREATE INDEX ix_chat_character_id ON chat (character_id)",
        """CREATE TABLE message (
            id INTEGER PRIMARY KEY,
            chat_id INTEGER NOT NULL REFERENCES chat (id) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            role VARCHAR NOT NULL,
            swipes JSON NOT NULL,
            swipe_index INTEGER NOT NULL DEFAULT 0,
            swipe_stats JSON NOT NULL,
            created_at DATETIME NOT NULL)""",
        "CREATE INDEX ix_message_chat_id ON message (chat_id)",
        """CREATE TABLE setting (
            key VARCHAR PRIMARY KEY,
            value JSON)""",
    ]
    for statement in statements:
        conn.execute(text(statement))


def _v2_modules(conn: Connection) -> None:
    """Module host: one row per module version, and an append-only audit log of state changes."""
    statements = [
        """CREATE TABLE module (
            id INTEGER PRIMARY KEY,
            name VARCHAR NOT NULL,
            version VARCHAR NOT NULL,
            origin VARCHAR NOT NULL,
            source VARCHAR NOT NULL,
            path VARCHAR NOT NULL,
            state VARCHAR NOT NULL,
            active BOOLEAN NOT NULL DEFAULT 0,
            content_hash VARCHAR NOT NULL,
            approved_hash VARCHAR,
            approved_at DATETIME,
            approved_access JSON NOT NULL,
            last_report JSON,
            failure_count INTEGER NOT NULL DEFAULT 0,
            reason VARCHAR NOT NULL DEFAULT '',
            created_at DATETIME NOT NULL,
            updated_at DATETIME NOT NULL,
            UNIQUE (name, version))""",
        "CREATE INDEX ix_module_name ON module (name)",
        """CREATE TABLE module_event (
            id INTEGER PRIMARY KEY,
            name VARCHAR NOT NULL,
            version VARCHAR NOT NULL,
            from_state VARCHAR,
            to_state VARCHAR NOT NULL,
            reason VARCHAR NOT NULL DEFAULT '',
            at DATETIME NOT NULL)""",
        "CREATE INDEX ix_module_event_name ON module_event (name)",
        # The audit log is append-only: the database itself refuses edits and deletions.
        """CREATE TRIGGER module_event_no_update BEFORE UPDATE ON module_event
            BEGIN SELECT RAISE(ABORT, 'the module audit log is append-only'); END""",
        """CREATE TRIGGER module_event_no_delete BEFORE DELETE ON module_event
            BEGIN SELECT RAISE(ABORT, 'the module audit log is append-only'); END""",
    ]
    for statement in statements:
        conn.execute(text(statement))


def _v3_training(conn: Connection) -> None:
    """Self-improvement loop: collected examples, training jobs, their loss curves, gate decisions
    and the adapter registry's history."""
    statements = [
        """CREATE TABLE training_example (
            id INTEGER PRIMARY KEY,
            dataset VARCHAR NOT NULL,
            kind VARCHAR NOT NULL,
            signal VARCHAR NOT NULL,
            content_hash VARCHAR NOT NULL UNIQUE,
            payload JSON NOT NULL,
            created_at DATETIME NOT NULL)""",
        "CREATE INDEX ix_training_example_dataset ON training_example (dataset)",
        """CREATE TABLE training_job (
            id INTEGER PRIMARY KEY,
            model_id VARCHAR NOT NULL,
            state VARCHAR NOT NULL,
            job_dir VARCHAR NOT NULL,
            log_path VARCHAR NOT NULL,
            progress FLOAT NOT NULL DEFAULT 0,
            step INTEGER NOT NULL DEFAULT 0,
            total INTEGER NOT NULL DEFAULT 0,
            loss FLOAT,
            best_loss FLOAT,
            eval_loss FLOAT,
            device VARCHAR NOT NULL DEFAULT '',
            pid INTEGER,
            pid_started FLOAT,
            checkpoint VARCHAR,
            adapter_dir VARCHAR,
            gguf_adapter VARCHAR,
            verified JSON,
            error VARCHAR NOT NULL DEFAULT '',
            created_at DATETIME NOT NULL,
            started_at DATETIME,
            finished_at DATETIME)""",
        "CREATE INDEX ix_training_job_model_id ON training_job (model_id)",
        "CREATE INDEX ix_training_job_state ON training_job (state)",
        """CREATE TABLE training_step (
            id INTEGER PRIMARY KEY,
            job_id INTEGER NOT NULL REFERENCES training_job (id) ON DELETE CASCADE,
            step INTEGER NOT NULL,
            loss FLOAT,
            eval_loss FLOAT,
            lr FLOAT,
            tokens_per_second FLOAT,
            UNIQUE (job_id, step))""",
        "CREATE INDEX ix_training_step_job_id ON training_step (job_id)",
        """CREATE TABLE gate_decision (
            id INTEGER PRIMARY KEY,
            model_id VARCHAR NOT NULL,
            job_id INTEGER,
            candidate VARCHAR NOT NULL,
            policy VARCHAR NOT NULL,
            promote BOOLEAN NOT NULL,
            reason VARCHAR NOT NULL,
            numbers JSON NOT NULL,
            at DATETIME NOT NULL)""",
        "CREATE INDEX ix_gate_decision_model_id ON gate_decision (model_id)",
        """CREATE TABLE adapter_event (
            id INTEGER PRIMARY KEY,
            model_id VARCHAR NOT NULL,
            action VARCHAR NOT NULL,
            adapter_path VARCHAR,
            job_id INTEGER,
            decision_id INTEGER,
            override BOOLEAN NOT NULL DEFAULT 0,
            reason VARCHAR NOT NULL DEFAULT '',
            at DATETIME NOT NULL)""",
        "CREATE INDEX ix_adapter_event_model_id ON adapter_event (model_id)",
    ]
    # Gate decisions and promotion history are audit logs: the database refuses edits and deletions.
    for table in ("gate_decision", "adapter_event"):
        for verb in ("UPDATE", "DELETE"):
            statements.append(
                f"""CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table}
                BEGIN SELECT RAISE(ABORT, 'the {table} log is append-only'); END"""
            )
    for statement in statements:
        conn.execute(text(statement))


def _v4_control(conn: Connection) -> None:
    """Control plane: scheduler state and runs, the loop's ledger, model-call metrics, character
    policies and budget usage, and where module characters came from."""
    statements = [
        "ALTER TABLE character ADD COLUMN origin VARCHAR NOT NULL DEFAULT ''",
        """CREATE TABLE scheduled_task (
            name VARCHAR PRIMARY KEY,
            owner VARCHAR NOT NULL,
            cadence VARCHAR NOT NULL,
            state VARCHAR NOT NULL,
            next_due DATETIME,
            last_started DATETIME,
            last_finished DATETIME,
            last_duration FLOAT,
            last_outcome VARCHAR,
            last_error VARCHAR NOT NULL DEFAULT '',
            run_count INTEGER NOT NULL DEFAULT 0,
            error_count INTEGER NOT NULL DEFAULT 0,
            timeout_count INTEGER NOT NULL DEFAULT 0,
            skipped_count INTEGER NOT NULL DEFAULT 0,
            updated_at DATETIME NOT NULL)""",
        """CREATE TABLE task_run (
            id INTEGER PRIMARY KEY,
            task VARCHAR NOT NULL,
            due_at DATETIME,
            started_at DATETIME NOT NULL,
            finished_at DATETIME,
            outcome VARCHAR NOT NULL,
            seconds FLOAT,
            detail VARCHAR NOT NULL DEFAULT '')""",
        "CREATE INDEX ix_task_run_task ON task_run (task)",
        "CREATE INDEX ix_task_run_started_at ON task_run (started_at)",
        """CREATE TABLE loop_cycle (
            id INTEGER PRIMARY KEY,
            kind VARCHAR NOT NULL,
            started_at DATETIME NOT NULL,
            finished_at DATETIME,
            outcome VARCHAR NOT NULL,
            changes JSON NOT NULL,
            detail JSON NOT NULL,
            report_path VARCHAR)""",
        "CREATE INDEX ix_loop_cycle_kind ON loop_cycle (kind)",
        "CREATE INDEX ix_loop_cycle_started_at ON loop_cycle (started_at)",
        """CREATE TABLE model_call (
            id INTEGER PRIMARY KEY,
            at DATETIME NOT NULL,
            service VARCHAR NOT NULL,
            task_type VARCHAR NOT NULL,
            source VARCHAR NOT NULL,
            model VARCHAR NOT NULL,
            adapter VARCHAR NOT NULL,
            character VARCHAR NOT NULL,
            tokens_in INTEGER NOT NULL,
            tokens_out INTEGER NOT NULL,
            first_token_seconds FLOAT,
            seconds FLOAT NOT NULL,
            ok BOOLEAN NOT NULL)""",
        "CREATE INDEX ix_model_call_at ON model_call (at)",
        """CREATE TABLE character_policy (
            character_id INTEGER PRIMARY KEY REFERENCES character (id) ON DELETE CASCADE,
            policy JSON NOT NULL,
            updated_at DATETIME NOT NULL)""",
        """CREATE TABLE budget_usage (
            id INTEGER PRIMARY KEY,
            character VARCHAR NOT NULL,
            day VARCHAR NOT NULL,
            tokens INTEGER NOT NULL,
            tool_calls INTEGER NOT NULL,
            replies INTEGER NOT NULL,
            UNIQUE (character, day))""",
        "CREATE INDEX ix_budget_usage_character ON budget_usage (character)",
        """CREATE TABLE tool_use (
            id INTEGER PRIMARY KEY,
            character VARCHAR NOT NULL,
            chat_id INTEGER,
            tool VARCHAR NOT NULL,
            at DATETIME NOT NULL)""",
        "CREATE INDEX ix_tool_use_character ON tool_use (character)",
        "CREATE INDEX ix_tool_use_chat_id ON tool_use (chat_id)",
    ]
    for statement in statements:
        conn.execute(text(statement))


MIGRATIONS: list[Migration] = [_v1_initial, _v2_modules, _v3_training, _v4_control]


def schema_version(conn: Connection) -> int:
    return int(conn.execute(text("PRAGMA user_version")).scalar_one())


def migrate(conn: Connection) -> int:
    """Bring the schema up to date; returns the version reached."""
    current = schema_version(conn)
    conn.commit()  # end the read's implicit transaction so each step gets its own
    if current > len(MIGRATIONS):
        raise RuntimeError(
            f"This database was written by a newer NEXUS Desktop (schema {current}, this app knows "
            f"{len(MIGRATIONS)}). Update the app, or move the data folder aside to start fresh."
        )
    for version, step in enumerate(MIGRATIONS[current:], start=current + 1):
        # The step's DDL and its version bump commit together: a kill in between leaves the
        # previous version, whose next start runs the whole step again.
        with conn.begin():
            # Read again under the write lock (BEGIN IMMEDIATE): another process starting at the
            # same moment may have applied this step since the read above.
            if schema_version(conn) >= version:
                continue
            step(conn)
            conn.execute(text(f"PRAGMA user_version = {version}"))
    return len(MIGRATIONS)
