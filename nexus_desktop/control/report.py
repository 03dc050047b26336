"""The daily improvement report: one Markdown file per day in ``<data>/reports``.

Written by the daily cycle (``daily-YYYY-MM-DD.md``, local date; a second cycle the same day
replaces it), read by ``nexus report daily`` and the Dashboards page.  Written atomically: a
reader never sees half a report.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from nexus_desktop.control.health import LoopHealth
from nexus_desktop.control.ledger import EVAL_SWEEP, IMPACT, KIND_WORDS, TRAINING_CHECK, as_utc
from nexus_desktop.control.tables import TaskRun

DAY = timedelta(days=1)
PREFIX = "daily-"
HOW_TO_MAKE_ONE = "nexus scheduler run daily-cycle"


@dataclass(frozen=True)
class DailyReport:
    cycle_id: int
    finished_at: datetime
    outcome: str
    changes: tuple[str, ...]
    problems: tuple[str, ...]
    steps: tuple[Mapping[str, Any], ...]
    """Each step's ``StepResult`` as a dict (kind, outcome, summary, notes, detail...)."""
    health: LoopHealth
    zoo: tuple[Mapping[str, Any], ...] = ()
    tasks: tuple[Mapping[str, Any], ...] = field(default_factory=tuple)


def reports_dir(data_dir: Path) -> Path:
    return data_dir / "reports"


def report_path(folder: Path, moment: datetime) -> Path:
    return folder / f"{PREFIX}{as_utc(moment).astimezone():%Y-%m-%d}.md"


def write_daily_report(folder: Path, report: DailyReport) -> Path:
    path = report_path(folder, report.finished_at)
    folder.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(render(report), encoding="utf-8")
    os.replace(temporary, path)
    return path


def latest_daily_report(folder: Path) -> Path | None:
    """The newest report (file names sort by date)."""
    if not folder.is_dir():
        return None
    found = sorted(p for p in folder.glob(f"{PREFIX}*.md") if p.is_file())
    return found[-1] if found else None


def task_counts(engine: Engine, *, since: datetime) -> tuple[dict[str, Any], ...]:
    """Runs per scheduled task since ``since``, by outcome (the report's scheduler table)."""
    with Session(engine) as s:
        query = select(TaskRun.task, TaskRun.outcome).where(col(TaskRun.started_at) >= as_utc(since))
        counts: dict[str, Counter[str]] = {}
        for task, outcome in s.exec(query):
            counts.setdefault(task, Counter())[outcome] += 1
    shown = ("ok", "error", "timeout", "skipped")  # a run still going is counted when it ends
    return tuple(
        {"task": task, **{k: counter[k] for k in shown}}
        for task, counter in sorted(counts.items())
        if any(counter[k] for k in shown)
    )


# Rendering -------------------------------------------------------------------------------------


def render(report: DailyReport) -> str:
    local = as_utc(report.finished_at).astimezone()
    lines = [
        f"# Daily improvement report, {local:%Y-%m-%d}",
        "",
        f"Cycle {report.cycle_id} finished {local:%H:%M} ({report.outcome}). "
        f"Loop health: **{report.health.label}**. {report.health.reason}",
        "",
        "## What changed",
        "",
        *(_bullets(report.changes) or ["Nothing changed."]),
    ]
    if report.problems:
        lines += ["", "## Problems", "", *_bullets(report.problems)]
    steps = {str(step.get("kind")): step for step in report.steps}
    lines += _training(steps.get(TRAINING_CHECK), report.zoo)
    lines += _sweep(steps.get(EVAL_SWEEP))
    lines += _impact(steps.get(IMPACT))
    lines += _tasks(report.tasks)
    return "\n".join(lines).rstrip() + "\n"


def _step_head(title: str, step: Mapping[str, Any] | None) -> list[str]:
    if step is None:
        return ["", f"## {title}", "", "Did not run in this cycle."]
    return ["", f"## {title}", "", f"{step.get('outcome', '?')}: {step.get('summary', '')}"]


def _training(step: Mapping[str, Any] | None, zoo: Iterable[Mapping[str, Any]]) -> list[str]:
    lines = _step_head("Training check", step)
    if step is not None:
        lines += _notes(step)
    rows = [[str(z.get("name")), f"{z.get('new')}/{z.get('threshold')}", str(z.get("active"))] for z in zoo]
    if rows:
        lines += ["", *_table(["Model", "New examples / threshold", "Answers with"], rows)]
    return lines


