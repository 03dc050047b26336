"""Killing NEXUS mid-reply loses only the reply in flight."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from nexus_desktop.db.store import Store

pytestmark = pytest.mark.model


def start_chat(data_dir: Path, message: str, max_tokens: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "NEXUS_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "nexus_desktop.cli", "chat", "--max-tokens", str(max_tokens), message],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )


def test_sigkill_mid_reply_keeps_every_completed_message(private_data_dir: Path) -> None:
    done = start_chat(private_data_dir, "First question", 12)
    assert done.wait(timeout=300) == 0, done.stderr.read() if done.stderr else ""

    victim = start_chat(private_data_dir, "Tell me a very long story about the stars", 2000)
    assert victim.stdout is not None
    os.set_blocking(victim.stdout.fileno(), False)
    streamed = b""
    deadline = time.monotonic() + 300
    while len(streamed) < 40 and time.monotonic() < deadline:
        streamed += victim.stdout.read() or b""
        time.sleep(0.05)
    assert len(streamed) >= 40, "the reply never started streaming"
    children = psutil.Process(victim.pid).children(recursive=True)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)

    # The model worker notices its parent is gone and exits by itself.
    _, alive = psutil.wait_procs(children, timeout=30)
    assert alive == []

    conn = sqlite3.connect(private_data_dir / "nexus.db")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()

    store = Store(private_data_dir / "nexus.db")
    character = store.list_characters()[0]
    assert character.id is not None
    [chat] = store.list_chats(character.id)
    assert chat.id is not None
    roles_and_text = [(m.role, m.content) for m in store.list_messages(chat.id)]
    # greeting, first question, its reply, and the question whose reply was killed
    assert [role for role, _ in roles_and_text] == ["assistant", "user", "assistant", "user"]
    assert roles_and_text[1][1] == "First question"
    assert roles_and_text[3][1] == "Tell me a very long story about the stars"
    store.close()

    after = start_chat(private_data_dir, "Are you still there?", 8)
    assert after.wait(timeout=300) == 0, after.stderr.read() if after.stderr else ""
