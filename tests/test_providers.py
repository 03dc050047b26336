"""Provider routing: each task runs on the best configured source, says why, and learns from
recorded outcomes; decisions survive a restart.  Real SQLite files, real GGUF files written with
the gguf package, a real OpenAI-compatible server on 127.0.0.1; only the GPU is scripted."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from gguf import GGUFWriter
from sqlmodel import SQLModel

from nexus_desktop.chat.sources import GameModeError
from nexus_desktop.db.store import Store
from nexus_desktop.llm.catalog import default_model_path
from nexus_desktop.llm.contract import ChatInput, ChatMessage, RunContext, SamplingSettings
from nexus_desktop.providers import RouteDecision, TaskRouter, UnknownSourceError
from nexus_desktop.providers.decision import DEFAULT_CODE_WARNING, MIN_OUTCOMES
from nexus_desktop.providers.tables import RouteRecord
from nexus_desktop.settings import Settings
from tests.chat_server import ChatServer, running_chat_server

GIB = 1024**3
DEFAULT = f"default: {getattr(default_model_path(), 'name', '')}"
CODER = "qwen2.5-coder-7b-instruct-q4_k_m.gguf"

needs_default = pytest.mark.skipif(
    default_model_path() is None, reason="the bundled SmolLM2 model is missing"
)
pytestmark = needs_default


def no_key(_name: str) -> str | None:
    return None  # the test servers need no API key


def write_gguf(path: Path, size: int) -> Path:
    """A real GGUF file whose size on disk reads as ``size`` (sparse: no disk is used)."""
    writer = GGUFWriter(path, "llama")
    writer.add_block_count(1)
    writer.add_tensor("blk.0.attn_q.weight", np.ones((8, 8), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.truncate(path, size)
    return path


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path / "nexus.db")
    yield store
    store.close()


@pytest.fixture
def models(tmp_path: Path) -> Path:
    folder = tmp_path / "models"
    folder.mkdir()
    return folder


@pytest.fixture
def server() -> Iterator[ChatServer]:
    with running_chat_server() as running:
        yield running


class Setup:
    """A router over ``store`` whose settings a test changes; the PC has a 24 GiB GPU."""

    def __init__(self, store: Store, models: Path) -> None:
        self.store = store
        self.settings = Settings(models_dir=str(models))
        self.router = self.make_router()

    def make_router(self) -> TaskRouter:
        return TaskRouter(self.store.engine, lambda: self.settings, no_key, gpu_total=lambda: 24 * GIB)

    def remote(self, server: ChatServer) -> None:
        self.settings = self.settings.model_copy(
            update={"remote_base_url": server.base_url, "remote_model": "scripted"}
        )

    def choose(self, task: str = "codegen", prefer: str | None = None) -> RouteDecision:
        return asyncio.run(self.router.choose(task, prefer=prefer))  # type: ignore[arg-type]

    def outcomes(self, source_name: str, ok: int, failed: int, task: str = "codegen") -> None:
        async def record() -> None:
            for good in [True] * ok + [False] * failed:
                decision = await self.router.choose(task, prefer=source_name)  # type: ignore[arg-type]
                await self.router.record_outcome(decision, good, "" if good else "tests failed")

        asyncio.run(record())


@pytest.fixture
def setup(store: Store, models: Path) -> Setup:
    return Setup(store, models)


def test_with_nothing_better_code_runs_on_the_default_model_with_a_warning(setup: Setup) -> None:
    decision = setup.choose("codegen")
    assert (decision.source_name, decision.kind) == (DEFAULT, "default")
    assert decision.warning == DEFAULT_CODE_WARNING
    assert "no larger local model" in decision.reason
    assert decision.decision_id is not None


def test_a_configured_remote_provider_writes_the_code_and_is_reached_over_http(
    setup: Setup, server: ChatServer
) -> None:
    setup.remote(server)
    decision = setup.choose("codegen")
    assert (decision.source_name, decision.kind, decision.warning) == ("remote: scripted", "remote", None)
    assert "remote OpenAI-compatible provider is configured" in decision.reason

    async def ask() -> str:
        source = await setup.router.open(decision)
        try:
            request = ChatInput((ChatMessage("user", "write it"),), SamplingSettings(max_tokens=3))
            return (await source(request, RunContext())).text
        finally:
            await source.aclose()

    assert asyncio.run(ask()) == "one two three"
    assert server.chat_requests()[-1]["model"] == "scripted"


def test_a_larger_local_coder_model_is_preferred_over_the_default(setup: Setup, models: Path) -> None:
    write_gguf(models / CODER, 4 * GIB)
    write_gguf(models / "llama-3.1-8b-instruct-q5_k_m.gguf", 5 * GIB)
    write_gguf(models / "tiny-coder-10m.gguf", 10 * 1024 * 1024)  # smaller than the default: no better

    code = setup.choose("codegen")
    assert (code.source_name, code.kind, code.warning) == (f"local: {CODER}", "local", None)
    assert "largest local code model" in code.reason and "fits on GPU" in code.reason
    # Judging needs no code model: the largest one wins.
    assert setup.choose("judging").source_name == "local: llama-3.1-8b-instruct-q5_k_m.gguf"


def test_a_model_too_large_for_this_pc_is_passed_over_with_the_reason(setup: Setup, models: Path) -> None:
    write_gguf(models / "deepseek-coder-v2-236b-q8_0.gguf", 1024 * GIB)
    decision = setup.choose("codegen")
    assert decision.source_name == DEFAULT
    assert "Passed over as too large for this PC: local: deepseek-coder-v2-236b-q8_0.gguf" in decision.reason
    # Asked for by name it is still used, with a warning.
    asked = setup.choose("codegen", prefer="deepseek-coder-v2-236b-q8_0")
    assert asked.source_name == "local: deepseek-coder-v2-236b-q8_0.gguf"
    assert asked.warning is not None and "too large for this PC" in asked.warning


def test_the_chat_stays_on_the_model_the_user_picked(setup: Setup, models: Path, server: ChatServer) -> None:
    write_gguf(models / CODER, 4 * GIB)
    setup.remote(server)
    chat = setup.choose("chat")
    assert (chat.source_name, chat.kind) == (DEFAULT, "default")
    assert "Settings → Model" in chat.reason
    setup.settings = setup.settings.model_copy(update={"source": "remote"})
    assert setup.choose("chat").source_name == "remote: scripted"


def test_prefer_picks_the_named_source_and_an_unknown_name_lists_the_choices(
    setup: Setup, models: Path, server: ChatServer
) -> None:
    write_gguf(models / CODER, 4 * GIB)
    setup.remote(server)
    assert setup.choose("codegen").source_name == "remote: scripted"  # positive control: the usual pick
    assert setup.choose("codegen", prefer=CODER).source_name == f"local: {CODER}"
    by_kind = setup.choose("codegen", prefer="default")
    assert (by_kind.source_name, by_kind.warning) == (DEFAULT, DEFAULT_CODE_WARNING)
    with pytest.raises(UnknownSourceError) as raised:
        setup.choose("codegen", prefer="gpt-5")
    assert str(raised.value) == (
        f"No source is called 'gpt-5'; choose one of: remote: scripted, local: {CODER}, {DEFAULT}."
    )


def test_a_failing_remote_loses_to_a_succeeding_local_model_after_enough_outcomes_not_before(
    setup: Setup, models: Path, server: ChatServer
) -> None:
    write_gguf(models / CODER, 4 * GIB)
    setup.remote(server)
    setup.outcomes("remote: scripted", 0, MIN_OUTCOMES - 1)
    assert setup.choose().source_name == "remote: scripted"  # too few outcomes to overrule the order
    setup.outcomes("remote: scripted", 0, 1)
    tried = setup.choose()
    assert tried.source_name == f"local: {CODER}"  # the remote keeps failing: the local model gets a try
    assert "succeeded in only 0 of 5 codegen tasks" in tried.reason

    setup.outcomes(f"local: {CODER}", MIN_OUTCOMES, 0)
    measured = setup.choose()
    assert measured.source_name == f"local: {CODER}"
    assert "succeeded in 5 of 5 codegen tasks" in measured.reason and "measured rate wins" in measured.reason

    # And back: the remote recovers (a key fixed) and its rate catches up.
    setup.outcomes("remote: scripted", 20, 0)
    assert setup.choose().source_name == "remote: scripted"
    # Another task's outcomes are its own: routing never saw a failure.
    assert setup.choose("routing").source_name == "remote: scripted"


def test_decisions_and_outcomes_survive_a_restart(setup: Setup, models: Path, server: ChatServer) -> None:
    write_gguf(models / CODER, 4 * GIB)
    setup.remote(server)
    setup.outcomes("remote: scripted", 0, MIN_OUTCOMES)
    setup.outcomes(f"local: {CODER}", MIN_OUTCOMES, 0)
    before = asyncio.run(setup.router.success_rates())
    path = setup.store.path
    setup.store.close()

    setup.store = Store(path)
    setup.router = setup.make_router()
    assert asyncio.run(setup.router.success_rates()) == before
    assert [(r.source_name, r.ok, r.total) for r in before] == [
        (f"local: {CODER}", 5, 5),
        ("remote: scripted", 0, 5),
    ]
    assert setup.choose().source_name == f"local: {CODER}"
    rows = sqlite3.connect(path).execute("SELECT outcome, detail FROM route_decision ORDER BY id").fetchall()
    assert rows[:2] == [("failed", "tests failed"), ("failed", "tests failed")]
    assert rows[-1] == (None, "")  # the last decision waits for its outcome


def test_the_route_decision_table_matches_its_migration(store: Store) -> None:
    table = SQLModel.metadata.tables[RouteRecord.__tablename__]
    conn = sqlite3.connect(store.path)
    columns = {row[1] for row in conn.execute("PRAGMA table_info(route_decision)")}
    assert columns == {column.name for column in table.columns}


def test_nexus_providers_prints_each_tasks_choice_and_the_rates(private_data_dir: Path, models: Path) -> None:
    write_gguf(models / CODER, 4 * GIB)
    store = Store(private_data_dir / "nexus.db")
    store.save_settings(Settings(models_dir=str(models)))
    setup = Setup(store, models)
    setup.outcomes(f"local: {CODER}", 2, 1)
    store.close()

    done = subprocess.run(
        [sys.executable, "-m", "nexus_desktop.cli", "providers"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert f"chat: {DEFAULT}" in lines
    assert f"codegen: local: {CODER}" in lines
    assert any(line.startswith("  why: No remote provider is set up;") for line in lines)
    assert f"  codegen  local: {CODER}: 2 of 3 ok (67%)" in lines


@pytest.mark.model
def test_the_default_model_opens_through_the_chats_own_source_code_and_answers(setup: Setup) -> None:
    decision = setup.choose("codegen")

    async def ask() -> tuple[str, str]:
        source = await setup.router.open(decision)
        try:
            request = ChatInput((ChatMessage("user", "Say hi."),), SamplingSettings(max_tokens=4, seed=1))
            return source.name, (await source(request, RunContext())).text
        finally:
            await source.aclose()

    name, text = asyncio.run(ask())
    assert name == default_model_path().name  # type: ignore[union-attr]
    assert text.strip()


def test_game_mode_refuses_a_local_source_and_leaves_a_remote_one_alone(
    store: Store, models: Path, server: ChatServer
) -> None:
    settings = Settings(models_dir=str(models), remote_base_url=server.base_url, remote_model="scripted")
    router = TaskRouter(store.engine, lambda: settings, no_key, game_action=lambda: "unload")
    local = RouteDecision("codegen", DEFAULT, "default", "asked")

    async def open_both() -> str:
        with pytest.raises(GameModeError):
            await router.open(local)
        remote = await router.open(await router.choose("codegen"))
        await remote.aclose()
        return remote.name

    assert asyncio.run(open_both()) == "remote: scripted"
