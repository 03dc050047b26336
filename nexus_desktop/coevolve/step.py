"""One co-evolution step, the ``module-coevolution`` scheduled task, and the current template.

A step: classify the recorded failed builds (``classify``), aim at the category that failed
most (or, with no failures yet, the one tried least), propose that many harder requests
(``curriculum``), then build each twice in the sandbox, once with the current template and once
with a candidate that adds advice for that category.  The candidate is kept as the new current
version only when it passed more of them; either way its trial is stored.  Trial modules are
uninstalled afterwards (their build records stay): they were never asked for by the user.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from nexus_desktop.builder import template as templates
from nexus_desktop.builder.service import BuildService
from nexus_desktop.coevolve import curriculum, versions
from nexus_desktop.coevolve.classify import CATEGORIES, Category, classify
from nexus_desktop.coevolve.tables import ModuleTemplate
from nexus_desktop.control.runners import TaskSkipped
from nexus_desktop.modules.errors import ModuleError
from nexus_desktop.modules.service import ModuleService
from nexus_desktop.providers import TaskRouter
from nexus_desktop.settings import Settings

log = logging.getLogger(__name__)

REQUESTS_PER_STEP = 2
OFF_REASON = (
    "module co-evolution is off; turn it on in Settings → App to let NEXUS improve its module builder"
)


@dataclass(frozen=True)
class StepResult:
    category: Category
    parent: str
    version: str
    parent_ok: int
    candidate_ok: int
    trials: int
    kept: bool

    def line(self) -> str:
        verdict = "kept as the current template" if self.kept else f"not kept; v{self.parent} stays"
        return (
            f"Template v{self.version} (advice on {self.category.replace('_', ' ')}): "
            f"{self.candidate_ok}/{self.trials} harder requests passed against v{self.parent}'s "
            f"{self.parent_ok}/{self.trials}, {verdict}."
        )


class Coevolution:
    def __init__(
        self,
        engine: Engine,
        get_settings: Callable[[], Settings],
        modules: ModuleService,
        router: Callable[[], TaskRouter],
        *,
        staging_dir: Path,
        requests_per_step: int = REQUESTS_PER_STEP,
    ) -> None:
        self.engine = engine
        self._settings = get_settings
        self._modules = modules
        self._router = router
        self._staging_dir = staging_dir
        self._per_step = requests_per_step
        self._rows: list[ModuleTemplate] | None = None
        self._trial_version = templates.CURRENT_TEMPLATE

    # The current template ------------------------------------------------------------------

    async def load(self) -> None:
        """Read the stored versions (and register them with the builder) off the event loop."""
        self._rows = await asyncio.to_thread(versions.load, self.engine)

    def current_version(self) -> str:
        """The template new builds use (``BuildService(template_version=...)``).  The app loads
        the versions when its scheduler starts; a command that did not gets them read here once."""
        if self._rows is None:
            self._rows = versions.load(self.engine)
        return versions.current(self._rows)

    async def rates(self) -> list[versions.VersionRate]:
        return await asyncio.to_thread(versions.rates, self.engine)

    # The scheduled task --------------------------------------------------------------------

    async def run_task(self, timeout: float) -> str:
        """The ``module-coevolution`` task: skipped, with the reason, when the setting is off or
        only the default model can write code; else one step, described in one line."""
        if not self._settings().module_coevolution:
            raise TaskSkipped(OFF_REASON)
        decision = await self._router().preview("codegen")
        if decision.kind == "default":
            raise TaskSkipped(
                f"only the default model can write code ({decision.source_name}); it rarely passes, so "
                "comparing templates on it measures nothing. Add a remote provider or a larger local model"
            )
        return (await asyncio.wait_for(self.step(), timeout)).line()

    async def step(self) -> StepResult:
        await self.load()
        rows = self._rows or []
        failures = await asyncio.to_thread(versions.failed_builds, self.engine)
        category = self._aim(failures, rows)
        tried = Counter({category: sum(row.trials for row in rows if row.category == category)})
        proposals = curriculum.propose(category, tried, self._per_step)
        parent = templates.template(versions.current(rows))
        candidate = versions.candidate_from(parent, versions.next_version(rows), curriculum.HINTS[category])
        templates.register_template(candidate)
        builds = BuildService(
            self.engine,
            self._modules,
            self._router,
            staging_dir=self._staging_dir,
            template_version=lambda: self._trial_version,
        )
        parent_ok = candidate_ok = 0
        try:
            for proposal in proposals:
                parent_ok += await self._attempt(builds, parent.version, proposal.description)
                candidate_ok += await self._attempt(builds, candidate.version, proposal.description)
        finally:
            await builds.aclose()
        kept = candidate_ok > parent_ok
        result = StepResult(
            category, parent.version, candidate.version, parent_ok, candidate_ok, len(proposals), kept
        )
        row = ModuleTemplate(
            version=candidate.version,
            parent=parent.version,
            category=category,
            hint=curriculum.HINTS[category],
            plan_system=candidate.plan_system,
            generate_system=candidate.generate_system,
            skeleton=candidate.skeleton,
            rules=candidate.rules,
            kept=kept,
            parent_ok=parent_ok,
            candidate_ok=candidate_ok,
            trials=len(proposals),
            reason=result.line(),
        )
        await asyncio.to_thread(versions.save, self.engine, row)
        await self.load()
        log.info("Co-evolution: %s", result.line())
        return result

    def _aim(self, failures: list[tuple[str, str]], rows: list[ModuleTemplate]) -> Category:
        """The category failed builds fell into most; with none, the one tried least."""
        found: Counter[Category] = Counter()
        for description, error in failures:
            category = classify(error, description)
            if category is not None:
                found[category] += 1
        if found:
            return curriculum.weakest(found)[0]
        tried = Counter(row.category for row in rows)
        return min(CATEGORIES, key=lambda category: tried[category])

    async def _attempt(self, builds: BuildService, version: str, description: str) -> int:
        """Build ``description`` with template ``version``: 1 when it passed its tests, else 0."""
        self._trial_version = version
        view = await builds.build(description)
        if view.module_name:
            try:
                await self._modules.uninstall(view.module_name)
            except ModuleError:
                pass  # a round that never installed
        return int(view.status == versions.PASSED)
