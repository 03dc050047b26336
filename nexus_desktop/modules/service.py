"""The modules facade the UI talks to: one object, asyncio methods, no Qt.

``ModuleService`` owns the ``ModuleHost`` (discovery, lifecycle, installs) and the
``ModuleSupervisor`` (module processes).  Every database or disk step runs on one worker thread,
in order, so the Qt thread never blocks and two actions never interleave.  Callbacks in
``listeners`` are called (on the event loop) after anything changed, so a gallery can refresh.

Bundled modules (``plugins/`` in the repository, shipped and reviewed with the app) are approved
on discovery with the audit reason ``BUNDLED_REASON``; everything else waits for a person.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine

from nexus_desktop.modules.discovery import bundled_modules_dir
from nexus_desktop.modules.errors import TransitionError
from nexus_desktop.modules.lifecycle import ModuleState, UserAction
from nexus_desktop.modules.registry import ApprovalRequest, ModuleCard, ModuleHost
from nexus_desktop.modules.runtime.protocol import ModuleRuntimeStatus, ToolResult
from nexus_desktop.modules.runtime.supervisor import ModuleSupervisor, credential_key
from nexus_desktop.modules.runtime.validate import validate_module
from nexus_desktop.secrets import SecretStore

log = logging.getLogger(__name__)

T = TypeVar("T")
BUNDLED_REASON = "bundled with NEXUS Desktop"
REPO_PLUGINS_DIR = bundled_modules_dir()  # beside the package in a checkout or a bundle, inside it in a wheel
_MAY_RUN = (ModuleState.ENABLED, ModuleState.FAILED)


@dataclass(frozen=True)
class CredentialInfo:
    name: str
    instructions: str
    url: str | None
    required: bool


@dataclass(frozen=True)
class ModuleView:
    """One gallery card: the lifecycle's card plus how its process is doing."""

    card: ModuleCard
    runtime: ModuleRuntimeStatus | None = None
    credentials: list[CredentialInfo] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.card.name

    @property
    def state(self) -> str:
        return self.card.state

    def can(self, action: str) -> bool:
        """Whether the gallery offers ``action`` for this module now."""
        return self.refusal(action) is None

    def refusal(self, action: str) -> str | None:
        """Why the gallery does not offer ``action`` now, or None when it does.

        Lifecycle actions (``UserAction``) are answered by the lifecycle itself
        (``ModuleLifecycle.refusal``), the same answer its methods give when called, so a card
        offers exactly what would succeed.  The others depend on where the module came from.
        """
        card = self.card
        if card.error is not None and card.content_hash is None:  # a folder that cannot be read
            if action == "report" or (action == "uninstall" and card.source == "user"):
                return None
            return f"{card.name} cannot be read ({card.error.rstrip('.')}); fix its files or uninstall it."
        if action in _LIFECYCLE_ACTIONS:
            return card.actions.get(action, f"{card.name}: refresh the module list and try again.")
        offered = {
            "update": card.source == "user",
            "rollback": card.source == "user" and any(v != card.version for v in card.versions),
            "uninstall": card.source == "user",
            "report": card.last_report is not None,
            "credentials": bool(self.credentials),
        }
        if action not in offered:
            return f"There is no action {action!r}."
        return None if offered[action] else _OTHER_REFUSALS[action].format(name=card.name)


_LIFECYCLE_ACTIONS = frozenset(action.value for action in UserAction)
_OTHER_REFUSALS = {
    "update": "{name} was not installed by you, so it cannot be updated from a file.",
    "rollback": "{name} has no other version to go back to.",
    "uninstall": "{name} was not installed by you, so it cannot be uninstalled; disable it.",
    "report": "{name} has no report yet; validate it.",
    "credentials": "{name} needs no secrets.",
}


