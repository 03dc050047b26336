"""Module code for the runtime tests: a well-behaved module and a corpus of hostile ones.

Each hostile module offers one tool, ``<prefix>.run``, whose body misbehaves; the harness
installs them as developer modules, approves them and starts them under a real supervisor.
"""

from __future__ import annotations

import asyncio
import gc
import textwrap
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nexus_desktop.db.store import Store
from nexus_desktop.modules.registry import ModuleHost
from nexus_desktop.modules.runtime.supervisor import ModuleSupervisor, credential_key
from nexus_desktop.secrets import SecretStore
from tests.hostile.modules import write_module

GOOD_NAME = "good-helper"
GOOD_SOURCE = '''"""A well-behaved module: tools, a message filter and a command."""

from nexus_desktop.modules.hookspecs import hookimpl
from nexus_desktop.modules.specs import ToolSpec

OBJECT = {"type": "object", "properties": {}}
credentials = {}


def echo(text=""):
    return text


def secret_length():
    return str(len(credentials.get("api_key") or ""))


class Plugin:
    @hookimpl
    def startup(self, app_info):
        credentials.update(app_info.get("credentials", {}))

    @hookimpl
    def register_tools(self, register):
        register(ToolSpec("good.echo", "Say it back.", OBJECT, echo))
        register(ToolSpec("good.secret_length", "Length of my key.", OBJECT, secret_length))

    @hookimpl
    def message_will_send(self, message, context):
        return message + " (checked)"

    @hookimpl
    def message_will_be_answered(self, message, context):
        return "pong" if message == "/ping" else None


plugin = Plugin()
'''
GOOD_FIELDS: dict[str, Any] = {
    "hooks": ["startup", "register_tools", "message_will_send", "message_will_be_answered"],
    "credentials": [{"name": "api_key", "instructions": "Paste the test key."}],
}


def tool_module(prefix: str, body: str, *, hooks: str = "") -> str:
    """Source of a module whose one tool ``<prefix>.run`` runs ``body``; ``hooks`` adds methods."""
    return f'''
from nexus_desktop.modules.hookspecs import hookimpl
from nexus_desktop.modules.specs import ToolSpec


def run(**arguments):
{textwrap.indent(textwrap.dedent(body).strip(), "    ")}


class Plugin:
    @hookimpl
    def register_tools(self, register):
        register(ToolSpec("{prefix}.run", "Misbehave.", {{"type": "object", "properties": {{}}}}, run))
{textwrap.indent(textwrap.dedent(hooks).strip(), "    ")}


plugin = Plugin()
'''


@dataclass
class Heartbeat:
    """An asyncio task ticking every 5 ms; ``max_gap`` is the longest the event loop stalled."""

    max_gap: float = 0.0
    _task: asyncio.Task[None] | None = field(default=None, repr=False)

    async def _tick(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.005)
            now = time.monotonic()
            self.max_gap = max(self.max_gap, now - last)
            last = now

    async def __aenter__(self) -> Heartbeat:
        # The test process's heap (everything earlier tests left) is not the app's: frozen, a full
        # collection no longer walks it, which on a loaded CI machine took over 250 ms by itself.
        gc.collect()
        gc.freeze()
        self._task = asyncio.create_task(self._tick())
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        gc.unfreeze()


async def keep_calling(supervisor: ModuleSupervisor, until: asyncio.Future[Any]) -> list[bool]:
    """Call the good module's echo tool until ``until`` is done; the ok flag of each call."""
    answers = []
    while not until.done():
        result = await supervisor.call_tool("good.echo", {"text": "still here"})
        answers.append(result.ok and result.content == "still here")
        await asyncio.sleep(0.02)
    return answers


def install_modules(developer_dir: Path, modules: dict[str, tuple[str, dict[str, Any]]]) -> None:
    """``modules`` maps a module name to (source, manifest fields)."""
    for name, (source, fields) in modules.items():
        write_module(developer_dir / name, name, code=source, **fields)


def developer_host(
    store: Store, tmp_path: Path, modules: dict[str, tuple[str, dict[str, Any]]]
) -> ModuleHost:
    """A host that sees only ``modules`` (see ``install_modules``), as developer modules in
    ``tmp_path/dev``: no built-ins, no bundled or installed ones, no allowlist from the environment."""
    install_modules(tmp_path / "dev", modules)
    host = ModuleHost(
        store.engine,
        bundled_dir=tmp_path / "none",
        user_dir=tmp_path / "user",
        developer_dir=tmp_path / "dev",
        builtins=False,
        environ={},
    )
    host.refresh()
    return host


def approve_all(host: ModuleHost) -> None:
    host.refresh()
    for card in host.list_modules():
        host.approve(host.review(card.name))


def make_supervisor(host: ModuleHost, secrets: SecretStore, **options: Any) -> ModuleSupervisor:
    settings = {"call_timeout": 2.0, "memory_limit_mb": 256, "rate_per_minute": 6000, **options}
    return ModuleSupervisor(host, secrets, **settings)


def module_secrets(module: str, api_key: str) -> SecretStore:
    """A secret store of the test's own holding ``api_key`` as ``module``'s ``api_key`` credential,
    for this session only (nothing reaches the OS keyring)."""
    secrets = SecretStore(f"nexus-test-{uuid.uuid4().hex[:8]}", timeout=5)
    secrets.set(credential_key(module, "api_key"), api_key, session_only=True)
    return secrets
