"""Co-evolution of the module builder: a step builds harder requests aimed at the recorded
failures with the current template and with a candidate, and keeps the candidate only when it
passes more of them; rates per version survive a restart; with the setting off the task skips
and says why.  Builds are real (replay server on loopback as the code source, the real task
router, modules service and sandboxed validation, a real SQLite file)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from nexus_desktop.builder import template as templates
from nexus_desktop.builder.request import module_name_for
from nexus_desktop.builder.service import BuildService
from nexus_desktop.builder.store import BuildStore
from nexus_desktop.coevolve import curriculum, versions
from nexus_desktop.coevolve.step import OFF_REASON, Coevolution
from nexus_desktop.coevolve.tables import ModuleTemplate
from nexus_desktop.control.runners import TaskSkipped
from nexus_desktop.db.engine import open_engine
from nexus_desktop.db.store import Store
from nexus_desktop.modules.service import ModuleService
from nexus_desktop.settings import Settings
from tests.replay_server import (
    ReplayServer,
    failing_dice_module,
    good_dice_module,
    replay_sources,
)

T = TypeVar("T")
RATE_LIMITED = curriculum.REQUESTS["rate_limits"][0]
HINT = curriculum.HINTS["rate_limits"]
Body = Callable[[Coevolution, ReplayServer, ModuleService], Awaitable[T]]


def with_coevolution(tmp_path: Path, body: Body[T], *, on: bool = True) -> T:
    """Run ``body`` with co-evolution over a real database, modules service and task router whose
    code source is the replay server; one earlier build failed on a rate limit (HTTP 429)."""

    async def main() -> T:
        async with replay_sources(tmp_path, module_coevolution=on) as sources:
            BuildStore(sources.store.engine).create(
                "A tool that reads my feed",
                "failed",
                templates.CURRENT_TEMPLATE,
                reason="Its tests never passed in 4 rounds: HTTPError: HTTP Error 429: Too Many Requests",
            )
            coevolution = Coevolution(
                sources.store.engine,
                lambda: sources.settings,
                sources.modules,
                lambda: sources.router,
                staging_dir=tmp_path / "builds",
                requests_per_step=1,
            )
            return await body(coevolution, sources.server, sources.modules)

    return asyncio.run(main())


def trial_name() -> str:
    """The module name both trial builds get: the current template's build is uninstalled (with
    its module) before the candidate's starts, so the name is free again."""
    return module_name_for(RATE_LIMITED)


def test_a_candidate_that_passes_more_is_kept_and_new_builds_use_it(tmp_path: Path) -> None:
    name = trial_name()

    async def body(coevolution: Coevolution, server: ReplayServer, modules: ModuleService) -> ModuleTemplate:
        # The current template's prompt gets code that fails its tests; the candidate's prompt
        # carries the rate-limit advice, and with it the model writes a passing module.
        server.script(RATE_LIMITED[:60], [failing_dice_module(name)])
        server.script(HINT, [good_dice_module(name)])
        result = await coevolution.run_task(600)
        assert "kept as the current template" in result
        # Trial modules were never asked for by the user: none is left in the gallery.
        assert [view.name for view in await modules.list()] == []
        [row] = await asyncio.to_thread(versions.load, coevolution.engine)
        return row

    result = with_coevolution(tmp_path, body)
    # Aimed at what failed before (the 429), and decided by the trial.
    assert (result.category, result.parent, result.parent_ok, result.candidate_ok, result.kept) == (
        "rate_limits",
        templates.CURRENT_TEMPLATE,
        0,
        1,
        True,
    )

    # After a restart: the version is current, and its rate and the parent's are stored.
    engine = open_engine(tmp_path / "nexus.db")
    try:
        rates = {rate.version: (rate.ok, rate.total, rate.kept) for rate in versions.rates(engine)}
        assert rates[templates.CURRENT_TEMPLATE] == (0, 2, True)  # the earlier failure and the trial
        assert rates[result.version] == (1, 1, True)
        assert versions.current(versions.load(engine)) == result.version
        assert f"new builds use v{result.version}" in versions.summary(engine)
    finally:
        engine.dispose()

    # The app's builder uses it: the next build's prompt carries the kept advice.
    async def next_build() -> None:
        async with replay_sources(tmp_path) as sources:
            engine, modules, server = sources.store.engine, sources.modules, sources.server
            coevolution = Coevolution(
                engine, lambda: sources.settings, modules, lambda: sources.router, staging_dir=tmp_path / "b"
            )
            builds = BuildService(
                engine,
                modules,
                lambda: sources.router,
                staging_dir=tmp_path / "b",
                template_version=coevolution.current_version,
            )
            request = "A tool that rolls dice like 2d6"
            server.script("rolls dice", [good_dice_module(module_name_for(request))])
            view = await builds.build(request)
            await builds.aclose()
            assert (view.status, view.template_version) == ("awaiting_approval", result.version)
            [files_request] = server.file_requests()
            assert HINT in files_request["messages"][0]["content"]

    asyncio.run(next_build())