class ModuleService:
    def __init__(
        self,
        engine: Engine,
        secrets: SecretStore,
        *,
        bundled_dir: Path | None = REPO_PLUGINS_DIR,
        user_dir: Path | None = None,
        developer_dir: Path | None = None,
        developer_mode: bool = False,
        environ: dict[str, str] | None = None,
        start_modules: bool = True,
        validation_timeout: float = 60.0,
        supervisor_options: dict[str, Any] | None = None,
    ) -> None:
        self.engine = engine
        self.secrets = secrets
        self.host = ModuleHost(
            engine,
            bundled_dir=bundled_dir,
            user_dir=user_dir,
            developer_dir=developer_dir,
            developer_mode=developer_mode,
            environ=environ,
        )
        self.supervisor = ModuleSupervisor(self.host, secrets, **(supervisor_options or {}))
        self.start_modules = start_modules
        self.validation_timeout = validation_timeout
        self.listeners: list[Callable[[], None]] = []
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="modules")

    @property
    def developer_mode(self) -> bool:
        return self.host.lifecycle.developer_mode

    # Life cycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Discover modules, approve the bundled ones, and start every enabled module."""
        await self._run(self._refresh_and_approve_bundled)
        if self.start_modules:
            await self.supervisor.start()
        self._changed()

    async def aclose(self) -> None:
        await self.supervisor.aclose()
        self._worker.shutdown(wait=True)

    # Reading ------------------------------------------------------------------------------

    async def list(self) -> builtins.list[ModuleView]:
        """Every module as a gallery card, read fresh from disk and the database."""
        cards, credentials = await self._run(self._cards)
        status = self.supervisor.status()
        for card in cards:
            running = status.get(card.name)
            if running is not None and running.state == "running" and card.state not in _MAY_RUN:
                # Refreshing took its approval away (its files changed): stop the old process now.
                await self.supervisor.stop_module(card.name)
                status = self.supervisor.status()
        return [ModuleView(card, status.get(card.name), credentials.get(card.path, [])) for card in cards]

    async def get(self, name: str) -> ModuleView:
        for view in await self.list():
            if view.name == name:
                return view
        raise TransitionError(f"No module {name} is installed; refresh the module list and try again.")

    async def report(self, name: str) -> dict[str, Any] | None:
        """The last validation or run-time report of ``name``'s active version."""
        record = await self._run(self.host.lifecycle.get, name)
        return record.last_report

    async def history(self, name: str) -> builtins.list[tuple[str, str, str]]:
        """(to_state, reason, when) per audit entry, oldest first."""
        events = await self._run(self.host.lifecycle.history, name)
        return [(e.to_state, e.reason, str(e.at)) for e in events]

    # Actions ------------------------------------------------------------------------------

    async def install(self, source: Path) -> ModuleCard:
        """Install from a folder, .zip or .whl; it awaits approval (validate it first)."""
        record = await self._run(self.host.install, Path(source))
        await self.supervisor.stop_module(record.name)  # a previous version may be running
        self._changed()
        return await self._card(record.name)

    async def update(self, name: str, source: Path) -> ModuleCard:
        """Install a newer version of ``name``; the old one stays on disk for rollback."""
        card = await self.install(source)
        if card.name != name:
            raise TransitionError(f"That file holds the module {card.name}, not {name}; pick {name}'s file.")
        return card

    async def validate(self, name: str) -> dict[str, Any]:
        """Check the active version in sandboxed processes; record the report (a failure blocks approval)."""
        record = await self._run(self.host.lifecycle.get, name)
        bundled = record.source == "bundled"
        report = await asyncio.get_running_loop().run_in_executor(
            None,
            lambda: validate_module(Path(record.path), bundled=bundled, timeout=self.validation_timeout),
        )
        await self.record_validation(name, report)
        return report

    async def record_validation(self, name: str, report: dict[str, Any]) -> None:
        await self._run(self.host.lifecycle.record_validation, name, report)
        self._changed()

    async def review(self, name: str) -> ApprovalRequest:
        return await self._run(self.host.review, name)

    async def approve(self, request: ApprovalRequest) -> ModuleCard:
        """Approve exactly what the dialog showed (refused if the files changed) and start it."""
        await self._run(self.host.approve, request)
        await self._restart(request.name)
        return await self._card(request.name)

    async def release(self, name: str) -> ModuleCard:
        """Take a quarantined module out for review: it awaits a fresh approval, and its data
        folder and secrets stay.  Validate it next (the card and ``nexus modules release`` do)."""
        await self._run(self.host.lifecycle.release, name)
        self._changed()
        return await self._card(name)

    async def enable(self, name: str) -> ModuleCard:
        await self._run(self.host.lifecycle.enable, name)
        await self._restart(name)
        return await self._card(name)

    async def disable(self, name: str) -> ModuleCard:
        await self.supervisor.stop_module(name)
        await self._run(self.host.lifecycle.disable, name)
        self._changed()
        return await self._card(name)

    async def rollback(self, name: str, version: str | None = None) -> ModuleCard:
        await self._run(self.host.rollback, name, version)
        await self._restart(name)
        return await self._card(name)

    async def uninstall(self, name: str, version: str | None = None) -> None:
        await self.supervisor.stop_module(name)
        await self._run(self.host.uninstall, name, version)
        self._changed()

    async def set_credential(
        self, module: str, credential: str, value: str, *, session_only: bool = False
    ) -> None:
        """Keep a module's declared credential (keyring, or memory only) and reload the module.

        Raises ``KeyringUnavailableError`` when the keyring cannot take it; then offer
        ``session_only=True``.  The value is never logged or returned.
        """
        key = credential_key(module, credential)
        await asyncio.get_running_loop().run_in_executor(
            None, lambda: self.secrets.set(key, value, session_only=session_only)
        )
        record = await self._run(self.host.lifecycle.get, module)
        if record.state == ModuleState.ENABLED and self.start_modules:
            await self.reload(module)
        self._changed()

    async def reload(self, name: str) -> None:
        """Restart ``name``'s process so it loads its files (and secrets) again."""
        await self.supervisor.reload_module(name)
        self._changed()

    async def refresh(self) -> None:
        """Look at the folders again: changed files lose their approval (except in developer mode)."""
        await self._run(self._refresh_and_approve_bundled)
        self._changed()

    async def call_tool(self, name: str, arguments: dict[str, Any] | None = None) -> ToolResult:
        return await self.supervisor.call_tool(name, arguments or {})

    def job_command(self, kind: str, target: str) -> builtins.list[str]:
        """A command line that runs an install or validation as its own (cancellable) process."""
        command = [sys.executable, "-m", "nexus_desktop.modules.job", kind, target]
        command += ["--db", str(self.engine.url.database)]
        for flag, folder in (
            ("--bundled-dir", self.host.bundled_dir),
            ("--user-dir", self.host.modules_dir),
            ("--developer-dir", self.host.developer_dir),
        ):
            if folder is not None:
                command += [flag, str(folder)]
        if self.developer_mode:
            command.append("--developer-mode")
        command += ["--timeout", f"{self.validation_timeout:g}"]
        return command

    # Internals ----------------------------------------------------------------------------

    async def _run(self, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._worker, function, *args)

    async def _restart(self, name: str) -> None:
        if self.start_modules:
            try:
                await self.supervisor.reload_module(name)
            except Exception as error:  # shown on the card via its runtime status and lifecycle
                log.warning("Module %s did not start: %s", name, error)
        self._changed()

    async def _card(self, name: str) -> ModuleCard:
        return (await self.get(name)).card

    def _changed(self) -> None:
        for listener in list(self.listeners):
            try:
                listener()
            except Exception:
                log.exception("A modules listener failed")

    def _refresh_and_approve_bundled(self) -> None:
        self.host.refresh()
        lifecycle = self.host.lifecycle
        for row in lifecycle.records(active_only=True):
            if row.source == "bundled" and row.state == ModuleState.AWAITING_APPROVAL:
                if lifecycle.quarantine_story(row.name):
                    continue  # released from quarantine: a person looks at why before it runs again
                # Our own code, reviewed and shipped with the app: approved, with an audit entry,
                # and trusted where this PC's kernel cannot hold it (containment.gaps).
                request = self.host.review(row.name).accepting_weaker_guarantee()
                lifecycle.approve(
                    row.name, expected_hash=request.content_hash, access=request.access, reason=BUNDLED_REASON
                )

    def _cards(self) -> tuple[builtins.list[ModuleCard], dict[str, builtins.list[CredentialInfo]]]:
        found = self.host.refresh()
        credentials = {
            str(item.path): [
                CredentialInfo(c.name, c.instructions, c.url, c.required) for c in item.manifest.credentials
            ]
            for item in found
            if item.manifest is not None
        }
        return self.host.list_modules(), credentials
