"""A worker on the bus: wrong credentials are a clear error, secrets never travel, and a worker
serves only the tools of modules approved on its own machine.

Real nats-server (with users and passwords where it matters), real ``nexus worker`` subprocesses.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest

from nexus_desktop.bus.axon import TaskError
from nexus_desktop.bus.dendrite import Dendrite
from nexus_desktop.bus.remote_source import WorkerSource, connect_worker_source
from nexus_desktop.bus.synapse import Connection, open_synapse
from nexus_desktop.chat.service import ReplySaved
from nexus_desktop.chat.sources import REMOTE_KEY_NAME
from nexus_desktop.core import AppCore
from nexus_desktop.llm.contract import ModelError
from nexus_desktop.modules.runtime.supervisor import credential_key
from tests.nats_support import NatsServer, WorkerProcess, nats_server, start_nats, start_worker  # noqa: F401

pytestmark = pytest.mark.model
EXAMPLE_MODULE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "quote-of-the-day"
USERS = """
authorization {
  users = [
    {user: app, password: app-secret-1}
    {user: gpc2, password: worker-secret-2}
  ]
}
"""


@pytest.fixture
def workers() -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for worker in started:
        worker.stop()


def nexus(*args: str, data: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NEXUS_DATA_DIR": str(data)}
    command = [sys.executable, "-m", "nexus_desktop.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)


def test_wrong_credentials_are_a_clear_error_and_nothing_is_saved(
    private_data_dir: Path, tmp_path: Path
) -> None:
    server = start_nats(tmp_path, USERS)
    wrong, right = tmp_path / "wrong.txt", tmp_path / "right.txt"
    wrong.write_text("app:not-the-password\n")
    right.write_text("app:app-secret-1\n")
    core = AppCore()
    try:
        core.settings = core.settings.model_copy(
            update={"source": "worker", "worker_url": server.url, "worker_credentials": str(wrong)}
        )

        async def scenario() -> None:
            character = core.store.list_characters()[0]
            assert character.id is not None
            chat, before = await core.chat.open_chat(character.id)
            assert chat.id is not None
            with pytest.raises(ModelError) as refused:
                async for _ in core.chat.send(chat.id, "Hello?"):
                    pass
            message = str(refused.value)
            assert "refused" in message.lower() and "\n" not in message
            assert core.store.list_messages(chat.id) == before  # the user's message was not saved
            assert core.sources.state.phase == "failed"
            # The positive control: the right password gets past the server to "no worker yet".
            core.settings = core.settings.model_copy(update={"worker_credentials": str(right)})
            with pytest.raises(ModelError, match="no worker serves chat there"):
                async for _ in core.chat.send(chat.id, "Hello?"):
                    pass

        asyncio.run(scenario())
        # A worker with the wrong password ends with one line and exit 1.
        refused_worker = nexus(
            "worker",
            "--connect",
            server.url,
            "--credentials",
            str(wrong),
            "--serve",
            "model",
            data=tmp_path / "w",
        )
        assert refused_worker.returncode == 1
        lines = refused_worker.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("nexus: error:") and "refused" in lines[0].lower()
        # And no server at all: one line too.
        server.stop()
        gone = nexus("worker", "--connect", server.url, "--serve", "model", data=tmp_path / "w")
        assert gone.returncode == 1 and len(gone.stderr.strip().splitlines()) == 1
    finally:
        asyncio.run(core.aclose())
        server.stop()


def test_secrets_in_the_keyring_never_travel_on_the_bus(
    private_data_dir: Path,
    nats_server: NatsServer,  # noqa: F811
    workers: list[WorkerProcess],
    tmp_path: Path,
) -> None:
    remote_key, module_key = f"canary-remote-{uuid.uuid4().hex}", f"canary-module-{uuid.uuid4().hex}"
    core = AppCore()
    core.secrets.set(REMOTE_KEY_NAME, remote_key)
    core.secrets.set(credential_key("weather", "api_key"), module_key)
    wire: list[bytes] = []

    async def scenario() -> None:
        tap = await nats.connect(nats_server.url)

        async def record(message: nats.aio.msg.Msg) -> None:
            wire.append(message.subject.encode() + b" " + message.data)

        await tap.subscribe(">", cb=record)
        try:
            workers.append(start_worker(nats_server.url, "gpc2", tmp_path / "gpc2", "--serve", "model,tools"))
            core.settings = core.settings.model_copy(
                update={"source": "worker", "worker_url": nats_server.url, "max_tokens": 12}
            )
            character = core.store.list_characters()[0]
            assert character.id is not None
            chat, _ = await core.chat.open_chat(character.id)
            assert chat.id is not None
            saved = [
                e
                async for e in core.chat.send(chat.id, "What is the weather like?")
                if isinstance(e, ReplySaved)
            ]
            assert saved and saved[0].output.served_by == "gpc2"
            source = core.sources.current
            assert isinstance(source, WorkerSource)
            answer = await source.dendrite.dispatch_and_wait("tool.dice.roll", {"notation": "2d6"})
            assert answer.output["ok"] is True and answer.worker == "gpc2"
            await tap.flush()
        finally:
            await tap.close()
            await core.aclose()

    try:
        asyncio.run(scenario())
        everything = b"\n".join(wire)
        assert b'"kind":"token"' in everything and b"tool.dice.roll" in everything  # the tap saw it all
        assert remote_key.encode() not in everything and module_key.encode() not in everything
    finally:
        for name in (REMOTE_KEY_NAME, credential_key("weather", "api_key")):
            core.secrets.delete(name)


def test_a_worker_serves_only_the_tools_of_modules_approved_on_its_machine(
    nats_server: NatsServer,  # noqa: F811
    workers: list[WorkerProcess],
    tmp_path: Path,
) -> None:
    data = tmp_path / "gpc2"
    installed = nexus("modules", "install", str(EXAMPLE_MODULE), data=data)
    assert installed.returncode == 0 and "awaits approval" in installed.stdout
    worker = start_worker(nats_server.url, "gpc2", data, "--serve", "tools")
    workers.append(worker)
    assert "dice.roll" in worker.line and "quote-of-the-day" not in worker.line and "model" not in worker.line

    async def scenario() -> None:
        synapse = open_synapse(Connection(nats_server.url))
        async with Dendrite(synapse, name="app") as app:
            rolled = await app.dispatch_and_wait("tool.dice.roll", {"notation": "3d6"})
            assert rolled.output["ok"] is True and rolled.output["content"].strip()
            with pytest.raises(TaskError) as refused:
                await app.dispatch_and_wait("tool.quote-of-the-day.today", {})
            assert refused.value.code == "unknown_neuron"
            with pytest.raises(TaskError) as bad:  # arguments are checked against the tool's schema
                await app.dispatch_and_wait("tool.dice.roll", {"sides": 6})
            assert bad.value.code == "bad_input" and "notation" in str(bad.value)
        await synapse.close()
        # Tools only: a chat finds no worker, and says so.
        with pytest.raises(ModelError, match="no worker serves chat there"):
            await connect_worker_source(Connection(nats_server.url), find_seconds=0.2)

    asyncio.run(scenario())
