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


# The text of a message as shown (its chosen swipe), or NULL for a row that has none; never an
# error, so a trigger using it cannot make a write fail.
def _shown_text(row: str) -> str:
    return (
        f"CASE WHEN json_valid({row}.swipes) AND {row}.swipe_index >= 0 "
        f"THEN json_extract({row}.swipes, '$[' || {row}.swipe_index || ']') END"
    )


def _v5_chat_history(conn: Connection) -> None:
    """Chat history: full-text search over every message, kept current by triggers (so writes from
    any process, the CLI's included, are indexed), and what an imported SillyTavern chat carries
    that NEXUS does not use, so exporting it gives it back."""
    statements = [
        "ALTER TABLE chat ADD COLUMN st_metadata JSON NOT NULL DEFAULT '{}'",
        "ALTER TABLE message ADD COLUMN st_extra JSON NOT NULL DEFAULT '{}'",
        # Opening a chat and its list's "last message" read messages in position order.
        "CREATE INDEX ix_message_chat_position ON message (chat_id, position)",
        # rowid = message.id.  remove_diacritics: "cafe" finds "café".
        """CREATE VIRTUAL TABLE message_fts USING fts5(
            text, tokenize = 'unicode61 remove_diacritics 2')""",
        f"INSERT INTO message_fts (rowid, text) SELECT id, {_shown_text('message')} FROM message",
        f"""CREATE TRIGGER message_fts_insert AFTER INSERT ON message BEGIN
            INSERT INTO message_fts (rowid, text) VALUES (new.id, {_shown_text("new")});
        END""",
        f"""CREATE TRIGGER message_fts_update AFTER UPDATE OF swipes, swipe_index ON message BEGIN
            DELETE FROM message_fts WHERE rowid = old.id;
            INSERT INTO message_fts (rowid, text) VALUES (new.id, {_shown_text("new")});
        END""",
        # Also runs for the messages a deleted chat or character takes with it (ON DELETE CASCADE).
        """CREATE TRIGGER message_fts_delete AFTER DELETE ON message BEGIN
            DELETE FROM message_fts WHERE rowid = old.id;
        END""",
    ]
    for statement in statements:
        conn.execute(text(statement))


def _v6_personas(conn: Connection) -> None:
    """User personas (name, avatar, description; one is the default) and each chat's persona.

    A chat whose ``persona_id`` is NULL speaks as the default persona; deleting a persona sets its
    chats back to NULL.  The name the user had set in the settings becomes the default persona;
    the old "You" default was never chosen by anyone, so it is not kept (the first run asks).
    """
    statements = [
        """CREATE TABLE persona (
            id INTEGER PRIMARY KEY,
            name VARCHAR NOT NULL,
            description VARCHAR NOT NULL DEFAULT '',
            avatar BLOB,
            is_default BOOLEAN NOT NULL DEFAULT 0,
            created_at DATETIME NOT NULL,
            updated_at DATETIME NOT NULL)""",
        # At most one default: the database itself refuses a second.
        "CREATE UNIQUE INDEX ix_persona_one_default ON persona (is_default) WHERE is_default",
        "ALTER TABLE chat ADD COLUMN persona_id INTEGER REFERENCES persona (id) ON DELETE SET NULL",
        "CREATE INDEX ix_chat_persona_id ON chat (persona_id)",
        """INSERT INTO persona (name, description, is_default, created_at, updated_at)
            SELECT trim(json_extract(value, '$.user_name')), '', 1,
                strftime('%Y-%m-%d %H:%M:%f000', 'now'), strftime('%Y-%m-%d %H:%M:%f000', 'now')
            FROM setting
            WHERE key = 'settings' AND json_valid(value)
                AND trim(coalesce(json_extract(value, '$.user_name'), '')) NOT IN ('', 'You')""",
    ]
    for statement in statements:
        conn.execute(text(statement))


def _v7_writing_tools(conn: Connection) -> None:
    """Writing tools: each chat's author's note (text, depth in the chat, role; SillyTavern's
    defaults: inserted 4 messages from the end, as a system message), and messages hidden from
    the prompt (still shown)."""
    statements = [
        "ALTER TABLE chat ADD COLUMN author_note VARCHAR NOT NULL DEFAULT ''",
        "ALTER TABLE chat ADD COLUMN author_note_depth INTEGER NOT NULL DEFAULT 4",
        "ALTER TABLE chat ADD COLUMN author_note_role VARCHAR NOT NULL DEFAULT 'system'",
        "ALTER TABLE message ADD COLUMN hidden BOOLEAN NOT NULL DEFAULT 0",
    ]
    for statement in statements:
        conn.execute(text(statement))


