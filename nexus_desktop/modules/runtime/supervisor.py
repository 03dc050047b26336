"""The supervisor: one child process per enabled module, every hook call bounded in time.

A module that hangs, allocates without bound, calls ``os._exit`` or segfaults costs one failed
call: the call returns a ``ToolResult`` with the reason (tool calls never raise for a module's
fault), the failure is recorded in the module's lifecycle, and the process is started again on
the next call.  Failures in a row quarantine it (``lifecycle.record_failure`` counts them).
Before each launch the module's files are hashed again and must match what the user approved.
Only the credentials its manifest declares are fetched, and they travel in the load message.

Nothing here blocks the event loop: processes start in an executor, pipes are read by threads,
and database writes go through one worker thread in order.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import nexus_desktop
from nexus_desktop.children.exits import describe_exit
from nexus_desktop.children.jsonlines import encode
from nexus_desktop.children.supervised import ChildProcess
from nexus_desktop.logs import redact, register_secret
from nexus_desktop.modules.errors import ModuleError
from nexus_desktop.modules.install import content_hash
from nexus_desktop.modules.lifecycle import ModuleState
from nexus_desktop.modules.manifest import ModuleManifest, load_manifest
from nexus_desktop.modules.registry import ModuleHost
from nexus_desktop.modules.runtime import containment
from nexus_desktop.modules.runtime.breaker import TokenBucket
from nexus_desktop.modules.runtime.process import child_command, child_environment
from nexus_desktop.modules.runtime.protocol import (
    LOAD_ID,
    ModuleRuntimeStatus,
    RemoteCharacter,
    RemotePanel,
    RemoteScheduledTask,
    RemoteTool,
    ToolResult,
)
from nexus_desktop.modules.runtime.registrations import read_registrations
from nexus_desktop.modules.runtime.validate import load_message, module_data_dir
from nexus_desktop.modules.specs import MessageContext
from nexus_desktop.modules.tables import ModuleRecord
from nexus_desktop.sandbox.egress import EgressProxy
from nexus_desktop.secrets import KeyringUnavailableError, SecretStore

log = logging.getLogger(__name__)

T = TypeVar("T")
_BIG_MESSAGE_BYTES = 16 * 1024
_MAX_REFUSALS_KEPT = 10
_LOAD_TIMEOUT_FLOOR_SECONDS = 5.0
MAX_INTERCEPTED_CHARS = 100_000
"""Longer text from a chat interceptor is garbage, not a message: about 25,000 tokens."""


class ModuleRuntimeError(ModuleError):
    """A module could not be started; ``str()`` says why and what to do."""


def credential_key(module: str, credential: str) -> str:
    """The SecretStore name under which a module's credential is kept."""
    return f"module:{module}:{credential}"


class _Fault(Exception):
    """A module's fault during one call; already recorded when raised."""


@dataclass
class _Exited:
    returncode: int
    violation: str | None = None


@dataclass
class _Module:
    name: str
    bucket: TokenBucket
    status: ModuleRuntimeStatus
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    child: ChildProcess | None = None
    gatekeeper: EgressProxy | None = None
    """Its network gatekeeper while it runs, when it may use the network."""
    manifest: ModuleManifest | None = None
    pending: dict[int, tuple[ChildProcess, asyncio.Future[dict[str, Any] | _Exited]]] = field(
        default_factory=dict
    )
    """Calls waiting for an answer, with the process each was sent to."""
    tools: list[RemoteTool] = field(default_factory=list)
    characters: list[RemoteCharacter] = field(default_factory=list)
    tasks: list[RemoteScheduledTask] = field(default_factory=list)
    panels: list[RemotePanel] = field(default_factory=list)
    hooks: frozenset[str] = frozenset()
    unreported_failures: bool = False
    """A failure was recorded and no success since: the next success resets the lifecycle count."""

    @property
    def quarantined(self) -> bool:
        return self.status.state == "quarantined"


