"""Hot reload: watch enabled modules' folders and act on a change within a fraction of a second.

A change (debounced: ``DEBOUNCE_SECONDS`` after the last event, or ``SETTLE_SECONDS`` once the
writer closed the file) re-hashes the module.  An approved module in the
user's own developer folder, with developer mode on, is reloaded at once
(``ModuleSupervisor.reload_module``); any other module goes back to awaiting approval
(``ModuleHost.refresh``) and its process is stopped.  Qt-free: watchdog's thread hands events
to the asyncio loop, where all the work happens.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch

from nexus_desktop.modules.install import IGNORED_DIRS
from nexus_desktop.modules.lifecycle import ModuleState
from nexus_desktop.modules.service import ModuleService

log = logging.getLogger(__name__)

DEBOUNCE_SECONDS = 0.1
SETTLE_SECONDS = 0.02


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: ModuleWatcher, name: str) -> None:
        self.watcher = watcher
        self.name = name

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return  # reads are not changes
        if event.is_directory and event.event_type == "modified":
            return  # follows every change of a file in it; the file's own event says it all
        path = str(event.src_path)
        if any(part in IGNORED_DIRS for part in Path(path).parts) or path.endswith((".pyc", "~", ".swp")):
            return
        # A closed-after-write or renamed-into-place file is complete: no need to wait out a burst.
        complete = event.event_type in ("closed", "moved")
        self.watcher.loop.call_soon_threadsafe(self.watcher.changed, self.name, complete)


class ModuleWatcher:
    """Watches the folders of enabled modules; call ``sync()`` after the set of modules changed."""

    def __init__(self, service: ModuleService, *, debounce: float = DEBOUNCE_SECONDS) -> None:
        self.service = service
        self.debounce = debounce
        self.loop = asyncio.get_running_loop()
        self.reloads = 0
        self._observer: BaseObserver | None = None
        self._watches: dict[str, tuple[str, ObservedWatch]] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._busy: dict[str, asyncio.Task[None]] = {}
        self._sync_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._observer = Observer()
        self._observer.daemon = True
        self._observer.start()
        self.service.listeners.append(self._listener)
        await self.sync()

    async def aclose(self) -> None:
        if self._listener in self.service.listeners:
            self.service.listeners.remove(self._listener)
        for timer in self._timers.values():
            timer.cancel()
        for task in list(self._busy.values()):
            await asyncio.gather(task, return_exceptions=True)
        if self._observer is not None:
            observer, self._observer = self._observer, None
            observer.stop()
            await self.loop.run_in_executor(None, observer.join, 5)

    def watched(self) -> set[str]:
        return set(self._watches)

    async def sync(self) -> None:
        """Watch exactly the enabled modules' folders."""
        if self._observer is None:
            return
        wanted = {
            view.name: view.card.path
            for view in await self.service.list()
            if view.state == ModuleState.ENABLED and view.card.path
        }
        for name, (path, watch) in list(self._watches.items()):
            if wanted.get(name) != path:
                self._observer.unschedule(watch)
                del self._watches[name]
        for name, path in wanted.items():
            if name not in self._watches and Path(path).is_dir():
                watch = self._observer.schedule(_Handler(self, name), path, recursive=True)
                self._watches[name] = (path, watch)

    def changed(self, name: str, complete: bool = False) -> None:
        """A file of ``name`` changed (on the loop): act once the burst of events is over.

        ``complete``: the writer closed the file (or renamed it into place), so the wait is
        ``SETTLE_SECONDS`` instead of the full debounce; a further event still restarts it.
        """
        timer = self._timers.pop(name, None)
        if timer is not None:
            timer.cancel()
        delay = min(self.debounce, SETTLE_SECONDS) if complete else self.debounce
        self._timers[name] = self.loop.call_later(delay, self._fire, name)

    def _fire(self, name: str) -> None:
        self._timers.pop(name, None)
        busy = self._busy.get(name)
        if busy is not None and not busy.done():
            self.changed(name)  # still reloading the previous edit: try again after it
            return
        task = self.loop.create_task(self._apply(name))
        self._busy[name] = task

    async def _apply(self, name: str) -> None:
        service = self.service
        try:
            record = await service._run(service.host.lifecycle.get, name)
            if service.developer_mode and record.source == "developer" and record.approved_hash:
                # The supervisor hashes the files again before launching; the row's own hash
                # catches up right after, off the critical path of "save -> new code answers".
                await service.supervisor.reload_module(name)
                await service._run(service.host.refresh)
                self.reloads += 1
                log.info("Reloaded developer module %s", name)
            else:
                await service.supervisor.stop_module(name)
                await service.refresh()  # changed files lose their approval
                log.info("Module %s changed on disk; it waits for approval again", name)
        except Exception as error:
            log.warning("Reloading module %s failed: %s", name, error)
        finally:
            service._changed()

    def _listener(self) -> None:
        self.loop.call_soon(self._sync_soon)  # the service changed: follow its enabled modules

    def _sync_soon(self) -> None:
        if self._sync_task is None or self._sync_task.done():
            self._sync_task = self.loop.create_task(self.sync())