def _v8_group_chats(conn: Connection) -> None:
    """Group chats: a group of characters (its turn order; each member's place and mute), chats
    that belong to a group rather than one character, and who wrote each reply.

    ``chat.character_id`` becomes nullable (a group's chat has none), which SQLite can only do by
    rebuilding the table; ``migrate`` runs steps with foreign keys off, as SQLite's recipe asks,
    so dropping the old ``chat`` does not take the messages with it.  A member whose character is
    deleted stays in the group with its name (``character_id`` NULL), so the group can say who is
    gone; a reply keeps its speaker's name for the same reason.
    """
    statements = [
        """CREATE TABLE chat_group (
            id INTEGER PRIMARY KEY,
            name VARCHAR NOT NULL,
            turn_order VARCHAR NOT NULL DEFAULT 'natural',
            created_at DATETIME NOT NULL,
            updated_at DATETIME NOT NULL)""",
        """CREATE TABLE group_member (
            id INTEGER PRIMARY KEY,
            group_id INTEGER NOT NULL REFERENCES chat_group (id) ON DELETE CASCADE,
            character_id INTEGER REFERENCES character (id) ON DELETE SET NULL,
            name VARCHAR NOT NULL,
            position INTEGER NOT NULL,
            muted BOOLEAN NOT NULL DEFAULT 0)""",
        "CREATE INDEX ix_group_member_group_id ON group_member (group_id)",
        "CREATE INDEX ix_group_member_character_id ON group_member (character_id)",
        # Either a character's chat or a group's, never both or neither.
        """CREATE TABLE chat_new (
            id INTEGER PRIMARY KEY,
            character_id INTEGER REFERENCES character (id) ON DELETE CASCADE,
            group_id INTEGER REFERENCES chat_group (id) ON DELETE CASCADE,
            title VARCHAR NOT NULL DEFAULT '',
            created_at DATETIME NOT NULL,
            updated_at DATETIME NOT NULL,
            st_metadata JSON NOT NULL DEFAULT '{}',
            persona_id INTEGER REFERENCES persona (id) ON DELETE SET NULL,
            author_note VARCHAR NOT NULL DEFAULT '',
            author_note_depth INTEGER NOT NULL DEFAULT 4,
            author_note_role VARCHAR NOT NULL DEFAULT 'system',
            CHECK ((character_id IS NULL) <> (group_id IS NULL)))""",
        """INSERT INTO chat_new (id, character_id, title, created_at, updated_at, st_metadata,
                persona_id, author_note, author_note_depth, author_note_role)
            SELECT id, character_id, title, created_at, updated_at, st_metadata,
                persona_id, author_note, author_note_depth, author_note_role FROM chat""",
        "DROP TABLE chat",
        "ALTER TABLE chat_new RENAME TO chat",
        "CREATE INDEX ix_chat_character_id ON chat (character_id)",
        "CREATE INDEX ix_chat_persona_id ON chat (persona_id)",
        "CREATE INDEX ix_chat_group_id ON chat (group_id)",
        "ALTER TABLE message ADD COLUMN speaker_id INTEGER REFERENCES character (id) ON DELETE SET NULL",
        "ALTER TABLE message ADD COLUMN speaker_name VARCHAR NOT NULL DEFAULT ''",
    ]
    for statement in statements:
        conn.execute(text(statement))
    broken = conn.execute(text("PRAGMA foreign_key_check")).fetchall()
    if broken:
        raise RuntimeError(f"Rebuilding the chat table broke {len(broken)} references; nothing was changed.")


def _v9_module_builds(conn: Connection) -> None:
    """Module builds (issue 14): one row per "build me X" request and one per round of its
    generate/validate/repair loop, kept whole (prompt, output, parse error or diff, test report)
    for inspection and as training data.  ``decision_id`` names the task router's decision; it
    has no foreign key because that table comes in a later step."""
    statements = [
        """CREATE TABLE module_build (
            id INTEGER PRIMARY KEY,
            description VARCHAR NOT NULL,
            status VARCHAR NOT NULL,
            reason VARCHAR NOT NULL DEFAULT '',
            module_name VARCHAR NOT NULL DEFAULT '',
            template_version VARCHAR NOT NULL,
            source_name VARCHAR NOT NULL DEFAULT '',
            decision_id INTEGER,
            chat_id INTEGER REFERENCES chat (id) ON DELETE SET NULL,
            plan VARCHAR NOT NULL DEFAULT '',
            staging_path VARCHAR NOT NULL DEFAULT '',
            created_at DATETIME NOT NULL,
            updated_at DATETIME NOT NULL,
            finished_at DATETIME)""",
        "CREATE INDEX ix_module_build_status ON module_build (status)",
        "CREATE INDEX ix_module_build_chat_id ON module_build (chat_id)",
        """CREATE TABLE module_build_round (
            id INTEGER PRIMARY KEY,
            build_id INTEGER NOT NULL REFERENCES module_build (id) ON DELETE CASCADE,
            round_no INTEGER NOT NULL,
            kind VARCHAR NOT NULL,
            prompt JSON NOT NULL,
            output VARCHAR NOT NULL DEFAULT '',
            files JSON NOT NULL,
            parse_error VARCHAR NOT NULL DEFAULT '',
            diff VARCHAR NOT NULL DEFAULT '',
            test_report JSON,
            passed BOOLEAN NOT NULL DEFAULT 0,
            started_at DATETIME NOT NULL,
            finished_at DATETIME,
            UNIQUE (build_id, round_no))""",
        "CREATE INDEX ix_module_build_round_build_id ON module_build_round (build_id)",
    ]
    for statement in statements:
        conn.execute(text(statement))