class ModuleSupervisor:
    def __init__(
        self,
        host: ModuleHost,
        secrets: SecretStore,
        *,
        call_timeout: float = 10.0,
        interceptor_timeout: float = 2.0,
        memory_limit_mb: int = 512,
        rate_per_minute: int = 120,
    ) -> None:
        self.host = host
        self.secrets = secrets
        self.call_timeout = call_timeout
        self.interceptor_timeout = interceptor_timeout
        """Seconds a chat interceptor may take: a reply waits on ``message_will_send`` and
        ``message_will_be_answered``, so they get far less than a tool call."""
        self.load_timeout = max(_LOAD_TIMEOUT_FLOOR_SECONDS, 2 * call_timeout)
        self.memory_limit_mb = memory_limit_mb
        self.rate_per_minute = rate_per_minute
        self._modules: dict[str, _Module] = {}
        self._tool_index: dict[str, RemoteTool] = {}
        self._ids = itertools.count(1)
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="module-db")
        self._background: set[asyncio.Future[None]] = set()

    # Life cycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Start every module the host says to load; one that fails never stops the others."""
        records = await self._in_db(self.host.modules_to_load)
        results = await asyncio.gather(
            *(self.start_module(record.name) for record in records), return_exceptions=True
        )
        for record, result in zip(records, results, strict=True):
            if isinstance(result, BaseException):
                log.warning("Module %s did not start: %s", record.name, result)

    async def start_module(self, name: str) -> None:
        """Start ``name``'s process and collect what it registers; no-op when it runs already."""
        entry = self._entry(name)
        async with entry.lock:
            if entry.child is not None and entry.child.alive:
                return
            await self._spawn(entry)

    async def stop_module(self, name: str) -> None:
        entry = self._modules.get(name)
        if entry is None:
            return
        async with entry.lock:
            await self._stop_child(entry)
            if not entry.quarantined:
                entry.status.state = "stopped"
            entry.tools, entry.characters, entry.tasks, entry.panels = [], [], [], []
            entry.hooks = frozenset()  # nothing routes to it, so nothing starts it again
            self._index_tools()

    async def reload_module(self, name: str) -> None:
        await self.stop_module(name)
        entry = self._modules.get(name)
        if entry is not None and entry.quarantined:
            entry.status.state = "stopped"  # the lifecycle decides whether it may start again
        await self.start_module(name)

    async def aclose(self) -> None:
        await asyncio.gather(*(self.stop_module(name) for name in list(self._modules)))
        self._db.shutdown(wait=True)

    # What modules offer -------------------------------------------------------------------

    def tools(self) -> list[RemoteTool]:
        return list(self._tool_index.values())

    def characters(self) -> list[RemoteCharacter]:
        return [character for entry in self._modules.values() for character in entry.characters]

    def scheduled_tasks(self) -> list[RemoteScheduledTask]:
        return [task for entry in self._modules.values() for task in entry.tasks]

    def panels(self) -> list[RemotePanel]:
        return [panel for entry in self._modules.values() for panel in entry.panels]

    def status(self) -> dict[str, ModuleRuntimeStatus]:
        for entry in self._modules.values():
            entry.status.pid = entry.child.pid if entry.child is not None and entry.child.alive else None
        return {name: dataclasses.replace(entry.status) for name, entry in self._modules.items()}

    # Calls --------------------------------------------------------------------------------

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> ToolResult:
        """Run a module's tool; a fault comes back as ``ok=False`` with the reason, never raised."""
        started = time.monotonic()
        tool = self._tool_index.get(name)
        if tool is None:
            return ToolResult(False, "", f"No tool named {name} is available; it may have been turned off.")
        entry = self._modules[tool.module]
        refusal = self._admission(entry)
        if refusal is not None:
            return ToolResult(False, "", refusal, time.monotonic() - started)
        try:
            result = await self._call(entry, "call_tool", {"name": name, "arguments": arguments})
        except _Fault as fault:
            return ToolResult(False, "", str(fault), time.monotonic() - started)
        return ToolResult(True, "" if result is None else str(result), None, time.monotonic() - started)

    async def filter_message(self, message: str, context: MessageContext) -> str:
        """``message_will_send`` through every module in turn; a faulty one is skipped and counted."""
        for entry in self._with_hook("message_will_send"):
            payload = {"message": message, "context": _plain(context)}
            result = await self._intercept(entry, "filter_message", payload)
            if result is not None:
                message = result
        return message

    async def answer_message(self, message: str, context: MessageContext) -> str | None:
        """``message_will_be_answered``: the first module that answers wins; faults are skipped."""
        for entry in self._with_hook("message_will_be_answered"):
            payload = {"message": message, "context": _plain(context)}
            result = await self._intercept(entry, "answer_message", payload)
            if result is not None:
                return result
        return None

    async def reply_did_finish(self, reply: str, context: MessageContext) -> None:
        """``reply_did_finish`` to every module that listens, all at once; never raises, so a caller
        may fire it and forget it."""
        payload = {"reply": reply, "context": _plain(context)}
        entries = self._with_hook("reply_did_finish")
        await asyncio.gather(
            *(self._intercept(entry, "reply_did_finish", payload) for entry in entries),
            return_exceptions=True,
        )

    async def _intercept(self, entry: _Module, op: str, payload: dict[str, Any]) -> str | None:
        """One chat interceptor call within ``interceptor_timeout``: its text, or None when the
        module had nothing to say, failed, hung or answered with something other than text.

        A chat waits on these, so the limit is far shorter than a tool's; a fault is counted in
        ``interceptor_faults`` (and, like any call's, in the module's failures) and never raised.
        """
        if self._admission(entry) is not None:
            return None
        try:
            result = await self._call(entry, op, payload, timeout=self.interceptor_timeout)
        except _Fault:
            entry.status.interceptor_faults += 1
            return None
        except Exception:  # never let one module's interceptor break a reply
            log.exception("The %s interceptor of %s failed", op, entry.name)
            entry.status.interceptor_faults += 1
            return None
        if result is None or (isinstance(result, str) and len(result) <= MAX_INTERCEPTED_CHARS):
            return result
        shown = f"{len(result):,} characters of text" if isinstance(result, str) else type(result).__name__
        entry.status.interceptor_faults += 1
        entry.status.last_error = f"{entry.name} answered {op} with {shown}, not text; it was ignored"
        log.warning("Module %s answered %s with %s; ignored", entry.name, op, shown)
        return None

    async def run_task(self, module: str, task: str, *, timeout: float | None = None) -> ToolResult:
        """``timeout``: seconds the module may take (a scheduled task's own limit); the call limit if None."""
        return await self._simple(module, "run_task", {"name": task}, timeout=timeout)

    async def render_panel(self, module: str, panel: str, *, timeout: float | None = None) -> ToolResult:
        return await self._simple(module, "render_panel", {"name": panel}, timeout=timeout)

    async def _simple(
        self, module: str, op: str, payload: dict[str, Any], *, timeout: float | None = None
    ) -> ToolResult:
        started = time.monotonic()
        entry = self._modules.get(module)
        if entry is None or entry.status.state == "stopped":
            return ToolResult(False, "", f"The module {module} is not running; start it in Modules.")
        refusal = self._admission(entry)
        if refusal is not None:
            return ToolResult(False, "", refusal)
        try:
            result = await self._call(entry, op, payload, timeout=timeout)
        except _Fault as fault:
            return ToolResult(False, "", str(fault), time.monotonic() - started)
        content = result if isinstance(result, str) else json.dumps(result, default=str)
        return ToolResult(True, content, None, time.monotonic() - started)

    # Internals ----------------------------------------------------------------------------

    def _entry(self, name: str) -> _Module:
        entry = self._modules.get(name)
        if entry is None:
            entry = _Module(name, TokenBucket(self.rate_per_minute), ModuleRuntimeStatus(name))
            self._modules[name] = entry
        return entry

    def _with_hook(self, hook: str) -> list[_Module]:
        return [e for e in self._modules.values() if hook in e.hooks and not e.quarantined]

    def _admission(self, entry: _Module) -> str | None:
        if entry.quarantined:
            return f"The module {entry.name} is quarantined after repeated failures; review it in Modules."
        if not entry.bucket.take():
            return (
                f"The module {entry.name} was called more than {self.rate_per_minute} times a minute; "
                f"try again in {entry.bucket.seconds_until_next():.0f} s."
            )
        return None

    async def _in_db(self, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._db, function, *args)

    async def _call(
        self, entry: _Module, op: str, payload: dict[str, Any], *, timeout: float | None = None
    ) -> Any:
        async with entry.lock:
            if entry.quarantined:
                raise _Fault(f"The module {entry.name} is quarantined after repeated failures.")
            if entry.child is None or not entry.child.alive:
                try:
                    await self._spawn(entry)
                except ModuleRuntimeError as error:
                    raise _Fault(str(error)) from None
            assert entry.child is not None
            started = time.monotonic()
            reply = await self._request(
                entry, entry.child, next(self._ids), {"op": op, **payload}, timeout=timeout or 0
            )
            elapsed = time.monotonic() - started
            entry.status.calls += 1
            entry.status.total_seconds += elapsed
            if isinstance(reply, str):
                await self._fault(entry, f"{reply} during {op}", op, kill=True)
            elif isinstance(reply, _Exited):
                await self._fault(entry, f"{_exit_reason(reply)} during {op}", op)
            elif not reply.get("ok"):
                await self._fault(entry, f"failed in {op}: {reply.get('error')}", op)
            else:
                if entry.unreported_failures:
                    entry.unreported_failures = False
                    entry.status.failures = 0
                    report = {"op": op, "ok": True, "seconds": round(elapsed, 4)}
                    await self._in_db(self.host.lifecycle.record_success, entry.name, report)
                return reply.get("result")
        raise AssertionError("unreachable")  # _fault always raises

    async def _request(
        self,
        entry: _Module,
        child: ChildProcess,
        request_id: int,
        message: dict[str, Any],
        timeout: float = 0,
    ) -> dict[str, Any] | _Exited | str:
        """The child's answer, its exit, or a string saying it timed out."""
        timeout = timeout or self.call_timeout
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[str, Any] | _Exited] = loop.create_future()
        entry.pending[request_id] = (child, future)
        try:
            data = encode({**message, "id": request_id})
            if len(data) > _BIG_MESSAGE_BYTES:
                await loop.run_in_executor(None, child.send, data)  # a full pipe must not block the loop
            else:
                child.send(data)
            if child.returncode is not None:
                return _Exited(child.returncode, child.violation)
            try:
                return await asyncio.wait_for(future, timeout)
            except TimeoutError:
                child.kill()  # hung or spinning: the only way to get the call back
                return f"did not answer within {timeout:g} seconds"
        finally:
            entry.pending.pop(request_id, None)

    async def _fault(self, entry: _Module, what: str, op: str, *, kill: bool = False) -> None:
        """Record a failure (which may quarantine the module) and raise ``_Fault``.

        ``what`` completes "The module <name> ...", e.g. "crashed (SIGSEGV) during call_tool".
        """
        what = redact(what.strip().rstrip("."))
        reason = f"{entry.name} {what}"
        if kill and entry.child is not None:
            entry.child.kill()
        entry.status.failures += 1
        entry.status.last_error = reason
        entry.unreported_failures = True
        report: dict[str, Any] = {"error": reason, "op": op, "refused": entry.status.refusals[-3:]}
        if entry.child is not None:
            report["stderr"] = [redact(line) for line in list(entry.child.stderr_tail)[-5:]]
        if kill or entry.child is None or not entry.child.alive:
            entry.status.state = "failed"
        record: ModuleRecord = await self._in_db(self.host.lifecycle.record_failure, entry.name, report)
        log.warning("Module %s failed: %s", entry.name, reason)
        if record.state == ModuleState.QUARANTINED:
            entry.status.state = "quarantined"
            await self._stop_child(entry)
            entry.tools = []
            self._index_tools()
            raise _Fault(
                f"The module {reason}; after {record.failure_count} failures in a row it was quarantined."
            )
        raise _Fault(f"The module {reason}; the app is fine and the module starts again on its next use.")

    async def _stop_child(self, entry: _Module) -> None:
        child, entry.child = entry.child, None
        if child is not None:
            await asyncio.get_running_loop().run_in_executor(None, child.stop, {"id": -1, "op": "shutdown"})
        self._close_gatekeeper(entry)

    @staticmethod
    def _close_gatekeeper(entry: _Module) -> None:
        gatekeeper, entry.gatekeeper = entry.gatekeeper, None
        if gatekeeper is not None:
            gatekeeper.close()

    async def _spawn(self, entry: _Module) -> None:
        """Check, start and load ``entry``'s process; the caller holds ``entry.lock``."""
        name = entry.name
        record = await self._in_db(self.host.lifecycle.get, name)
        if record.state not in (ModuleState.ENABLED, ModuleState.FAILED):
            raise ModuleRuntimeError(
                f"{name} is {record.state}, so it was not started; approve or enable it first."
            )
        if record.state == ModuleState.FAILED and record.failure_count == 0:
            raise ModuleRuntimeError(f"{name} is broken ({record.reason}); fix it before starting it.")
        if not self.host.allowed(name):
            raise ModuleRuntimeError(f"{name} is not in NEXUS_LOAD_MODULES, so it was not started.")
        loop = asyncio.get_running_loop()
        folder = Path(record.path)
        bundled = record.source == "bundled"
        manifest, digest = await loop.run_in_executor(None, _read_module, folder, bundled)
        if not self._approved(record, digest):
            await self._in_db(self.host.refresh)  # moves it back to awaiting approval, audited
            raise ModuleRuntimeError(
                f"The files of {name} changed since you approved them, so it was not started; "
                "review and approve it again."
            )
        gaps = containment.unaccepted_gaps(manifest, record.approved_access or [])
        if gaps:
            why = (
                f"on this PC the system cannot enforce this part of what you approved: {gaps[0]}; "
                "review it and approve it again, accepting the weaker guarantee"
            )
            await self._in_db(self.host.lifecycle.ask_again, name, why)
            raise ModuleRuntimeError(f"{name} was not started: {why}.")
        credentials = await loop.run_in_executor(None, self._credentials, manifest)
        data_dir = module_data_dir(name)
        load = load_message(manifest, folder, data_dir, memory_limit_mb=self.memory_limit_mb)
        load["app_info"] = {
            "version": nexus_desktop.__version__,
            "data_dir": str(data_dir),
            "module_dir": str(data_dir),
            "code_dir": str(folder.resolve()),
            "credentials": credentials,
        }

        def launch(load: dict[str, Any]) -> ChildProcess:
            data_dir.mkdir(parents=True, exist_ok=True)
            self._close_gatekeeper(entry)
            if manifest.permissions.network:
                entry.gatekeeper = EgressProxy(name, manifest.permissions.network)
                load["gatekeeper"] = f"127.0.0.1:{entry.gatekeeper.port}"
            port = entry.gatekeeper.port if entry.gatekeeper else None
            return ChildProcess(
                f"module {name}",
                child_command("serve"),
                containment.serving(load, gatekeeper_port=port),
                env=child_environment(data_dir, entry.gatekeeper.environment() if entry.gatekeeper else None),
                cwd=data_dir,
                loop=loop,
                on_message=lambda message: self._on_message(entry, message),
                on_exit=lambda code: self._on_exit(entry, child_box[0], code),
            )

        child_box: list[ChildProcess] = []
        try:
            child = await loop.run_in_executor(None, launch, load)
        except OSError as error:
            raise ModuleRuntimeError(f"{name} could not start ({error}); reinstall NEXUS Desktop.") from error
        child_box.append(child)
        entry.child, entry.manifest = child, manifest
        reply = await self._request(entry, child, LOAD_ID, load, timeout=self.load_timeout)
        del load, credentials
        try:
            if isinstance(reply, str):
                await self._fault(entry, f"{reply} while loading", "load", kill=True)
            elif isinstance(reply, _Exited):
                await self._fault(entry, f"{_exit_reason(reply)} while loading", "load")
            elif not reply.get("ok"):
                await self._fault(entry, f"could not be loaded: {reply.get('error')}", "load", kill=True)
        except _Fault as fault:
            raise ModuleRuntimeError(str(fault)) from None
        assert isinstance(reply, dict)
        self._take_registrations(entry, reply.get("result"))
        entry.status.state = "running"
        entry.status.pid = child.pid

    def _approved(self, record: ModuleRecord, digest: str) -> bool:
        if record.approved_hash is None:
            return False
        exempt = self.host.lifecycle.developer_mode and record.source == "developer"
        return record.approved_hash == digest or exempt

    def _credentials(self, manifest: ModuleManifest) -> dict[str, str | None]:
        """Only the credentials the manifest declares, under this module's own key names."""
        values: dict[str, str | None] = {}
        for credential in manifest.credentials:
            try:
                value = self.secrets.get(credential_key(manifest.name, credential.name))
            except KeyringUnavailableError as error:
                log.warning("The secret %s of %s cannot be read: %s", credential.name, manifest.name, error)
                value = None
            register_secret(value)
            values[credential.name] = value
        return values

    def _take_registrations(self, entry: _Module, result: Any) -> None:
        offered = read_registrations(entry.name, entry.manifest.hooks if entry.manifest else (), result)
        entry.hooks, entry.tools, entry.characters = offered.hooks, offered.tools, offered.characters
        entry.tasks, entry.panels = offered.tasks, offered.panels
        self._index_tools()

    def _index_tools(self) -> None:
        index: dict[str, RemoteTool] = {}
        for entry in self._modules.values():
            for tool in entry.tools:
                if tool.name in index:
                    log.warning(
                        "Tool %s of %s hides one of %s", tool.name, index[tool.name].module, entry.name
                    )
                    continue
                index[tool.name] = tool
        self._tool_index = index

    def _on_message(self, entry: _Module, message: dict[str, Any]) -> None:
        if message.get("event") == "refused":
            # Already summed up by the reader thread: one message per burst, with a count.
            counts = message.get("counts") or {}
            texts = [redact(str(text)[:500]) for text in counts]
            entry.status.refusals = [*entry.status.refusals, *texts][-_MAX_REFUSALS_KEPT:]
            log.warning("Module %s was refused %d time(s): %s", entry.name, sum(counts.values()), texts)
            return
        request_id = message.get("id")
        waiting = entry.pending.get(request_id) if isinstance(request_id, int) else None
        if waiting is not None and not waiting[1].done():
            waiting[1].set_result(message)

    def _on_exit(self, entry: _Module, child: ChildProcess, returncode: int) -> None:
        # Only this process's calls: after a reload its exit may be reported once the new one runs.
        for sent_to, future in entry.pending.values():
            if sent_to is child and not future.done():
                future.set_result(_Exited(returncode, child.violation))
        if child.flooded:
            task = asyncio.ensure_future(self._put_aside(entry, child.violation or "flooded the app"))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        if entry.child is child:
            entry.child = None
            entry.status.pid = None
            if entry.status.state == "running":
                entry.status.state = "failed" if returncode != 0 else "stopped"
                entry.status.last_error = f"{entry.name} {describe_exit(returncode)}"

    async def _put_aside(self, entry: _Module, why: str) -> None:
        """Quarantine a module that flooded the app: restarting it would only flood it again."""
        self._close_gatekeeper(entry)
        entry.status.state = "quarantined"
        entry.status.last_error = f"{entry.name} {why}"
        entry.tools, entry.hooks = [], frozenset()
        self._index_tools()
        try:
            await self._in_db(self.host.lifecycle.quarantine, entry.name, f"it {why}")
        except ModuleError as error:
            log.warning("Module %s could not be quarantined: %s", entry.name, error)


def _exit_reason(exited: _Exited) -> str:
    return exited.violation or describe_exit(exited.returncode)


def _read_module(folder: Path, bundled: bool) -> tuple[ModuleManifest, str]:
    return load_manifest(folder, bundled=bundled), content_hash(folder.resolve())


def _plain(context: MessageContext) -> dict[str, Any]:
    data = dataclasses.asdict(context)
    data["extra"] = dict(context.extra)
    return data