def test_a_candidate_that_passes_fewer_is_not_kept(tmp_path: Path) -> None:
    name = trial_name()

    async def body(coevolution: Coevolution, server: ReplayServer, modules: ModuleService) -> str:
        server.script(RATE_LIMITED[:60], [good_dice_module(name)])
        server.script(HINT, [failing_dice_module(name)])
        line = await coevolution.run_task(600)
        assert coevolution.current_version() == templates.CURRENT_TEMPLATE
        return line

    line = with_coevolution(tmp_path, body)
    assert f"0/1 harder requests passed against v{templates.CURRENT_TEMPLATE}'s 1/1" in line
    assert "not kept" in line
    engine = open_engine(tmp_path / "nexus.db")
    try:
        [row] = versions.load(engine)
        assert (row.kept, row.parent_ok, row.candidate_ok) == (False, 1, 0)
        rates = {rate.version: (rate.ok, rate.total, rate.kept) for rate in versions.rates(engine)}
        assert rates[row.version] == (0, 1, False)
        assert versions.current(versions.load(engine)) == templates.CURRENT_TEMPLATE
    finally:
        engine.dispose()


def test_with_the_setting_off_the_task_skips_with_its_reason_and_builds_nothing(tmp_path: Path) -> None:
    async def body(coevolution: Coevolution, server: ReplayServer, modules: ModuleService) -> None:
        try:
            await coevolution.run_task(600)
        except TaskSkipped as skipped:
            assert str(skipped) == OFF_REASON
        else:
            raise AssertionError("the task ran with the setting off")
        assert server.requests == []

    with_coevolution(tmp_path, body, on=False)


def nexus(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NEXUS_DATA_DIR": str(data_dir)}
    command = [sys.executable, "-m", "nexus_desktop.cli", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)


def test_the_scheduled_task_skips_when_off_and_says_why_and_is_counted(tmp_path: Path) -> None:
    ran = nexus("scheduler", "run", "module-coevolution", data_dir=tmp_path)
    assert ran.returncode == 1
    assert ran.stderr.strip().endswith(OFF_REASON)
    status = nexus("scheduler", "status", data_dir=tmp_path)
    row = next(line for line in status.stdout.splitlines() if line.startswith("module-coevolution"))
    assert row.split()[-2:] == ["skipped", "1/0/0/1"]
    assert "Module templates: v1 no builds yet; new builds use v1." in status.stdout

    # Positive control: with the setting on it gets past that, to the next reason (only the
    # bundled default model can write code here), which needs the setting read as on.
    store = Store(tmp_path / "nexus.db")
    store.save_settings(Settings(module_coevolution=True))
    store.close()
    ran = nexus("scheduler", "run", "module-coevolution", data_dir=tmp_path)
    assert ran.returncode == 1
    assert "only the default model can write code" in ran.stderr and OFF_REASON not in ran.stderr
