"""The modules facade: bundled modules come approved, everything else waits for a person, and a
module whose validation failed cannot be approved until it passes again."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from nexus_desktop.db.store import Store
from nexus_desktop.modules.errors import TransitionError
from nexus_desktop.modules.lifecycle import ModuleState
from nexus_desktop.modules.service import BUNDLED_REASON, REPO_PLUGINS_DIR, ModuleService
from nexus_desktop.secrets import SecretStore

T = TypeVar("T")
EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "quote-of-the-day"
HOOKS = "quote_of_the_day/hooks.py"


def example_copy(folder: Path) -> Path:
    target = folder / "quote-of-the-day"
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    return target


def with_service(
    tmp_path: Path,
    body: Callable[[ModuleService], Awaitable[T]],
    *,
    bundled: bool = False,
    secrets: SecretStore | None = None,
    **options: object,
) -> T:
    """Run ``body`` with a started ModuleService on a fresh database; ``options`` go to the service."""

    async def main() -> T:
        store = Store(tmp_path / "nexus.db")
        service = ModuleService(
            store.engine,
            secrets or SecretStore(f"nexus-test-{uuid.uuid4().hex[:8]}", timeout=5),
            bundled_dir=REPO_PLUGINS_DIR if bundled else tmp_path / "no-bundled",
            user_dir=tmp_path / "user",
            environ={},
            **options,  # type: ignore[arg-type]
        )
        await service.start()
        try:
            return await body(service)
        finally:
            await service.aclose()
            store.close()

    return asyncio.run(main())


def test_bundled_modules_are_approved_on_discovery_with_an_audit_entry(tmp_path: Path) -> None:
    async def body(service: ModuleService) -> None:
        views = {view.name: view for view in await service.list()}
        assert {"dice", "notes", "system-monitor", "weather"} <= set(views)
        assert all(views[name].state == ModuleState.ENABLED for name in ("dice", "weather"))
        assert views["weather"].credentials[0].name == "api_key"
        assert any(reason == BUNDLED_REASON for _, reason, _ in await service.history("dice"))

    with_service(tmp_path, body, bundled=True, start_modules=False)


def test_an_installed_module_waits_for_approval_then_its_tool_answers(tmp_path: Path) -> None:
    source = example_copy(tmp_path / "src")

    async def body(service: ModuleService) -> None:
        card = await service.install(source)
        assert (card.name, card.state, card.badge) == (
            "quote-of-the-day",
            "awaiting_approval",
            "Needs approval",
        )
        assert await service.call_tool("quote-of-the-day.today") == await service.call_tool(
            "quote-of-the-day.today"
        )  # not running: both are the same refusal
        report = await service.validate("quote-of-the-day")
        assert report["ok"], report
        request = await service.review("quote-of-the-day")
        card = await service.approve(request)
        assert card.state == ModuleState.ENABLED
        result = await service.call_tool("quote-of-the-day.today")
        assert result.ok and "(" in result.content, result

    with_service(tmp_path, body)


def test_a_module_that_fails_validation_cannot_be_approved_until_it_passes(tmp_path: Path) -> None:
    source = example_copy(tmp_path / "src")
    test_file = source / "tests" / "test_quotes.py"
    test_file.write_text(test_file.read_text() + "\n\ndef test_broken() -> None:\n    assert False\n")

    async def body(service: ModuleService) -> None:
        await service.install(source)
        report = await service.validate("quote-of-the-day")
        assert not report["ok"]
        view = await service.get("quote-of-the-day")
        assert view.state == ModuleState.FAILED and "validation failed" in view.card.reason
        request = await service.review("quote-of-the-day")
        with pytest.raises(TransitionError, match="failed validation"):
            await service.approve(request)

        # The author fixes it (a new version) and validates again: back to awaiting approval.
        installed = Path(view.card.path) / "tests" / "test_quotes.py"
        installed.write_text(installed.read_text().replace("assert False", "assert True"))
        await service.refresh()
        assert (await service.get("quote-of-the-day")).state == ModuleState.FAILED
        assert (await service.validate("quote-of-the-day"))["ok"]
        assert (await service.get("quote-of-the-day")).state == ModuleState.AWAITING_APPROVAL
        card = await service.approve(await service.review("quote-of-the-day"))
        assert card.state == ModuleState.ENABLED

    with_service(tmp_path, body)