def _v10_route_decisions(conn: Connection) -> None:
    """Provider routing: each decision (which source a task ran on, and why) and its outcome."""
    statements = [
        """CREATE TABLE route_decision (
            id INTEGER PRIMARY KEY,
            task VARCHAR NOT NULL,
            source_name VARCHAR NOT NULL,
            kind VARCHAR NOT NULL,
            reason VARCHAR NOT NULL,
            warning VARCHAR,
            outcome VARCHAR,
            detail VARCHAR NOT NULL DEFAULT '',
            created_at DATETIME NOT NULL,
            finished_at DATETIME)""",
        "CREATE INDEX ix_route_decision_task ON route_decision (task)",
    ]
    for statement in statements:
        conn.execute(text(statement))


def _v11_module_templates(conn: Connection) -> None:
    """Module template versions made by co-evolution: the candidate's wording, what it was aimed
    at, and the trial that decided whether it was kept (success rates per version come from the
    builds, ``module_build.template_version``)."""
    conn.execute(
        text(
            """CREATE TABLE module_template (
            version VARCHAR PRIMARY KEY,
            parent VARCHAR NOT NULL,
            category VARCHAR NOT NULL,
            hint VARCHAR NOT NULL,
            plan_system VARCHAR NOT NULL,
            generate_system VARCHAR NOT NULL,
            skeleton VARCHAR NOT NULL,
            rules VARCHAR NOT NULL,
            kept BOOLEAN NOT NULL DEFAULT 0,
            parent_ok INTEGER NOT NULL DEFAULT 0,
            candidate_ok INTEGER NOT NULL DEFAULT 0,
            trials INTEGER NOT NULL DEFAULT 0,
            reason VARCHAR NOT NULL DEFAULT '',
            created_at DATETIME NOT NULL)"""
        )
    )


def _v12_memory(conn: Connection) -> None:
    """Engram: what characters remember across chats, each fact with its embedding (float32
    bytes, unit length) and the model that made it; no character is the shared scope."""
    statements = [
        """CREATE TABLE memory (
            id INTEGER PRIMARY KEY,
            character_id INTEGER REFERENCES character (id) ON DELETE CASCADE,
            text VARCHAR NOT NULL,
            embedding BLOB NOT NULL,
            embedding_model VARCHAR NOT NULL,
            source VARCHAR NOT NULL,
            created_at DATETIME NOT NULL)""",
        "CREATE INDEX ix_memory_character_id ON memory (character_id)",
    ]
    for statement in statements:
        conn.execute(text(statement))


MIGRATIONS: list[Migration] = [
    _v1_initial,
    _v2_modules,
    _v3_training,
    _v4_control,
    _v5_chat_history,
    _v6_personas,
    _v7_writing_tools,
    _v8_group_chats,
    _v9_module_builds,
    _v10_route_decisions,
    _v11_module_templates,
    _v12_memory,
]


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
    # Foreign keys are off while steps run, as SQLite's recipe for rebuilding a table asks (the
    # pragma does nothing inside a transaction, so it is set between them); a step that rebuilds
    # a table checks the keys itself before it commits.
    raw = conn.connection.driver_connection
    assert raw is not None
    keys_were_on = raw.execute("PRAGMA foreign_keys").fetchone()[0]
    raw.execute("PRAGMA foreign_keys=OFF")
    try:
        for version, step in enumerate(MIGRATIONS[current:], start=current + 1):
            # The step's DDL and its version bump commit together: a kill in between leaves the
            # previous version, whose next start runs the whole step again.
            with conn.begin():
                # Read again under the write lock (BEGIN IMMEDIATE): another process starting at
                # the same moment may have applied this step since the read above.
                if schema_version(conn) >= version:
                    continue
                step(conn)
                conn.execute(text(f"PRAGMA user_version = {version}"))
    finally:
        raw.execute(f"PRAGMA foreign_keys={'ON' if keys_were_on else 'OFF'}")
    return len(MIGRATIONS)
