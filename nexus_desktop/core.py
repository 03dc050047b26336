"""The Qt-free application core, shared by the window, the CLI and the tests.

It opens the database, seeds the default characters on first run, and wires the chat service
to the active model source.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from nexus_desktop import paths
from nexus_desktop.builder.service import BuildService
from nexus_desktop.cards.io import card_to_record
from nexus_desktop.cards.model import CharacterCard
from nexus_desktop.cards.service import CharacterService
from nexus_desktop.changes import Change, Changes
from nexus_desktop.chat.groups import GroupService
from nexus_desktop.chat.history import ChatHistory
from nexus_desktop.chat.personas import PersonaService
from nexus_desktop.chat.routing import IntentRouter
from nexus_desktop.chat.service import ChatService
from nexus_desktop.chat.sources import SourceManager
from nexus_desktop.chat.tools import CombinedTools, InProcessTools
from nexus_desktop.coevolve.step import Coevolution
from nexus_desktop.control.app_tasks import AppTasks
from nexus_desktop.control.governor import Governor
from nexus_desktop.control.loop import Loop
from nexus_desktop.control.metrics import MetricsRecorder
from nexus_desktop.control.report import reports_dir
from nexus_desktop.control.scheduler import Scheduler
from nexus_desktop.db.store import AsyncStore, Store
from nexus_desktop.db.watch import DatabaseWatcher
from nexus_desktop.engram.chat_memory import ChatMemory
from nexus_desktop.engram.embedder import Embedder
from nexus_desktop.engram.service import Engram
from nexus_desktop.gaming.controller import GameMode
from nexus_desktop.gaming.keep_alive import KeepAlive
from nexus_desktop.gaming.probes import default_probes
from nexus_desktop.llm.catalog import default_model_path
from nexus_desktop.modules.characters import ModuleCharacters
from nexus_desktop.modules.registry import make_plugin_manager
from nexus_desktop.modules.service import ModuleService
from nexus_desktop.providers import TaskRouter
from nexus_desktop.secrets import SecretStore
from nexus_desktop.settings import Settings
from nexus_desktop.training import pipeline
from nexus_desktop.training.collector import Collector
from nexus_desktop.training.in_use import active_router, lexical_router, persona_adapter
from nexus_desktop.training.service import TrainingService

if TYPE_CHECKING:
    from nexus_desktop.control.prometheus import PrometheusSwitch
    from nexus_desktop.control.tables import TaskRun
    from nexus_desktop.gateway.switch import GatewaySwitch
    from nexus_desktop.modules.runtime.supervisor import ModuleSupervisor
    from nexus_desktop.modules.watch import ModuleWatcher

log = logging.getLogger(__name__)


class AppCore:
    def __init__(self, database: Path | None = None) -> None:
        self.store = Store(database or paths.database_path())
        self.db = AsyncStore(self.store)
        # Writers emit here after a write; views subscribe and refresh (nexus_desktop/changes.py).
        self.changes = Changes()
        self.characters = CharacterService(self.db, self.changes)
        # Writes by other processes (the CLI) become Change events too, once the window starts it.
        self.db_watcher = DatabaseWatcher(self.db, self.changes)
        # Who the user is in each chat: the name for {{user}}, the description for the prompt.
        self.personas = PersonaService(self.db, self.changes)
        # Every chat: list, rename, delete, branch, search, SillyTavern files in and out.
        self.history = ChatHistory(self.db, self.changes)
        # Group chats: several characters in one chat, their members and turn order.
        self.groups = GroupService(self.db, self.changes)
        self.secrets = SecretStore()
        self.settings: Settings = self.store.load_settings()
        self.sources = SourceManager(
            lambda: self.settings,
            self.secrets.get,
            lambda character, model: persona_adapter(self.store.engine, character, model),
        )
        # Every reply, rating, edit, swipe choice and tool call becomes training data (issue: the loop).
        self.collector = Collector(self.store.path)
        # Every model call (chat, tool choice, routing, gate benchmark) becomes a model_call row;
        # ``metrics.record`` never blocks, so every caller can be handed it.
        self.metrics = MetricsRecorder(self.store.engine)
        self.prometheus: PrometheusSwitch | None = None
        self.gateway: GatewaySwitch | None = None
        """The OpenAI-compatible server for other apps, once ``serve_gateway`` ran (off by default)."""
        developer_dir = self.settings.modules_developer_dir
        self.modules = ModuleService(
            self.store.engine,
            self.secrets,
            developer_dir=Path(developer_dir).expanduser() if developer_dir else None,
            developer_mode=self.settings.modules_developer_mode,
        )
        self._modules_started = False
        # Characters modules register join the character list (with the module as their origin).
        self.module_characters = ModuleCharacters(self.db, self.modules.supervisor.characters)
        self.modules.listeners.append(self.module_characters.changed)
        self.training = TrainingService(
            self.store.engine,
            trainer_python=lambda: self.settings.trainer_python,
            judge=partial(pipeline.judge, record_call=self.metrics.record),
        )
        self._watcher: ModuleWatcher | None = None
        # The loop runs by itself: the built-in tasks (training check, eval sweep, impact
        # assessment, the daily cycle) and the modules' own tasks, from ``start_scheduler``.
        self.scheduler = Scheduler(self.store.engine)
        self.loop = Loop(
            self.store.engine,
            self.training,
            reports_dir=reports_dir(self.store.path.parent),
            record_call=self.metrics.record,
        )
        # Co-evolution of the module builder (off unless Settings say so): its nightly task tries
        # a candidate template on harder requests and keeps it when it passes more of them.
        self.coevolution = Coevolution(
            self.store.engine,
            lambda: self.settings,
            self.modules,
            lambda: self.task_router,
            staging_dir=self.store.path.parent / "module-builds",
        )
        self.tasks = AppTasks(
            self.scheduler, self.loop, self.modules.supervisor, coevolution=self.coevolution.run_task
        )
        self._scheduler_started = False
        # Which source each kind of work runs on (chat, routing, code generation, judging), with
        # every decision and its outcome recorded: the builder, the tool choice and the router ask it.
        self.task_router = TaskRouter(
            self.store.engine,
            lambda: self.settings,
            self.secrets.get,
            game_action=lambda: self.sources.game_action,
        )
        # "Build me X": a module written by the routed code source and tested in the sandbox; each
        # round's files stay in module-builds/ for inspection (issue 14).
        self.builds = BuildService(
            self.store.engine,
            self.modules,
            lambda: self.task_router,
            staging_dir=self.store.path.parent / "module-builds",
            collect=self.collector.collect,
            template_version=self.coevolution.current_version,
        )
        self.router = IntentRouter(
            lambda: active_router(self.store.engine),
            lexical=lambda: lexical_router(self.store.engine),
            record_call=self.metrics.record,
            task_router=self.task_router,
            model_may_route=lambda: self.settings.tools_by_model,
        )
        # Character policies: budgets, tool cooldowns and prerequisites, enforced on every reply.
        self.governor = Governor(self.store.engine)
        # The app's own features come through the same hooks as modules (modules/builtin.py).
        self.builtin_tools = InProcessTools(builtins=True)
        # Engram: characters remember across chats, by meaning (embeddings from the bundled model,
        # made in a child process started on first use).
        self.engram = Engram(self.db, self.changes, Embedder(default_model_path()))
        self.chat = ChatService(
            self.db,
            self.sources.get,
            lambda: self.settings,
            get_tools=self._tools,
            collect=self.collector.collect,
            route=self.router.route,
            governor=self.governor,
            # The modules' chat hooks (message_will_send, ..._will_be_answered, reply_did_finish).
            get_interceptors=self.running_modules,
            record_call=self.metrics.record,
            on_model_crash=self.sources.report_crash,
            changes=self.changes,
            # "build me …" (the router's build_module, or /build …) goes to the builder instead.
            start_build=lambda text, chat_id: self.builds.start(text, chat_id=chat_id),
            task_router=self.task_router,
            memory=ChatMemory(self.engram),
        )
        # Game mode gives the GPU to a game; keep-alive unloads a model left unused.  Both start
        # with the window (``start_game_mode``), not with a CLI command.
        self.game_mode = GameMode(
            default_probes(lambda: self.settings),
            lambda: self.settings,
            self.sources,
            busy=self._replying,
            pausers=[self.scheduler, self.training],
            read_saved_switch=lambda: self.store.load_settings().game_mode_manual,
            adopt_switch=self._adopt_game_switch,
        )
        self.keep_alive = KeepAlive(self.sources, lambda: self.settings, busy=self._replying)
        self.seed_default_characters()

    def _replying(self) -> bool:
        """A reply is being written: in a chat, or for another app through the gateway."""
        return self.chat.generating or (self.gateway is not None and self.gateway.busy)

    def start_game_mode(self) -> None:
        """Watch for games and unload an unused model from now on (the window calls this)."""
        self.game_mode.start()
        self.keep_alive.start()

    async def set_game_mode_switch(self, on: bool) -> None:
        """The tray switch: save it (``nexus game-mode status`` and a restart see it) and act now."""
        await self.update_settings(self.settings.model_copy(update={"game_mode_manual": on}))

    async def _adopt_game_switch(self, on: bool) -> None:
        """Another process (``nexus game-mode on``) saved the switch: this app's settings follow."""
        if self.settings.game_mode_manual == on:
            return
        self.settings = self.settings.model_copy(update={"game_mode_manual": on})
        self.changes.emit(Change("settings"))

    def running_modules(self) -> ModuleSupervisor | None:
        """The module supervisor once the modules have started (their tools, hooks and panels)."""
        return self.modules.supervisor if self._modules_started else None

    def _tools(self) -> CombinedTools:
        """The tools a reply may call: the app's built-ins, then the running modules' tools, then
        those the remote workers serve when replies come from them (bus/remote_tools.py)."""
        remote_tools = getattr(self.sources.current, "remote_tools", None)
        return CombinedTools(
            self.builtin_tools, self.running_modules(), remote_tools() if remote_tools else None
        )

    def seed_default_characters(self) -> None:
        """On first run, add the bundled characters so there is someone to talk to.

        They come from the built-in plugin's ``register_characters`` hook, as a module's would."""
        if self.store.list_characters():
            return  # the usual start: skip reading the bundled cards
        found: list[tuple[CharacterCard, bytes | None]] = []

        def register(card: CharacterCard, avatar: bytes | None = None) -> None:
            found.append((card, avatar))

        make_plugin_manager(builtins=True).hook.register_characters.call_historic(
            kwargs={"register": register}
        )
        records = [(*card_to_record(card), avatar) for card, avatar in found]
        # One transaction for all of them: a first run killed part-way must leave none, not some.
        if self.store.seed_characters(records):
            log.info("Added the default characters")

    async def start_modules(self, *, watch: bool = True) -> None:
        """Start every enabled module in its own process, and reload them on save if asked."""
        if self._modules_started:
            return
        await self.modules.start()
        self._modules_started = True
        if watch:
            from nexus_desktop.modules.watch import ModuleWatcher

            self._watcher = ModuleWatcher(self.modules)
            await self._watcher.start()

    async def start_scheduler(self) -> None:
        """Run the loop's built-in tasks and the modules' tasks on their cadences; module tasks
        follow modules starting and stopping.  The window calls this after ``start_modules``."""
        if self._scheduler_started:
            return
        self._scheduler_started = True
        await self.loop.abandon_stale()  # cycles a killed app left running
        await self.coevolution.load()  # the template versions it kept, read off the event loop
        self.tasks.add_builtins()
        self.tasks.sync_modules()
        self.modules.listeners.append(self.tasks.sync_modules)
        self.scheduler.subscribe(_log_run)
        await self.scheduler.start()

    async def update_settings(self, settings: Settings) -> None:
        self.settings = settings
        await self.db.call(self.store.save_settings, settings)
        self.game_mode.poke()  # the switch or the action may have changed
        if self.prometheus is not None:
            await self.prometheus.apply(settings.prometheus_enabled, settings.prometheus_port)
        if self.gateway is not None:
            await self.gateway.apply(settings.gateway_enabled, settings.gateway_port)

    async def serve_prometheus(self, on_problem: Callable[[str], object] | None = None) -> str:
        """Serve the Prometheus endpoint when the settings ask, following their changes from now on.

        The window calls this; CLI commands do not (they would take the running app's port).
        Never raises: returns why the endpoint is not serving (a taken port), '' when all is well,
        and hands that reason to ``on_problem`` now and on later settings changes."""
        if self.prometheus is None:
            from nexus_desktop.control.prometheus import PrometheusSwitch

            self.prometheus = PrometheusSwitch(self.store.engine)
        self.prometheus.on_problem = on_problem
        return await self.prometheus.apply(self.settings.prometheus_enabled, self.settings.prometheus_port)

    async def serve_gateway(
        self, on_problem: Callable[[str], object] | None = None, *, force: bool = False
    ) -> str:
        """Serve other apps (``nexus_desktop/gateway``) when the settings ask, or always with
        ``force`` (``nexus gateway serve``), following the settings' changes from now on.

        Like ``serve_prometheus``: never raises; returns why it is not serving, or ''."""
        if self.gateway is None:
            from nexus_desktop.gateway.switch import GatewaySwitch

            self.gateway = GatewaySwitch(self)
        self.gateway.on_problem = on_problem
        enabled = force or self.settings.gateway_enabled
        return await self.gateway.apply(enabled, self.settings.gateway_port)

    async def renew_gateway_key(self) -> str:
        """Settings → Other apps' New key: a new key in the keyring, required from now on."""
        if self.gateway is None:
            from nexus_desktop.gateway.key import new_key

            return await asyncio.to_thread(new_key, self.secrets)
        return await self.gateway.renew_key()

    async def aclose(self) -> None:
        if self.gateway is not None:  # first: no other app's request starts while the rest shuts down
            await self.gateway.aclose()
        await self.game_mode.aclose()  # first: no unload or reload starts while the rest shuts down
        await self.keep_alive.aclose()
        await self.scheduler.aclose()  # no task may start while the rest shuts down
        if self._watcher is not None:
            await self._watcher.aclose()
        await self.chat.pipeline.wait_finished()  # reply_did_finish calls still with the modules
        await self.builds.aclose()  # a running build is stored as stopped before modules close
        await self.modules.aclose()
        await self.module_characters.wait()
        await self.training.aclose(stop_training=True)
        await self.router.aclose()
        await self.sources.aclose()
        await self.engram.aclose()
        await self.db_watcher.aclose()
        await asyncio.to_thread(self.close)

    def close(self) -> None:
        """Store what the collector still holds and close the database (no model to stop)."""
        if self.prometheus is not None:
            self.prometheus.close()
        self.collector.close()
        self.metrics.close()
        self.db.close()


def _log_run(run: TaskRun) -> None:
    """The scheduler's observer: a failed or timed-out run goes to the log file with its reason
    (the grid shows counts; the log keeps what happened)."""
    if run.outcome in ("error", "timeout"):
        seconds = run.seconds or 0
        log.warning("Scheduled task %s: %s after %.1f s: %s", run.task, run.outcome, seconds, run.detail)
    else:
        log.info("Scheduled task %s: %s in %.1f s", run.task, run.outcome, run.seconds or 0)
