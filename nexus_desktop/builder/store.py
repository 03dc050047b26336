"""The build records: one row per build, one per round, read back as plain views.

Blocking (SQLite); ``BuildService`` calls these on a worker thread.  Rounds are never deleted:
a failed build keeps every prompt, answer and test report for inspection and training data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Engine
from sqlmodel import col, select

from nexus_desktop.builder.tables import ModuleBuild, ModuleBuildRound
from nexus_desktop.db.engine import session
from nexus_desktop.db.tables import utcnow

BuildStatus = Literal[
    "refused", "planning", "generating", "validating", "repairing", "awaiting_approval", "failed"
]
FINISHED: frozenset[str] = frozenset({"refused", "awaiting_approval", "failed"})


@dataclass(frozen=True)
class RoundSummary:
    round_no: int
    kind: str
    passed: bool
    error: str
    """Why it failed (the parse error or the first failing check); empty when it passed."""
    seconds: float | None


@dataclass(frozen=True)
class BuildView:
    id: int
    description: str
    status: str
    reason: str
    module_name: str
    template_version: str
    source_name: str
    decision_id: int | None
    chat_id: int | None
    plan: str
    staging_path: str
    created_at: datetime
    finished_at: datetime | None
    rounds: list[RoundSummary]

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def seconds(self) -> float | None:
        return (self.finished_at - self.created_at).total_seconds() if self.finished_at else None

    @property
    def repair_rounds(self) -> int:
        return max(0, len(self.rounds) - 1)


@dataclass(frozen=True)
class RoundView:
    build_id: int
    round_no: int
    kind: str
    prompt: list[dict[str, Any]]
    """The messages sent ({"role", "content"} each)."""
    output: str
    files: list[dict[str, Any]]
    parse_error: str
    diff: str
    test_report: dict[str, Any] | None
    passed: bool


def round_error(row: ModuleBuildRound) -> str:
    if row.passed:
        return ""
    if row.parse_error:
        return row.parse_error
    report = row.test_report or {}
    return str(report.get("error") or "it failed validation")


class BuildStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, description: str, status: str, template_version: str, **fields: Any) -> int:
        with session(self.engine) as s:
            row = ModuleBuild(
                description=description, status=status, template_version=template_version, **fields
            )
            if status in FINISHED:
                row.finished_at = utcnow()
            s.add(row)
            s.commit()
            assert row.id is not None
            return row.id

    def update(self, build_id: int, **fields: Any) -> None:
        with session(self.engine) as s:
            row = s.get(ModuleBuild, build_id)
            if row is None:
                raise KeyError(f"No build {build_id}.")
            for key, value in fields.items():
                setattr(row, key, value)
            row.updated_at = utcnow()
            if fields.get("status") in FINISHED:
                row.finished_at = row.updated_at
            s.add(row)
            s.commit()

    def add_round(self, build_id: int, round_no: int, kind: str, prompt: list[dict[str, Any]]) -> None:
        with session(self.engine) as s:
            s.add(ModuleBuildRound(build_id=build_id, round_no=round_no, kind=kind, prompt=prompt))
            s.commit()

    def finish_round(self, build_id: int, round_no: int, **fields: Any) -> None:
        with session(self.engine) as s:
            row = self._round(s, build_id, round_no)
            for key, value in fields.items():
                setattr(row, key, value)
            row.finished_at = utcnow()
            s.add(row)
            s.commit()

    def get(self, build_id: int) -> BuildView:
        with session(self.engine) as s:
            row = s.get(ModuleBuild, build_id)
            if row is None:
                raise KeyError(f"There is no build {build_id}; list the builds to see their numbers.")
            return self._view(s, row)

    def list(self, limit: int = 200) -> list[BuildView]:
        with session(self.engine) as s:
            rows = s.exec(select(ModuleBuild).order_by(col(ModuleBuild.id).desc()).limit(limit)).all()
            return [self._view(s, row) for row in rows]

    def running_names(self) -> set[str]:
        """Names of the builds still running (a new build takes another; a finished build's
        module, if it installed one, is in the modules list)."""
        statement = select(ModuleBuild.module_name).where(col(ModuleBuild.status).not_in(FINISHED))
        with session(self.engine) as s:
            return {name for name in s.exec(statement).all() if name}

    def round(self, build_id: int, round_no: int) -> RoundView:
        with session(self.engine) as s:
            row = self._round(s, build_id, round_no)
            return RoundView(
                build_id=row.build_id,
                round_no=row.round_no,
                kind=row.kind,
                prompt=list(row.prompt),
                output=row.output,
                files=list(row.files),
                parse_error=row.parse_error,
                diff=row.diff,
                test_report=row.test_report,
                passed=row.passed,
            )

    def _round(self, s: Any, build_id: int, round_no: int) -> ModuleBuildRound:
        statement = select(ModuleBuildRound).where(
            ModuleBuildRound.build_id == build_id, ModuleBuildRound.round_no == round_no
        )
        row = s.exec(statement).first()
        if row is None:
            raise KeyError(f"Build {build_id} has no round {round_no}.")
        return row  # type: ignore[no-any-return]

    def _view(self, s: Any, row: ModuleBuild) -> BuildView:
        assert row.id is not None
        statement = (
            select(ModuleBuildRound)
            .where(ModuleBuildRound.build_id == row.id)
            .order_by(col(ModuleBuildRound.round_no))
        )
        rounds = [
            RoundSummary(
                r.round_no,
                r.kind,
                r.passed,
                round_error(r),
                (r.finished_at - r.started_at).total_seconds() if r.finished_at else None,
            )
            for r in s.exec(statement).all()
        ]
        return BuildView(
            id=row.id,
            description=row.description,
            status=row.status,
            reason=row.reason,
            module_name=row.module_name,
            template_version=row.template_version,
            source_name=row.source_name,
            decision_id=row.decision_id,
            chat_id=row.chat_id,
            plan=row.plan,
            staging_path=row.staging_path,
            created_at=row.created_at,
            finished_at=row.finished_at,
            rounds=rounds,
        )
