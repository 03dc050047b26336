"""The module host: discovery, the lifecycle, installs and the pluggy plugin manager in one place.

``ModuleHost`` is what the rest of the app talks to.  It never imports or runs a module's own code
(that happens in a separate process, later); in this process the plugin manager holds only the
app's built-in plugins and, later, proxies for module processes.

Environment switches, after datasette and llm:

- ``NEXUS_LOAD_MODULES``: a comma-separated allowlist of module names to load; an empty value is
  safe mode (no modules at all).  Unset means every enabled module.  Built-in plugins always load.
- ``NEXUS_TRACE_HOOKS``: any value but ``0`` logs every hook call and its result.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy
from packaging.version import Version
from sqlalchemy import Engine

from nexus_desktop.modules import hookspecs
from nexus_desktop.modules.discovery import Discovered, discover
from nexus_desktop.modules.errors import TransitionError, UnknownModuleError
from nexus_desktop.modules.install import install_module, remove_version, user_modules_dir
from nexus_desktop.modules.lifecycle import ModuleLifecycle, ModuleState
from nexus_desktop.modules.runtime.containment import ACCEPTED, gaps
from nexus_desktop.modules.specs import MessageContext
from nexus_desktop.modules.tables import ModuleRecord

log = logging.getLogger(__name__)
trace_log = logging.getLogger("nexus_desktop.modules.trace")

LOAD_ENV = "NEXUS_LOAD_MODULES"
TRACE_ENV = "NEXUS_TRACE_HOOKS"
DEFAULT_PLUGINS = ("nexus_desktop.modules.builtin",)

BADGES: dict[str, str] = {
    ModuleState.DISCOVERED: "Checking",
    ModuleState.VALIDATED: "Checking",
    ModuleState.AWAITING_APPROVAL: "Needs approval",
    ModuleState.ENABLED: "On",
    ModuleState.DISABLED: "Off",
    ModuleState.FAILED: "Failed",
    ModuleState.QUARANTINED: "Quarantined",
}


def load_allowlist(environ: Mapping[str, str] | None = None) -> frozenset[str] | None:
    """Names allowed by ``NEXUS_LOAD_MODULES``; None when unset (no restriction), empty = safe mode."""
    value = (os.environ if environ is None else environ).get(LOAD_ENV)
    if value is None:
        return None
    return frozenset(name.strip() for name in value.split(",") if name.strip())


def trace_enabled(environ: Mapping[str, str] | None = None) -> bool:
    value = (os.environ if environ is None else environ).get(TRACE_ENV, "")
    return value.strip() not in ("", "0")


def make_plugin_manager(*, builtins: bool = True, trace: bool | None = None) -> pluggy.PluginManager:
    """A plugin manager with the NEXUS hookspecs and, unless told otherwise, the built-in plugins."""
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    if builtins:
        for name in DEFAULT_PLUGINS:
            manager.register(importlib.import_module(name), name=name)
    if trace_enabled() if trace is None else trace:
        manager.add_hookcall_monitoring(_before_hook, _after_hook)
    return manager


def _before_hook(hook_name: str, hook_impls: Sequence[pluggy.HookImpl], kwargs: Mapping[str, Any]) -> None:
    plugins = ", ".join(impl.plugin_name for impl in hook_impls)
    trace_log.info("hook %s(%s) -> [%s]", hook_name, ", ".join(kwargs), plugins)


def _after_hook(
    outcome: pluggy.Result[Any],
    hook_name: str,
    hook_impls: Sequence[pluggy.HookImpl],
    kwargs: Mapping[str, Any],
) -> None:
    if outcome.exception is not None:
        trace_log.info("hook %s raised %r", hook_name, outcome.exception)
    else:
        trace_log.info("hook %s returned %r", hook_name, outcome.get_result())


def filter_message(
    manager: pluggy.PluginManager,
    message: str,
    context: MessageContext,
    *,
    on_error: Callable[[str, BaseException], None] | None = None,
) -> str:
    """Run ``message_will_send`` as a chain: each plugin sees the text the previous one returned.

    A plugin that raises is skipped (and reported through ``on_error``); it never stops the message.
    """
    implementations = manager.hook.message_will_send.get_hookimpls()
    plugins = [impl.plugin for impl in implementations]
    for impl in reversed(implementations):  # pluggy calls the last registered (or tryfirst) first
        only_this = manager.subset_hook_caller(
            "message_will_send", [p for p in plugins if p is not impl.plugin]
        )
        try:
            results = only_this(message=message, context=context)
        except Exception as error:
            log.warning("The plugin %s failed in message_will_send: %r", impl.plugin_name, error)
            if on_error is not None:
                on_error(impl.plugin_name, error)
            continue
        for result in results:
            if isinstance(result, str):
                message = result
    return message


@dataclass(frozen=True)
class ApprovalRequest:
    """Exactly what the user is asked to approve; ``content_hash`` pins the files they saw."""

    name: str
    version: str
    display_name: str
    author: str
    origin: str
    access: list[str]
    credentials: list[tuple[str, str]]
    """(secret name, how to get it) for each credential the module needs."""
    content_hash: str
    quarantined_because: list[str] = field(default_factory=list)
    """Released from quarantine and not approved since: its last failures and the quarantine,
    oldest first, one line each ("when  state: reason")."""
    unenforced: list[str] = field(default_factory=list)
    """What this PC's kernel cannot enforce of ``access`` (``containment.gaps``): the module is
    started only when the approval accepted each of these explicitly."""

    def accepting_weaker_guarantee(self) -> ApprovalRequest:
        """This approval with every unenforced part accepted, as the approval records it."""
        accepted = [f"{ACCEPTED}{gap}" for gap in self.unenforced]
        return dataclasses.replace(self, access=[*self.access, *accepted])


@dataclass(frozen=True)
class ModuleCard:
    """Everything a gallery card shows for one module (its active version)."""

    name: str
    version: str
    display_name: str
    author: str
    description: str
    category: str
    origin: str
    source: str
    state: str
    badge: str
    reason: str
    access: list[str] = field(default_factory=list)
    """What it asks for beyond its own folder, one line each (the approval dialog's list)."""
    last_report: dict[str, Any] | None = None
    error: str | None = None
    versions: list[str] = field(default_factory=list)
    content_hash: str | None = None
    loads: bool = False
    """Enabled and allowed by ``NEXUS_LOAD_MODULES``: it will be started."""
    path: str = ""
    actions: dict[str, str | None] = field(default_factory=dict)
    """Per lifecycle action (``UserAction``): None where allowed now, else why it is refused."""


class ModuleHost:
    def __init__(
        self,
        engine: Engine,
        *,
        bundled_dir: Path | None = None,
        user_dir: Path | None = None,
        developer_dir: Path | None = None,
        developer_mode: bool = False,
        environ: Mapping[str, str] | None = None,
        builtins: bool = True,
    ) -> None:
        self.bundled_dir = bundled_dir
        self.user_dir = user_dir
        self.developer_dir = developer_dir
        self.lifecycle = ModuleLifecycle(engine, developer_mode=developer_mode)
        self.allowlist = load_allowlist(environ)
        self.plugin_manager = make_plugin_manager(builtins=builtins, trace=trace_enabled(environ))
        self._found: list[Discovered] = []

    @property
    def modules_dir(self) -> Path:
        return self.user_dir if self.user_dir is not None else user_modules_dir()

    def refresh(self) -> list[Discovered]:
        """Look at the module folders again and bring the database in line; returns what was found."""
        self._found = list(
            discover(
                bundled_dir=self.bundled_dir, user_dir=self.modules_dir, developer_dir=self.developer_dir
            )
        )
        self.lifecycle.sync(self._found)
        return self._found

    # Installing and versions --------------------------------------------------------------

    def install(self, source: Path) -> ModuleRecord:
        """Install from a folder, .zip or .whl; the new version becomes the active one and awaits approval."""
        found = self.refresh()
        reserved = {
            item.manifest.name: f"a {'built-in' if item.source == 'bundled' else 'developer'} module"
            for item in found
            if item.manifest is not None and item.source != "user"
        }
        installed = install_module(source, self.modules_dir, reserved_names=reserved)
        self.refresh()
        return self.lifecycle.activate(installed.name, installed.version, "installed by you")

    def rollback(self, name: str, version: str | None = None) -> ModuleRecord:
        """Go back to ``version``, or to the newest version older than the active one."""
        records = [row for row in self.lifecycle.records() if row.name == name]
        active = next((row for row in records if row.active), None)
        if active is None:
            raise UnknownModuleError(f"No module {name} is installed; refresh the module list and try again.")
        if version is None:
            older = [row for row in records if Version(row.version) < Version(active.version)]
            if not older:
                raise TransitionError(f"{name} has no older version to go back to.")
            version = max(older, key=lambda row: Version(row.version)).version
        return self.lifecycle.activate(name, version, f"rolled back from {active.version} by you")

    def uninstall(self, name: str, version: str | None = None) -> None:
        """Delete an installed version (the active one by default) from disk; its history stays."""
        row = self.lifecycle.get(name, version)
        if row.source != "user":
            raise TransitionError(
                f"{name} is not an installed module, so it cannot be uninstalled; disable it."
            )
        remove_version(row.name, row.version, self.modules_dir)
        self.refresh()

    # Approval -----------------------------------------------------------------------------

    def review(self, name: str) -> ApprovalRequest:
        """What the approval dialog shows for the active version of ``name``, read fresh from disk."""
        self.refresh()
        row = self.lifecycle.get(name)
        item = next((item for item in self._found if str(item.path) == row.path), None)
        if item is None or item.manifest is None or item.content_hash is None:
            reason = item.error if item and item.error else "its folder cannot be read"
            raise TransitionError(f"{name} cannot be reviewed: {reason.rstrip('.')}.")
        manifest = item.manifest
        return ApprovalRequest(
            name=name,
            version=manifest.version,
            display_name=manifest.display_name,
            author=manifest.author,
            origin=row.origin,
            access=manifest.requested_access(),
            credentials=[(c.name, c.instructions) for c in manifest.credentials],
            content_hash=item.content_hash,
            unenforced=gaps(manifest),
            quarantined_because=[
                f"{event.at:%Y-%m-%d %H:%M}  {event.to_state}: {event.reason}"
                for event in self.lifecycle.quarantine_story(name)
            ],
        )

    def approve(self, request: ApprovalRequest) -> ModuleRecord:
        """Approve exactly what ``request`` showed; refused if the files changed since ``review``."""
        self.refresh()
        return self.lifecycle.approve(request.name, expected_hash=request.content_hash, access=request.access)

    # What runs ----------------------------------------------------------------------------

    def allowed(self, name: str) -> bool:
        return self.allowlist is None or name in self.allowlist

    def modules_to_load(self) -> list[ModuleRecord]:
        """Active, enabled modules that the allowlist lets through: the ones to start.

        A module whose calls failed fewer times than the circuit breaker allows is started too:
        one bad call (say, arguments it refused) must not switch it off for good.  One that failed
        its validation (no run-time failures) or was quarantined is not.
        """
        return [
            row
            for row in self.lifecycle.records(active_only=True)
            if self.allowed(row.name)
            and (
                row.state == ModuleState.ENABLED
                or (row.state == ModuleState.FAILED and row.failure_count > 0)
            )
        ]

    def list_modules(self) -> list[ModuleCard]:
        """One card per module, plus one per folder that could not be read, for the gallery."""
        found = self._found or self.refresh()
        by_path = {str(item.path): item for item in found}
        records = self.lifecycle.records()
        cards = []
        for row in records:
            if not row.active:
                continue
            item = by_path.get(row.path)
            manifest = item.manifest if item else None
            versions = sorted((r.version for r in records if r.name == row.name), key=Version, reverse=True)
            cards.append(
                ModuleCard(
                    name=row.name,
                    version=row.version,
                    display_name=manifest.display_name if manifest else row.name,
                    author=manifest.author if manifest else "",
                    description=manifest.description if manifest else "",
                    category=manifest.category if manifest else "other",
                    origin=row.origin,
                    source=row.source,
                    state=row.state,
                    badge=BADGES.get(row.state, row.state),
                    reason=row.reason,
                    access=manifest.requested_access() if manifest else [],
                    last_report=row.last_report,
                    error=item.error if item else None,
                    versions=versions,
                    content_hash=row.content_hash,
                    loads=row.state == ModuleState.ENABLED and self.allowed(row.name),
                    path=row.path,
                    actions=self.lifecycle.actions(row),
                )
            )
        known = {row.path for row in records}
        for item in found:
            if item.error is not None and str(item.path) not in known:
                cards.append(_broken_card(item))
        return cards


def _broken_card(item: Discovered) -> ModuleCard:
    manifest = item.manifest
    name = manifest.name if manifest else item.path.name if item.source != "user" else item.path.parent.name
    return ModuleCard(
        name=name,
        version=manifest.version if manifest else (item.path.name if item.source == "user" else ""),
        display_name=manifest.display_name if manifest else name,
        author=manifest.author if manifest else "",
        description=manifest.description if manifest else "",
        category=manifest.category if manifest else "other",
        origin=manifest.origin if manifest else "",
        source=item.source,
        state=ModuleState.FAILED,
        badge="Broken",
        reason=item.error or "",
        error=item.error,
        path=str(item.path),
    )
