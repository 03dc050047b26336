"""Hot reload: in developer mode an edit is live at once; elsewhere an edit needs a fresh approval."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from nexus_desktop.db.store import Store
from nexus_desktop.modules.lifecycle import ModuleState
from nexus_desktop.modules.service import ModuleService
from nexus_desktop.modules.watch import ModuleWatcher
from nexus_desktop.secrets import SecretStore

T = TypeVar("T")
NAME = "version-probe"
MANIFEST = f"""name = "{NAME}"
version = "1.0.0"
display_name = "Version probe"
entry_point = "version_probe.hooks:plugin"
hooks = ["register_tools"]
"""
SOURCE = """from nexus_desktop.modules.hookspecs import hookimpl
from nexus_desktop.modules.specs import ToolSpec

VERSION = "{version}"


class Plugin:
    @hookimpl
    def register_tools(self, register):
        register(ToolSpec("version-probe.version", "My version.", {{"type": "object", "properties": {{}}}},
                          lambda: VERSION))


plugin = Plugin()
"""
WAIT_SECONDS = 60.0  # generous: the machine is shared; the assertion is on the answer, not the time


def write_probe(root: Path, version: str = "1") -> Path:
    folder = root / NAME
    (folder / "version_probe").mkdir(parents=True, exist_ok=True)
    (folder / "nexus-module.toml").write_text(MANIFEST)
    (folder / "version_probe" / "__init__.py").write_text("")
    (folder / "version_probe" / "hooks.py").write_text(SOURCE.format(version=version))
    return folder


async def eventually(check: Callable[[], Awaitable[bool]]) -> bool:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.05)
    return False


def watched(watcher: ModuleWatcher) -> Callable[[], Awaitable[bool]]:
    """The watcher follows the module's folder (it starts following once the module is enabled)."""

    async def check() -> bool:
        return NAME in watcher.watched()

    return check


def with_watcher(
    tmp_path: Path, body: Callable[[ModuleService, ModuleWatcher], Awaitable[T]], **options: object
) -> T:
    async def main() -> T:
        store = Store(tmp_path / "nexus.db")
        service = ModuleService(
            store.engine,
            SecretStore(f"nexus-test-{uuid.uuid4().hex[:8]}", timeout=5),
            bundled_dir=tmp_path / "no-bundled",
            user_dir=tmp_path / "user",
            environ={},
            **options,  # type: ignore[arg-type]
        )
        await service.start()
        watcher = ModuleWatcher(service)
        await watcher.start()
        try:
            return await body(service, watcher)
        finally:
            await watcher.aclose()
            await service.aclose()
            store.close()

    return asyncio.run(main())


def test_in_developer_mode_an_edited_module_answers_with_its_new_code(tmp_path: Path) -> None:
    dev = tmp_path / "dev"
    folder = write_probe(dev, "1")

    async def body(service: ModuleService, watcher: ModuleWatcher) -> None:
        await service.approve(await service.review(NAME))
        assert (await service.call_tool("version-probe.version")).content == "1"
        assert await eventually(watched(watcher))
        (folder / "version_probe" / "hooks.py").write_text(SOURCE.format(version="2"))

        async def new_answer() -> bool:
            return (await service.call_tool("version-probe.version")).content == "2"

        assert await eventually(new_answer)
        assert (await service.get(NAME)).state == ModuleState.ENABLED

    with_watcher(tmp_path, body, developer_dir=dev, developer_mode=True)


def test_an_edited_module_outside_developer_mode_waits_for_approval_again(tmp_path: Path) -> None:
    source = write_probe(tmp_path / "src", "1")

    async def body(service: ModuleService, watcher: ModuleWatcher) -> None:
        card = await service.install(source)
        await service.approve(await service.review(NAME))
        assert (await service.call_tool("version-probe.version")).content == "1"
        assert await eventually(watched(watcher))
        (Path(card.path) / "version_probe" / "hooks.py").write_text(SOURCE.format(version="evil"))

        async def awaiting() -> bool:
            return (await service.get(NAME)).state == ModuleState.AWAITING_APPROVAL

        assert await eventually(awaiting)
        result = await service.call_tool("version-probe.version")
        assert not result.ok  # the changed code never ran

    with_watcher(tmp_path, body)
