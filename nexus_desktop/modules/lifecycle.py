"""Where each module stands, persisted in SQLite with every change in an append-only audit log.

::

    discovered -> validated -> awaiting_approval -> enabled <-> disabled
                                                      |  ^
                   failed <---------------------------+  |  (a failure; recovers once approved)
                   failed (validation failed: blocks approval) -> validated, after a passing one
                   quarantined (too many failures, or by hand) -> awaiting_approval (released)

What a person may do in each state is ``USER_ACTIONS``; ``ModuleLifecycle.refusal`` says why an
action is refused, and both the gallery (what a card offers) and the action methods here ask it,
so the two never disagree.

A module only becomes ``enabled`` while the hash of its files equals the hash the user approved.
When its files change, an enabled module goes back to ``awaiting_approval``, except in developer
mode for modules in the user's own developer folder.  Rows are per version; one version per name
is ``active`` and the others stay on disk for rollback.

All methods are synchronous and short; async callers run them through ``AsyncStore.call``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from enum import StrEnum
from typing import Any

from packaging.version import Version
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from nexus_desktop.db.tables import utcnow
from nexus_desktop.modules.discovery import Discovered
from nexus_desktop.modules.errors import TransitionError, UnknownModuleError
from nexus_desktop.modules.tables import ModuleEvent, ModuleRecord

# Consecutive failures after which a module is put aside until the user looks at it.
QUARANTINE_AFTER_FAILURES = 3
REMOVED = "removed"
"""Audit-log pseudo state for a version whose folder is gone."""


class ModuleState(StrEnum):
    DISCOVERED = "discovered"
    VALIDATED = "validated"
    AWAITING_APPROVAL = "awaiting_approval"
    ENABLED = "enabled"
    DISABLED = "disabled"
    FAILED = "failed"
    QUARANTINED = "quarantined"


S = ModuleState
ALLOWED_TRANSITIONS: dict[ModuleState, frozenset[ModuleState]] = {
    S.DISCOVERED: frozenset({S.VALIDATED, S.FAILED, S.QUARANTINED}),
    S.VALIDATED: frozenset({S.AWAITING_APPROVAL, S.ENABLED, S.DISABLED, S.FAILED, S.QUARANTINED}),
    S.AWAITING_APPROVAL: frozenset({S.ENABLED, S.DISABLED, S.FAILED, S.QUARANTINED}),
    S.ENABLED: frozenset({S.DISABLED, S.AWAITING_APPROVAL, S.FAILED, S.QUARANTINED}),
    S.DISABLED: frozenset({S.ENABLED, S.AWAITING_APPROVAL, S.FAILED, S.QUARANTINED}),
    S.FAILED: frozenset({S.VALIDATED, S.ENABLED, S.AWAITING_APPROVAL, S.DISABLED, S.QUARANTINED}),
    # Leaving quarantine always goes through a fresh approval (no way round it through disabled).
    S.QUARANTINED: frozenset({S.AWAITING_APPROVAL}),
}
_ADVICE: dict[ModuleState, str] = {
    S.QUARANTINED: "release it for review first",
    S.DISCOVERED: "let the app validate it first",
    S.VALIDATED: "approve it first",
    S.AWAITING_APPROVAL: "approve it first",
    S.FAILED: "fix the problem shown on its card first",
}


class UserAction(StrEnum):
    """What a person can do to a module's state (the gallery's buttons, ``nexus modules``)."""

    VALIDATE = "validate"
    APPROVE = "approve"
    ENABLE = "enable"
    DISABLE = "disable"
    RELEASE = "release"


A = UserAction
# The state each action moves to; validating is a check, not a move.
ACTION_TARGETS: dict[UserAction, ModuleState | None] = {
    A.VALIDATE: None,
    A.APPROVE: S.ENABLED,
    A.ENABLE: S.ENABLED,
    A.DISABLE: S.DISABLED,
    A.RELEASE: S.AWAITING_APPROVAL,
}
# Per state, the actions a person may take; each target is in ALLOWED_TRANSITIONS (a test checks).
# Two depend on the files as well (``ModuleLifecycle.refusal``): enable needs the very files that
# were approved, and approving an enabled module only re-approves edits made under developer mode.
USER_ACTIONS: dict[ModuleState, frozenset[UserAction]] = {
    S.DISCOVERED: frozenset({A.VALIDATE}),
    S.VALIDATED: frozenset({A.VALIDATE, A.APPROVE}),
    S.AWAITING_APPROVAL: frozenset({A.VALIDATE, A.APPROVE, A.ENABLE}),
    S.ENABLED: frozenset({A.VALIDATE, A.APPROVE, A.DISABLE}),
    S.DISABLED: frozenset({A.VALIDATE, A.APPROVE, A.ENABLE}),
    S.FAILED: frozenset({A.VALIDATE, A.DISABLE}),
    S.QUARANTINED: frozenset({A.VALIDATE, A.RELEASE}),
}


def can_transition(current: ModuleState, target: ModuleState) -> bool:
    return target in ALLOWED_TRANSITIONS[current]


class ModuleLifecycle:
    def __init__(self, engine: Engine, *, developer_mode: bool = False) -> None:
        self.engine = engine
        self.developer_mode = developer_mode

    def _session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    # Reading ------------------------------------------------------------------------------

    def records(self, *, active_only: bool = False) -> list[ModuleRecord]:
        with self._session() as s:
            query = select(ModuleRecord)
            if active_only:
                query = query.where(col(ModuleRecord.active))
            return list(s.exec(query.order_by(col(ModuleRecord.name), col(ModuleRecord.id))))

    def get(self, name: str, version: str | None = None) -> ModuleRecord:
        """The active version of ``name``, or the given version."""
        with self._session() as s:
            return self._row(s, name, version)

    def history(self, name: str) -> list[ModuleEvent]:
        with self._session() as s:
            query = select(ModuleEvent).where(ModuleEvent.name == name)
            return list(s.exec(query.order_by(col(ModuleEvent.id))))

    def quarantine_story(self, name: str) -> list[ModuleEvent]:
        """Why the active version of ``name`` was quarantined, while it has not been approved since.

        The audit entries from its last time enabled up to the quarantine (its failures, then the
        quarantine with its reason), at most five; empty if it never was quarantined or was
        approved again since.  The approval dialog shows them, and a released bundled module is
        not approved silently while they stand.
        """
        version = self.get(name).version
        events = [event for event in self.history(name) if event.version == version]
        story: list[ModuleEvent] = []
        for event in events:
            if event.to_state == S.ENABLED:
                story = []
            elif story or event.to_state in (S.FAILED, S.QUARANTINED):
                story.append(event)
        if not any(event.to_state == S.QUARANTINED for event in story):
            return []
        last = max(i for i, event in enumerate(story) if event.to_state == S.QUARANTINED)
        return story[: last + 1][-5:]

    def actions(self, row: ModuleRecord) -> dict[str, str | None]:
        """Every user action for ``row``: None where it is allowed, else why it is refused."""
        return {action.value: self.refusal(row, action) for action in UserAction}

    def refusal(self, row: ModuleRecord, action: UserAction) -> str | None:
        """Why ``action`` is refused for ``row`` now (one sentence with what to do), or None."""
        state = ModuleState(row.state)
        target = ACTION_TARGETS[action]
        if action == A.APPROVE and _failed_validation(row):
            return (
                f"{row.name} failed validation ({row.reason.rstrip('.')}), so it cannot be approved; "
                "fix it and validate it again."
            )
        if action == A.RELEASE and state != S.QUARANTINED:
            return f"{row.name} is not quarantined, so there is nothing to release."
        if target is not None and target == state and (action != A.APPROVE or not self._edited(row)):
            return f"{row.name} is {state.value} already."
        if action not in USER_ACTIONS[state]:
            assert target is not None  # validating is allowed in every state
            return self._refusal(row, target)
        if action == A.ENABLE and not self._approved(row):
            return f"{row.name} {row.version} has not been approved as it is now; approve it first."
        return None

    def _check(self, row: ModuleRecord, action: UserAction) -> None:
        refusal = self.refusal(row, action)
        if refusal is not None:
            raise TransitionError(refusal)

    @staticmethod
    def _edited(row: ModuleRecord) -> bool:
        """Its files differ from the approved ones (kept enabled by developer mode)."""
        return row.approved_hash is not None and row.approved_hash != row.content_hash

    # Discovery ----------------------------------------------------------------------------

    def sync(self, found: Iterable[Discovered]) -> None:
        """Bring the rows in line with what discovery found on disk.

        New valid versions walk discovered -> validated -> awaiting_approval; a known version that
        no longer validates fails; one whose files changed loses its approval (``_refresh``);
        one whose folder is gone is removed.  Each name gets an active version if it has none.
        """
        found = list(found)
        by_path = {str(item.path): item for item in found}
        with self._session() as s:
            rows = {row.path: row for row in s.exec(select(ModuleRecord))}
            for path, row in rows.items():
                item = by_path.get(path)
                if item is None:
                    self._log(s, row, REMOVED, "its folder is gone")
                    s.delete(row)
                elif not item.ok:
                    self._failed_on_disk(s, row, item.error or "it is not valid")
                else:
                    self._refresh(s, row, item)
            for item in found:
                if item.ok and str(item.path) not in rows:
                    self._add(s, item)
            s.flush()
            self._ensure_active(s)
            s.commit()

    def _add(self, s: Session, item: Discovered) -> None:
        assert item.manifest is not None and item.content_hash is not None
        manifest = item.manifest
        if s.exec(
            select(ModuleRecord).where(
                ModuleRecord.name == manifest.name, ModuleRecord.version == manifest.version
            )
        ).first():
            return  # the same name and version from another folder: discovery already reported it
        row = ModuleRecord(
            name=manifest.name,
            version=manifest.version,
            origin=manifest.origin,
            source=item.source,
            path=str(item.path),
            state=S.DISCOVERED.value,
            content_hash=item.content_hash,
        )
        s.add(row)
        self._log(s, row, S.DISCOVERED, f"found in {item.path}", from_state=None)
        self._move(s, row, S.VALIDATED, "its manifest and files passed the checks")
        self._move(s, row, S.AWAITING_APPROVAL, "nothing runs until you approve it")

    def _failed_on_disk(self, s: Session, row: ModuleRecord, error: str) -> None:
        if row.state in (S.DISABLED, S.QUARANTINED, S.FAILED):
            row.reason = error  # the user already stopped it; keep their choice, show why it is broken
            s.add(row)
        else:
            self._move(s, row, S.FAILED, error)

    def _refresh(self, s: Session, row: ModuleRecord, item: Discovered) -> None:
        assert item.content_hash is not None and item.manifest is not None
        changed = item.content_hash != row.content_hash
        row.content_hash = item.content_hash
        s.add(row)
        runs = row.state == S.ENABLED or (row.state == S.FAILED and row.failure_count > 0)
        if runs and not self._approved(row):
            # Also catches files changed under developer mode once developer mode is off again.
            self._move(s, row, S.AWAITING_APPROVAL, "its files changed since you approved them")
        elif row.state == S.ENABLED and changed and row.approved_hash != row.content_hash:
            row.reason = "its files changed; developer mode keeps it enabled"
        if row.state == S.FAILED and row.failure_count == 0 and not _failed_validation(row):
            # Broken on disk earlier (not at run time), valid now: back on the normal path.
            # A failed validation is different: only a passing re-validation lifts it.
            self._move(s, row, S.VALIDATED, "its manifest and files pass the checks again")
            self._settle(s, row)

    def _exempt(self, row: ModuleRecord) -> bool:
        return self.developer_mode and row.source == "developer" and row.approved_hash is not None

    def _approved(self, row: ModuleRecord) -> bool:
        return row.approved_hash is not None and (row.approved_hash == row.content_hash or self._exempt(row))

    def _settle(self, s: Session, row: ModuleRecord) -> None:
        """From validated: straight to enabled when these exact files were approved, else wait."""
        if self._approved(row) and row.active:
            self._move(s, row, S.ENABLED, "these files were approved before")
        else:
            self._move(s, row, S.AWAITING_APPROVAL, "nothing runs until you approve it")

    def _ensure_active(self, s: Session) -> None:
        by_name: dict[str, list[ModuleRecord]] = defaultdict(list)
        for row in s.exec(select(ModuleRecord)):
            by_name[row.name].append(row)
        for rows in by_name.values():
            if not any(row.active for row in rows):
                newest = max(rows, key=lambda row: Version(row.version))
                newest.active = True
                s.add(newest)

    # User actions -------------------------------------------------------------------------

    def approve(
        self,
        name: str,
        *,
        expected_hash: str | None = None,
        access: list[str] | None = None,
        reason: str = "approved by you",
    ) -> ModuleRecord:
        """Approve the active version's current files and enable it.

        ``expected_hash`` is the hash the approval dialog showed; if the files changed since, the
        approval is refused so the user never approves something they did not see.  ``access`` is
        what the dialog listed (``ModuleManifest.requested_access()``), kept with the approval.
        """
        with self._session() as s:
            row = self._row(s, name)
            if expected_hash is not None and expected_hash != row.content_hash:
                raise TransitionError(
                    f"The files of {name} changed while you were reviewing them; "
                    "review it again before approving."
                )
            self._check(row, A.APPROVE)
            row.approved_hash = row.content_hash
            row.approved_at = utcnow()
            row.approved_access = list(access or [])
            row.failure_count = 0
            if row.state == S.ENABLED:
                # Re-approving edits made under developer mode: no state change, but audited.
                self._log(s, row, S.ENABLED.value, "approved again by you")
                row.reason = "approved again by you"
                s.add(row)
            self._move(s, row, S.ENABLED, reason)
            s.commit()
            return row

    def enable(self, name: str) -> ModuleRecord:
        """Turn the active version back on; only files the user approved may run."""
        with self._session() as s:
            row = self._row(s, name)
            self._check(row, A.ENABLE)
            self._move(s, row, S.ENABLED, "enabled by you")
            s.commit()
            return row

    def disable(self, name: str, reason: str = "disabled by you") -> ModuleRecord:
        with self._session() as s:
            row = self._row(s, name)
            self._check(row, A.DISABLE)
            self._move(s, row, S.DISABLED, reason)
            s.commit()
            return row

    def quarantine(self, name: str, reason: str) -> ModuleRecord:
        return self._set(name, S.QUARANTINED, reason)

    def ask_again(self, name: str, reason: str) -> ModuleRecord:
        """An enabled module that cannot run as approved (its approval did not accept what this
        PC cannot enforce) waits for a new approval; its files and data are unchanged."""
        return self._set(name, S.AWAITING_APPROVAL, reason)

    def release(self, name: str) -> ModuleRecord:
        """Take a module out of quarantine; it waits for a fresh approval.

        The old approval is dropped, so nothing (a passing validation, a rollback and back)
        turns it on again without the person seeing it anew.  Its data folder, secrets and
        audit log are untouched.
        """
        with self._session() as s:
            row = self._row(s, name)
            self._check(row, A.RELEASE)
            row.approved_hash = None
            self._move(s, row, S.AWAITING_APPROVAL, "released from quarantine for review")
            s.commit()
            return row

    def activate(self, name: str, version: str, reason: str = "") -> ModuleRecord:
        """Make ``version`` the one in use (after an install, or to roll back).

        The previous version is disabled and kept.  The new one is enabled at once if these exact
        files were approved before, and otherwise waits for approval.
        """
        with self._session() as s:
            target = self._row(s, name, version)
            for row in s.exec(
                select(ModuleRecord).where(ModuleRecord.name == name, col(ModuleRecord.active))
            ):
                if row.id == target.id:
                    continue
                row.active = False
                if row.state == S.ENABLED:
                    self._move(s, row, S.DISABLED, reason or f"replaced by version {version}")
                s.add(row)
            target.active = True
            s.add(target)
            if target.state == S.QUARANTINED:
                pass  # a quarantined version stays put aside even when chosen
            elif self._approved(target) and target.state != S.ENABLED:
                self._move(s, target, S.ENABLED, reason or "switched to this approved version")
            elif not self._approved(target) and target.state != S.AWAITING_APPROVAL:
                self._move(s, target, S.AWAITING_APPROVAL, reason or "this version needs your approval")
            s.commit()
            return target

    # Run-time reports ---------------------------------------------------------------------

    def record_failure(self, name: str, report: dict[str, Any]) -> ModuleRecord:
        """A hook call or the module's process failed; repeated failures quarantine it."""
        with self._session() as s:
            row = self._row(s, name)
            row.failure_count += 1
            row.last_report = report
            summary = str(report.get("error") or "it failed")
            if row.failure_count >= QUARANTINE_AFTER_FAILURES and row.state != S.QUARANTINED:
                self._move(
                    s, row, S.QUARANTINED, f"failed {row.failure_count} times in a row; last: {summary}"
                )
            elif row.state == S.ENABLED:
                self._move(s, row, S.FAILED, summary)
            s.add(row)
            s.commit()
            return row

    def record_validation(self, name: str, report: dict[str, Any]) -> ModuleRecord:
        """Store a validation report; a failed one blocks approval until a passing one lifts it.

        Failing: the module becomes ``failed`` with the report's reason (a quarantined one stays
        put).  Passing, after a failed validation: ``failed -> validated ->`` awaiting approval
        (or enabled when exactly these files were approved before).  Run-time failure counts are
        not touched: a validation is a check, not a crash.
        """
        with self._session() as s:
            row = self._row(s, name)
            was_blocked = _failed_validation(row)
            row.last_report = {**report, "kind": "validation"}
            s.add(row)
            if not report.get("ok"):
                reason = f"validation failed: {str(report.get('error') or 'a check failed').rstrip('.')}"
                if row.state in (S.QUARANTINED, S.FAILED):
                    row.reason = reason
                else:
                    self._move(s, row, S.FAILED, reason)
                row.failure_count = 0 if row.state == S.FAILED else row.failure_count
            elif row.state == S.FAILED and (was_blocked or row.failure_count == 0):
                self._move(s, row, S.VALIDATED, "it passed validation")
                self._settle(s, row)
            s.commit()
            return row

    def record_success(self, name: str, report: dict[str, Any]) -> ModuleRecord:
        with self._session() as s:
            row = self._row(s, name)
            row.failure_count = 0
            row.last_report = report
            if row.state == S.FAILED and self._approved(row):
                self._move(s, row, S.ENABLED, "it ran without errors again")
            s.add(row)
            s.commit()
            return row

    # Internals ----------------------------------------------------------------------------

    def _set(self, name: str, target: ModuleState, reason: str) -> ModuleRecord:
        with self._session() as s:
            row = self._row(s, name)
            self._move(s, row, target, reason)
            s.commit()
            return row

    @staticmethod
    def _row(s: Session, name: str, version: str | None = None) -> ModuleRecord:
        query = select(ModuleRecord).where(ModuleRecord.name == name)
        query = (
            query.where(ModuleRecord.version == version) if version else query.where(col(ModuleRecord.active))
        )
        row = s.exec(query).first()
        if row is None:
            which = f"{name} {version}" if version else name
            raise UnknownModuleError(
                f"No module {which} is installed; refresh the module list and try again."
            )
        return row

    @staticmethod
    def _refusal(row: ModuleRecord, target: ModuleState) -> str:
        current = ModuleState(row.state)
        advice = _ADVICE.get(current, "refresh the module list and try again")
        return f"{row.name} cannot go from {current.value} to {target.value}; {advice}."

    def _move(self, s: Session, row: ModuleRecord, target: ModuleState, reason: str) -> None:
        current = ModuleState(row.state)
        if current == target:
            return
        if not can_transition(current, target):
            raise TransitionError(self._refusal(row, target))
        if target == S.ENABLED and not self._approved(row):
            raise TransitionError(
                f"{row.name} {row.version} has not been approved as it is now; approve it first."
            )
        self._log(s, row, target, reason)
        row.state = target.value
        row.reason = reason
        row.updated_at = utcnow()
        s.add(row)

    @staticmethod
    def _log(s: Session, row: ModuleRecord, target: str, reason: str, *, from_state: str | None = "") -> None:
        previous = row.state if from_state == "" else from_state
        s.add(
            ModuleEvent(
                name=row.name, version=row.version, from_state=previous, to_state=target, reason=reason
            )
        )


def _failed_validation(row: ModuleRecord) -> bool:
    """The last report is a failed validation: only a passing one lifts it, even after an edit."""
    report = row.last_report or {}
    return report.get("kind") == "validation" and not report.get("ok")