def _sweep(step: Mapping[str, Any] | None) -> list[str]:
    lines = _step_head(KIND_WORDS[EVAL_SWEEP].capitalize(), step)
    if step is None:
        return lines
    lines += _notes(step)
    rows = []
    for model, entry in (step.get("detail", {}).get("models") or {}).items():
        if "error" in entry:
            rows.append([model, "-", "-", "-", f"benchmark failed: {entry['error']}"])
            continue
        metric = str((entry.get("parameters") or {}).get("metric") or "accuracy")
        now = (entry.get("candidate") or {}).get(metric)
        base = (entry.get("base") or {}).get(metric)
        result = {"rolled_back": "rolled back", "kept": "below its gate, kept (by hand)"}.get(
            str(entry.get("action")), "passes" if entry.get("passes") else "below its gate"
        )
        rows.append([model, f"{metric} {_num(now)}", _num(base), str(entry.get("policy")), result])
    if rows:
        lines += ["", *_table(["Model", "Adapter now", "Base model", "Gate", "Result"], rows)]
    return lines


SIGNAL_ROWS = (
    ("replies", "Replies"),
    ("thumbs_up", "Thumbs up per 100 replies"),
    ("thumbs_down", "Thumbs down per 100 replies"),
    ("corrections", "Corrections per 100 replies"),
    ("route_confirmations", "Route confirmations per 100 replies"),
    ("route_corrections", "Route corrections per 100 replies"),
)


def _impact(step: Mapping[str, Any] | None) -> list[str]:
    lines = _step_head("Impact of promotions", step)
    if step is None:
        return lines
    for item in step.get("detail", {}).get("promotions") or []:
        when = str(item.get("promoted_at", ""))[:16].replace("T", " ")
        job = f", job {item['job_id']}" if item.get("job_id") is not None else ""
        how = "by hand" if item.get("by_hand") else "by the gate"
        state = "still active" if item.get("still_active") else "since replaced or rolled back"
        lines += ["", f"### {item.get('name')}{job}: promoted {how} {when} UTC ({state})", ""]
        gate = item.get("gate")
        if gate:
            lines += [f"Gate ({gate.get('policy')}): {gate.get('reason')}", ""]
            lines += _table(["Metric", "Candidate", "Incumbent", "Base", "Bag of words"], _gate_rows(gate))
        else:
            lines += ["No gate decision on record (promoted by hand)."]
        days = item.get("window_days", 0)
        lines += ["", f"Live signals ({item.get('scope')}), {days:g} days before and since:", ""]
        before, since = item.get("before") or {}, item.get("since") or {}
        before_rates, since_rates = item.get("before_rates") or {}, item.get("since_rates") or {}
        rows = []
        for key, title in SIGNAL_ROWS:
            if key == "replies":
                rows.append([title, str(before.get(key, 0)), str(since.get(key, 0))])
            else:
                rows.append([title, _num(before_rates.get(key)), _num(since_rates.get(key))])
        lines += _table(["Signal", "Before", "Since"], rows)
    return lines


def _gate_rows(gate: Mapping[str, Any]) -> list[list[str]]:
    candidate = gate.get("candidate") or {}
    incumbent = gate.get("incumbent") or {}
    base = gate.get("base") or {}
    baseline = gate.get("baseline") or {}  # the lexical baseline; older decisions have none
    metrics = sorted(set(candidate) | set(incumbent) | set(base))
    return [
        [m, _num(candidate.get(m)), _num(incumbent.get(m)), _num(base.get(m)), _num(baseline.get(m))]
        for m in metrics
        if m != "items"
    ]


def _tasks(tasks: Iterable[Mapping[str, Any]]) -> list[str]:
    rows = [
        [
            str(t["task"]),
            str(t.get("ok", 0)),
            str(t.get("error", 0)),
            str(t.get("timeout", 0)),
            str(t.get("skipped", 0)),
        ]
        for t in tasks
    ]
    lines = ["", "## Scheduled tasks, last 24 hours", ""]
    if not rows:
        return [*lines, "No scheduled task ran."]
    return [*lines, *_table(["Task", "OK", "Errors", "Timeouts", "Skipped"], rows)]


def _notes(step: Mapping[str, Any]) -> list[str]:
    found = list(step.get("notes") or ()) + list(step.get("problems") or ())
    return ["", *_bullets(found)] if found else []


def _bullets(items: Iterable[str]) -> list[str]:
    return [f"- {' '.join(str(item).split())}" for item in items]


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    def cells(values: list[str]) -> str:
        return "| " + " | ".join(" ".join(v.split()).replace("|", "\\|") for v in values) + " |"

    return [cells(header), "|" + "---|" * len(header), *(cells(row) for row in rows)]


def _num(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)
