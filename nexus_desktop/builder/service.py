"""``BuildService`` (``core.builds``): "build me X" becomes a tested module awaiting approval.

One build: check the request (``request.refusal``), ask the task router which source writes code
(``core.task_router.choose("codegen")``), run the loop (``loop.BuildLoop``), and record the
outcome with the router so the measured success rate feeds its next decision.  Every step is
told to ``changes`` (on the event loop's thread) and stored, so the build card, the gallery and
``nexus modules build`` show the same thing.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol, TypeVar

from sqlalchemy import Engine

from nexus_desktop.builder.loop import MAX_REPAIR_ROUNDS, BuildLoop, BuildUpdate
from nexus_desktop.builder.request import module_name_for, refusal
from nexus_desktop.builder.store import BuildStore, BuildView, RoundView
from nexus_desktop.builder.template import template
from nexus_desktop.changes import Listeners
from nexus_desktop.llm.contract import ModelSource
from nexus_desktop.modules.service import ModuleService
from nexus_desktop.providers import RouteDecision
from nexus_desktop.training.examples import Signal

log = logging.getLogger(__name__)

T = TypeVar("T")
OnStep = Callable[[BuildUpdate], object]


class CodegenRouter(Protocol):
    """What the builder needs of ``providers.TaskRouter``."""

    async def choose(self, task: Any, *, prefer: str | None = None) -> RouteDecision: ...

    async def open(self, decision: RouteDecision) -> ModelSource: ...

    async def record_outcome(self, decision: RouteDecision, ok: bool, detail: str = "") -> None: ...


class BuildService:
    def __init__(
        self,
        engine: Engine,
        modules: ModuleService,
        router: Callable[[], CodegenRouter],
        *,
        staging_dir: Path,
        collect: Callable[[Signal], None] = lambda _signal: None,
        template_version: Callable[[], str | None] = lambda: None,
    ) -> None:
        """``router`` gives the task router (``core.task_router``); ``staging_dir`` keeps every
        round's files; ``collect`` takes a passing build as training data; ``template_version``
        picks the template new builds use (None: the current one)."""
        self.store = BuildStore(engine)
        self.modules = modules
        self._router = router
        self._template_version = template_version
        self.changes: Listeners[BuildUpdate] = Listeners()
        """Every step of every build, on the event loop's thread."""
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="builds")
        self._loop = BuildLoop(self.store, modules, staging_dir, self._emit, collect, self._run)
        self._tasks: dict[int, asyncio.Task[BuildView]] = {}
        self._step_hooks: dict[int, OnStep] = {}

    # Starting builds ----------------------------------------------------------------------

    async def start(self, description: str, *, source: str | None = None, chat_id: int | None = None) -> int:
        """Start a build in the background and return its id at once (a refused request is
        stored as ``refused`` and never reaches a model)."""
        build_id, name = await self._create(description, chat_id)
        if name:
            task = asyncio.create_task(self._build(build_id, description, name, source))
            self._tasks[build_id] = task
            task.add_done_callback(lambda _done: self._tasks.pop(build_id, None))
        return build_id

    async def build(
        self, description: str, *, source: str | None = None, on_step: OnStep | None = None
    ) -> BuildView:
        """Run a build to its end (the CLI, the benchmark); ``on_step`` hears each step."""
        build_id, name = await self._create(description, None, on_step)
        try:
            if name:
                return await self._build(build_id, description, name, source)
            return await self.get(build_id)
        finally:
            self._step_hooks.pop(build_id, None)

    async def wait(self, build_id: int) -> BuildView:
        """The build once it has finished (at once for one that already has)."""
        task = self._tasks.get(build_id)
        if task is not None:
            await asyncio.shield(task)
        return await self.get(build_id)

    # Reading ------------------------------------------------------------------------------

    async def get(self, build_id: int) -> BuildView:
        return await self._run(self.store.get, build_id)

    async def list(self) -> builtins.list[BuildView]:
        """Every build, newest first."""
        return await self._run(self.store.list)

    async def round_detail(self, build_id: int, round_no: int) -> RoundView:
        """One round whole: its prompt, the model's answer, the diff and the test report."""
        return await self._run(self.store.round, build_id, round_no)

    async def aclose(self) -> None:
        """Stop running builds (each is stored as failed, saying so) and the worker thread."""
        running = builtins.list(self._tasks.values())
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)  # each records its own end
        self._worker.shutdown(wait=True)

    # The build ----------------------------------------------------------------------------

    async def _create(
        self, description: str, chat_id: int | None, on_step: OnStep | None = None
    ) -> tuple[int, str]:
        """(build id, module name); the name is "" for a refused request."""
        version = template(self._template_version()).version
        why = refusal(description)
        if why is not None:
            build_id = await self._run(
                self.store.create, description, "refused", version, reason=why, chat_id=chat_id
            )
            if on_step is not None:
                self._step_hooks[build_id] = on_step
            self._emit(BuildUpdate(build_id, "result", "refused", why))
            return build_id, ""
        taken = await self._run(self._taken_names)
        name = module_name_for(description, taken)
        build_id = await self._run(
            self.store.create, description, "planning", version, module_name=name, chat_id=chat_id
        )
        if on_step is not None:
            self._step_hooks[build_id] = on_step
        return build_id, name

    async def _build(self, build_id: int, description: str, name: str, prefer: str | None) -> BuildView:
        router = self._router()
        decision: RouteDecision | None = None
        ok, detail = False, "the build stopped"
        try:
            try:
                decision = await router.choose("codegen", prefer=prefer)
            except (LookupError, ValueError) as error:
                await self._end(build_id, "failed", f"No source can write the code: {error}")
                return await self.get(build_id)
            await self._run(
                self.store.update,
                build_id,
                source_name=decision.source_name,
                decision_id=decision.decision_id,
            )
            warning = f" {decision.warning}" if decision.warning else ""
            self._emit(
                BuildUpdate(
                    build_id, "route", "planning", f"{decision.source_name}: {decision.reason}{warning}"
                )
            )
            source = await router.open(decision)
            try:
                version = (await self.get(build_id)).template_version
                ok, last_error = await self._loop.run(build_id, description, name, source, template(version))
            finally:
                await source.aclose()
            if ok:
                detail = "its tests passed"
                await self._end(
                    build_id, "awaiting_approval", f"{name} passed its tests; it awaits your approval."
                )
            else:
                detail = last_error.splitlines()[0] if last_error else "its tests never passed"
                rounds = 1 + MAX_REPAIR_ROUNDS
                await self._end(build_id, "failed", f"Its tests never passed in {rounds} rounds: {detail}")
        except asyncio.CancelledError:
            await asyncio.shield(
                self._end(build_id, "failed", "The build stopped: the app closed. Start it again.")
            )
            raise
        except Exception as failure:  # a source that would not start, a disk that filled up...
            log.exception("Build %s failed", build_id)
            detail = str(failure) or type(failure).__name__
            await self._end(build_id, "failed", f"The build failed: {detail}")
        finally:
            if decision is not None:
                try:
                    await router.record_outcome(decision, ok, detail)
                except Exception:
                    log.exception("Could not record the outcome of build %s", build_id)
        return await self.get(build_id)

    async def _end(self, build_id: int, status: str, reason: str) -> None:
        await self._run(self.store.update, build_id, status=status, reason=reason)
        self._emit(BuildUpdate(build_id, "result", status, reason))

    def _taken_names(self) -> set[str]:
        installed = {row.name for row in self.modules.host.lifecycle.records()}
        return installed | self.store.running_names()

    def _emit(self, update: BuildUpdate) -> None:
        hook = self._step_hooks.get(update.build_id)
        if hook is not None:
            try:
                hook(update)
            except Exception:
                log.exception("A build step listener failed")
        self.changes.emit(update)

    async def _run(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(
            self._worker, lambda: function(*args, **kwargs)
        )
