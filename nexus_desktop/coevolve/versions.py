"""Template versions made by co-evolution, their trials, and the success rate of every version.

Blocking (SQLite): callers run these on a worker thread.  A version's success rate counts the
builds that used it and finished (``module_build.template_version``; passed = awaiting approval,
failed = failed; refused requests never reached a model and do not count).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

from sqlalchemy import Engine, func
from sqlmodel import col, select

from nexus_desktop.builder import template as templates
from nexus_desktop.builder.tables import ModuleBuild, ModuleBuildRound
from nexus_desktop.coevolve.tables import ModuleTemplate
from nexus_desktop.db.engine import session

PASSED, FAILED = "awaiting_approval", "failed"


@dataclass(frozen=True)
class VersionRate:
    version: str
    ok: int
    total: int
    kept: bool
    """Built in, or kept by co-evolution (a candidate that lost its trial is not)."""

    @property
    def rate(self) -> float:
        return self.ok / self.total if self.total else 0.0


def as_template(row: ModuleTemplate) -> templates.Template:
    return templates.Template(
        version=row.version,
        plan_system=row.plan_system,
        generate_system=row.generate_system,
        skeleton=row.skeleton,
        rules=row.rules,
    )


def candidate_from(parent: templates.Template, version: str, hint: str) -> templates.Template:
    """``parent`` with ``hint`` added to its rules (braces doubled: the rules are a format string)."""
    advice = hint.replace("{", "{{").replace("}", "}}")
    return replace(parent, version=version, rules=f"{parent.rules.rstrip()}\n- {advice}\n")


def load(engine: Engine) -> list[ModuleTemplate]:
    """Every stored version, oldest first; each is registered with the builder's templates so
    builds (and stored builds' views) can name it."""
    with session(engine) as s:
        rows = list(s.exec(select(ModuleTemplate).order_by(col(ModuleTemplate.created_at))).all())
    for row in rows:
        templates.register_template(as_template(row))
    return rows


def current(rows: list[ModuleTemplate]) -> str:
    """The version new builds use: the newest kept one, else the builder's own."""
    kept = [row.version for row in rows if row.kept]
    return kept[-1] if kept else templates.CURRENT_TEMPLATE


def next_version(rows: list[ModuleTemplate]) -> str:
    known = [*templates.template_versions(), *(row.version for row in rows)]
    numbers = [int(version) for version in known if version.isdigit()]
    return str(max(numbers, default=0) + 1)


def save(engine: Engine, row: ModuleTemplate) -> None:
    with session(engine) as s:
        s.merge(row)
        s.commit()


def rates(engine: Engine) -> list[VersionRate]:
    """Each version's finished builds and how many passed, the built-in versions included."""
    with session(engine) as s:
        counted = s.exec(
            select(ModuleBuild.template_version, ModuleBuild.status, func.count())
            .where(col(ModuleBuild.status).in_([PASSED, FAILED]))
            .group_by(ModuleBuild.template_version, ModuleBuild.status)
        ).all()
        stored = {row.version: row.kept for row in s.exec(select(ModuleTemplate)).all()}
    ok: dict[str, int] = {}
    total: dict[str, int] = {}
    for version, status, number in counted:
        total[version] = total.get(version, 0) + number
        ok[version] = ok.get(version, 0) + (number if status == PASSED else 0)
    versions = sorted(set(total) | set(stored) | set(templates.template_versions()), key=_order)
    return [VersionRate(v, ok.get(v, 0), total.get(v, 0), stored.get(v, True)) for v in versions]


def summary(engine: Engine) -> str:
    """One line for ``nexus scheduler status``: each version's success rate and the current one."""
    with session(engine) as s:
        rows = list(s.exec(select(ModuleTemplate).order_by(col(ModuleTemplate.created_at))).all())
    shown = []
    for rate in rates(engine):
        figure = f"{rate.rate:.0%} of {rate.total} builds" if rate.total else "no builds yet"
        shown.append(f"v{rate.version} {figure}" + ("" if rate.kept else " (not kept)"))
    return f"Module templates: {', '.join(shown)}; new builds use v{current(rows)}."


def failed_builds(engine: Engine, limit: int = 50) -> list[tuple[str, str]]:
    """(request, last error) of the newest failed builds: the build's reason and what its last
    round's answer or tests said."""
    with session(engine) as s:
        builds = s.exec(
            select(ModuleBuild)
            .where(ModuleBuild.status == FAILED)
            .order_by(col(ModuleBuild.id).desc())
            .limit(limit)
        ).all()
        found: list[tuple[str, str]] = []
        for build in builds:
            last = s.exec(
                select(ModuleBuildRound)
                .where(ModuleBuildRound.build_id == build.id)
                .order_by(col(ModuleBuildRound.round_no).desc())
            ).first()
            parts = [build.reason]
            if last is not None:
                parts += [last.parse_error, _failing_checks(last.test_report)]
            found.append((build.description, "\n".join(part for part in parts if part)))
    return found


def _failing_checks(report: dict[str, object] | None) -> str:
    if not report:
        return ""
    checks = report.get("checks")
    failing = (
        [c for c in checks if isinstance(c, dict) and not c.get("ok")] if isinstance(checks, list) else []
    )
    return json.dumps([[c.get("problems"), c.get("output")] for c in failing], default=str)[:20000]


def _order(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (10**9, version)
