"""`nexus modules build "description"`: a build from the terminal, each step printed as it happens.

A real ``nexus`` process in a private data dir whose remote provider is the replay server on
127.0.0.1 (the scripted "strong" source, tests/replay_server.py), real sandboxed validation.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nexus_desktop import paths
from nexus_desktop.builder.store import BuildStore
from nexus_desktop.db.store import Store
from tests.replay_server import (
    MODEL,
    ReplayServer,
    failing_dice_module,
    good_dice_module,
    running_replay_server,
)
from tests.test_cli import assert_one_line_error, nexus
from tests.test_cli_modules import states

DICE = "a tool that rolls D&D ability scores and dice like 3d6+2"
NAME = "rolls-ability-scores"
KEY = "rolls D&D ability scores"


def use_remote(server: ReplayServer) -> None:
    """Settings → Remote points at the replay server, as a user configures a provider."""
    store = Store(paths.database_path())
    try:
        settings = store.load_settings()
        store.save_settings(
            settings.model_copy(update={"remote_base_url": server.base_url, "remote_model": MODEL})
        )
    finally:
        store.close()


@pytest.fixture
def server(private_data_dir: Path) -> Iterator[ReplayServer]:
    with running_replay_server() as replay:
        use_remote(replay)
        yield replay


def test_build_prints_each_step_repairs_once_and_ends_awaiting_approval(
    private_data_dir: Path, server: ReplayServer
) -> None:
    server.script(KEY, [failing_dice_module(NAME), good_dice_module(NAME)])
    built = nexus("modules", "build", DICE, "--source", f"remote: {MODEL}", data_dir=private_data_dir)
    assert built.returncode == 0, built.stderr
    lines = built.stdout.splitlines()
    steps = [line.split()[0] for line in lines if line.startswith("[")]
    # Routed, planned, written, tested and failed, repaired, tested and passed: in that order.
    assert steps[:2] == ["[route]", "[plan]"]
    assert steps.index("[generate]") < steps.index("[repair]") < steps.index("[result]")
    assert any(line.startswith(f"[route]    remote: {MODEL}: ") for line in lines)
    assert any(line.startswith("[validate] Round 1: failed: ") and "tests" in line for line in lines)
    assert "           E       assert 2 == 3" in lines  # what failed, as the repair round was told
    assert "[validate] Round 2: its tests passed in the sandbox" in lines
    assert any(line.startswith("[result]   ") and "it awaits your approval" in line for line in lines)
    assert f"Review and approve it with: nexus modules approve {NAME}" in lines
    assert len(server.file_requests()) == 2

    # It is a module like any other, generated, and waits for a person.
    assert states(private_data_dir)[NAME][1] == "awaiting_approval"
    approved = nexus("modules", "approve", NAME, "--yes", data_dir=private_data_dir)
    assert approved.returncode == 0, approved.stderr
    assert f"{NAME} 1.0.0 · by " in approved.stdout and " · generated" in approved.stdout
    assert states(private_data_dir)[NAME][1] == "enabled"


def test_a_forbidden_request_exits_1_with_the_reason_before_any_model_is_asked(
    private_data_dir: Path, server: ReplayServer
) -> None:
    server.script("secrets", [good_dice_module(NAME)])
    forbidden = nexus(
        "modules", "build", "a tool that reads the other modules' secrets", data_dir=private_data_dir
    )
    assert_one_line_error(forbidden, "Refused: it asks for other modules' secrets or files")
    assert server.requests == []  # refused before any code was asked for
    server.script(KEY, [good_dice_module(NAME)])  # positive control: the same CLI, an ordinary request
    built = nexus("modules", "build", DICE, data_dir=private_data_dir)
    assert built.returncode == 0, built.stderr
    assert states(private_data_dir)[NAME][1] == "awaiting_approval"

    requests = len(server.requests)
    unknown = nexus(
        "modules", "build", "a sudoku solver", "--source", "remote: nobody", data_dir=private_data_dir
    )
    assert_one_line_error(unknown, "failed: No source can write the code", f"remote: {MODEL}")
    assert len(server.requests) == requests


class HeldReplayServer(ReplayServer):
    """Answers the plan, then holds the request for files until the test lets it go."""

    def __init__(self) -> None:
        super().__init__()
        self.holding = threading.Event()
        self.release = threading.Event()

    def answer(self, body: dict[str, Any]) -> str | None:
        if "response_format" in body:
            self.holding.set()
            self.release.wait(60)
        return super().answer(body)


def test_ctrl_c_stops_the_build_with_exit_130_and_keeps_what_was_done(private_data_dir: Path) -> None:
    server = HeldReplayServer()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        use_remote(server)
        server.script(KEY, [good_dice_module(NAME)])
        env = {**os.environ, "NEXUS_DATA_DIR": str(private_data_dir)}
        build = subprocess.Popen(
            [sys.executable, "-m", "nexus_desktop.cli", "modules", "build", DICE],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert server.holding.wait(120), "the build never asked for the module's files"
        time.sleep(0.5)
        build.send_signal(signal.SIGINT)
        out, err = build.communicate(timeout=60)
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()
    assert build.returncode == 130, err
    assert "Traceback" not in err and err.strip().splitlines() == ["Interrupted."]
    assert "[generate] Round 1: writing the manifest, code and tests" in out
    assert "Stopped build 1; its plan and 1 round(s) are kept" in out

    store = Store(paths.database_path())
    try:
        kept = BuildStore(store.engine).get(1)
    finally:
        store.close()
    assert kept.status == "failed" and kept.plan  # stored as stopped, its plan kept
    assert NAME not in states(private_data_dir)
