"""Photograph each view of the Dashboards page.

    QT_QPA_PLATFORM=offscreen .venv/bin/python docs/make_dashboard_screenshots.py [--db PATH]

``--db`` reads a real database (e.g. the app's, after a run of the loop: ``nexus.db`` in the data
folder); it is only read.  Without it, a throw-away database is filled with a sample day: the
loop's four tasks and their runs, a daily report, gate decisions, characters with policies and
usage, model calls and training jobs.  The Module panels view shows the bundled system-monitor,
started in a throw-away module host.  Writes docs/screenshot-dashboard-<view>.png (``--out`` for
another folder, ``--size`` for another window size, e.g. 900x600 to check a small window).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parent
VIEWS = ("scheduler", "gates", "budgets", "inference", "training", "panels")
REPORT = """# Daily improvement report, {day}

**Loop health:** healthy. The daily cycle finished in 6 min 12 s; nothing failed.

## What changed
- **router**: job 14 promoted (accuracy 0.912, up from 0.874; p50 latency 38 ms, was 41 ms).
- **persona:Vega**: job 15 rejected: consistency 0.71 is below the incumbent's 0.74.

## Since the last promotion (router, 3 days)
| signal | before | since |
|---|---|---|
| thumbs up per 100 replies | 31 | 36 |
| corrections per 100 replies | 4.1 | 2.9 |
| route confirmations per 100 replies | 12 | 15 |

## Eval sweep
Both active adapters still pass their gates.
"""


def sample_day(engine: Any, folder: Path) -> None:
    """A plausible day of the loop's life, written through the app's own tables."""
    from sqlmodel import Session

    from nexus_desktop.control.tables import (
        BudgetUsage,
        CharacterPolicy,
        LoopCycle,
        ModelCall,
        ScheduledTaskState,
        TaskRun,
        ToolUse,
    )
    from nexus_desktop.db.tables import Character
    from nexus_desktop.training.tables import AdapterEvent, GateDecisionRecord, TrainingJob, TrainingStep

    random.seed(7)
    now = datetime.now(UTC)
    rows: list[Any] = []
    tasks = {
        "daily-cycle": ("daily 04:00", 24 * 60, 372.0),
        "training-check": ("every 30m", 30, 4.0),
        "eval-sweep": ("daily 16:00", 24 * 60, 95.0),
        "impact-assessment": ("daily 12:00", 24 * 60, 1.2),
        "system-monitor.sample": ("every 300s", 5, 0.05),
    }
    for name, (cadence, minutes, seconds) in tasks.items():
        count = 0
        errors = 0
        last: TaskRun | None = None
        for back in range(24 * 60 - 1, -1, -minutes):
            outcome = random.choices(["ok", "error", "timeout", "skipped"], [94, 3, 1, 2])[0]
            if name == "daily-cycle":
                outcome = "ok"
            started = now - timedelta(minutes=back, seconds=random.random() * 20)
            took = seconds * (0.6 + random.random() * 0.8)
            detail = "trained router (job 14): promoted" if name == "training-check" and back == 300 else ""
            last = TaskRun(
                task=name,
                started_at=started,
                finished_at=started + timedelta(seconds=took),
                outcome=outcome,
                seconds=took,
                detail=detail or f"{name.replace('-', ' ')}: {outcome}",
            )
            rows.append(last)
            count += 1
            errors += outcome == "error"
        assert last is not None
        if cadence.startswith("daily"):
            hour = int(cadence.split()[1][:2])
            local = now.astimezone()
            due = local.replace(hour=hour, minute=0, second=0, microsecond=0)
            due += timedelta(days=1) if due <= local else timedelta()
        else:
            due = last.started_at + timedelta(minutes=minutes)
        rows.append(
            ScheduledTaskState(
                name=name,
                owner="system-monitor" if "." in name else "nexus",
                cadence=cadence,
                next_due=due,
                last_started=last.started_at,
                last_finished=last.finished_at,
                last_duration=last.seconds,
                last_outcome=last.outcome,
                run_count=count,
                error_count=errors,
                timeout_count=1 if name == "training-check" else 0,
            )
        )
    report = folder / "daily-report.md"
    report.write_text(REPORT.format(day=now.astimezone().date()), encoding="utf-8")
    rows.append(
        LoopCycle(
            kind="daily",
            started_at=now - timedelta(hours=3),
            finished_at=now - timedelta(hours=3) + timedelta(minutes=6, seconds=12),
            outcome="ok",
            changes=["router: promoted job 14"],
            report_path=str(report),
        )
    )
    decisions: list[GateDecisionRecord] = []
    for n in range(12):
        at = now - timedelta(days=12 - n, hours=random.random() * 6)
        incumbent = 0.80 + max(0, n - 1) * 0.008
        accuracy = incumbent + (0.012 + random.random() * 0.01 if n % 4 != 2 else -0.01)
        promote = accuracy > incumbent + 0.008
        numbers = {
            "candidate": {"accuracy": accuracy, "latency_ms_p50": 44 - n * 0.5, "consistency": 0.9},
            "incumbent": {"accuracy": incumbent, "latency_ms_p50": 45 - n * 0.45, "consistency": 0.9}
            if n
            else None,
            "base": {"accuracy": 0.78, "latency_ms_p50": 47.0, "consistency": 0.88},
            "parameters": {"min_gain": 0.008},
        }
        verdict = "beats the incumbent" if promote else "does not beat the incumbent by 0.008"
        decisions.append(
            GateDecisionRecord(
                model_id="router",
                job_id=n + 3,
                candidate=f"jobs/{n + 3}/adapter.gguf",
                policy="beats_incumbent",
                promote=promote,
                reason=f"accuracy {accuracy:.3f} {verdict} ({incumbent:.3f}).",
                numbers=numbers,
                at=at,
            )
        )
    with Session(engine) as s:
        s.add_all(rows)
        s.add_all(decisions)
        s.commit()
        for decision in decisions:
            if decision.promote:  # the gate promoted it: the Training page's "promoted"
                s.add(
                    AdapterEvent(
                        model_id="router",
                        action="promote",
                        adapter_path=decision.candidate,
                        job_id=decision.job_id,
                        decision_id=decision.id,
                        reason="The gate approved it.",
                    )
                )
        s.commit()
        characters = [Character(name=name, card={}) for name in ("Vega", "Orion", "Lyra")]
        characters.append(Character(name="Weather Wendy", card={}, origin="weather"))
        s.add_all(characters)
        s.commit()
        limits = [(40_000, 60, {"dice.roll": 600}), (25_000, 20, {}), (None, None, {}), (15_000, 30, {})]
        for character, (tokens, calls, cooldowns) in zip(characters, limits, strict=True):
            policy = {"daily_token_budget": tokens, "daily_tool_calls": calls, "tool_cooldowns": cooldowns}
            s.add(CharacterPolicy(character_id=character.id, policy={k: v for k, v in policy.items() if v}))
            for back in range(30):
                day = (now.astimezone() - timedelta(days=back)).date().isoformat()
                scale = (tokens or 20_000) * (0.3 + random.random() * 0.6)
                s.add(
                    BudgetUsage(
                        character=character.name,
                        day=day,
                        tokens=int(scale * (0.5 if back == 0 else 1)),
                        tool_calls=random.randint(0, (calls or 20) // 2),
                        replies=random.randint(5, 40),
                    )
                )
        s.add(ToolUse(character="Vega", tool="dice.roll", at=now - timedelta(minutes=4)))
        s.commit()
        for job in range(1, 5):
            total = 120
            s.add(
                TrainingJob(
                    id=job,
                    model_id="router" if job != 3 else "persona:Vega",
                    state="RUNNING" if job == 4 else "DONE",
                    job_dir="",
                    log_path="",
                    step=70 if job == 4 else total,
                    total=total,
                    created_at=now - timedelta(hours=(5 - job) * 5),
                )
            )
            s.commit()
            losses = []
            for step in range(1, (70 if job == 4 else total) + 1):
                loss = (1.9 - 0.15 * job) * math.exp(-step / 35) + 0.25 + random.random() * 0.05
                eval_loss = loss + 0.06 if step % 30 == 0 else None
                s.add(TrainingStep(job_id=job, step=step, loss=loss, eval_loss=eval_loss))
                losses.append(loss)
            record = s.get(TrainingJob, job)
            assert record is not None
            record.loss, record.best_loss = losses[-1], min(losses)
            s.add(record)
        s.commit()
        calls_rows = []
        series = (
            ("SmolLM2-135M", "local", 95, 0.08),
            ("router", "local", 210, 0.02),
            ("gpt-4o-mini", "remote", 60, 0.45),
        )
        for minute in range(24 * 60 - 1, -1, -3):
            for model, source, speed, first in series:
                busy = 1 + 0.3 * math.sin(minute / 90)
                tokens = random.randint(20, 160) if model != "router" else 4
                ttft = first * busy * (0.8 + random.random() * 0.5)
                calls_rows.append(
                    ModelCall(
                        at=now - timedelta(minutes=minute, seconds=random.random() * 60),
                        model=model,
                        source=source,
                        task_type="routing" if model == "router" else "chat",
                        service="router" if model == "router" else "chat",
                        tokens_in=400,
                        tokens_out=tokens,
                        first_token_seconds=ttft,
                        seconds=ttft + tokens / (speed / busy * (0.85 + random.random() * 0.3)),
                        ok=random.random() > 0.01,
                    )
                )
        calls_rows.sort(key=lambda call: call.at)
        s.add_all(calls_rows)
        s.commit()


async def start_system_monitor(folder: Path) -> Any:
    """The bundled system-monitor module in its own process, on a throw-away module host."""
    from nexus_desktop.db.store import Store
    from nexus_desktop.modules.registry import ModuleHost
    from nexus_desktop.modules.runtime.supervisor import ModuleSupervisor
    from nexus_desktop.modules.service import REPO_PLUGINS_DIR
    from nexus_desktop.secrets import SecretStore

    store = Store(folder / "modules.db")
    host = ModuleHost(store.engine, bundled_dir=REPO_PLUGINS_DIR, user_dir=folder / "user", environ={})
    host.refresh()
    host.approve(host.review("system-monitor"))
    supervisor = ModuleSupervisor(host, SecretStore(f"nexus-shots-{uuid.uuid4().hex[:8]}", timeout=5))
    await supervisor.start_module("system-monitor")
    return supervisor


async def wait_until(predicate: Any, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the dashboard did not fill in time")
        await asyncio.sleep(0.1)


async def photograph(page: Any, engine: Any, supervisor: Any, out: Path, suffix: str) -> None:
    page.bind(engine, lambda: supervisor)
    page.show()
    for key in VIEWS:
        page.show_view(key)
        view = page.view(key)
        if key != "panels":
            await wait_until(lambda view=view: view.snapshots > 0)
        if key == "inference":
            await wait_until(lambda view=view: view.table.rowCount() > 0)
        if key == "panels" and supervisor is not None:
            await wait_until(lambda view=view: any(card.values or card.text for card in view.cards.values()))
        await asyncio.sleep(1.0)
        path = out / f"screenshot-dashboard-{key}{suffix}.png"
        page.grab().save(str(path))
        print(f"saved {path}", flush=True)
    page.hide()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", type=Path, help="a database to read (default: a sample day)")
    parser.add_argument("--out", type=Path, default=DOCS, help="where the PNGs go (default: docs/)")
    parser.add_argument("--size", default="1280x800", help="window size, WIDTHxHEIGHT")
    parser.add_argument("--suffix", default="", help="added to each file name, e.g. -small")
    parser.add_argument("--no-modules", action="store_true", help="do not start the system-monitor module")
    args = parser.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    folder = Path(tempfile.mkdtemp(prefix="nexus-dash-shots-"))
    os.environ.setdefault("NEXUS_DATA_DIR", str(folder / "data"))

    import qasync
    from PySide6.QtWidgets import QApplication

    from nexus_desktop.db.store import Store
    from nexus_desktop.ui.dashboards.page import DashboardsPage
    from nexus_desktop.ui.theme import apply_theme

    store = Store(args.db) if args.db else Store(folder / "sample.db")
    if not args.db:
        sample_day(store.engine, folder)
    app = QApplication(sys.argv)
    apply_theme(app)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    width, height = (int(part) for part in args.size.lower().split("x"))
    page = DashboardsPage()
    page.resize(width, height)
    args.out.mkdir(parents=True, exist_ok=True)

    async def run() -> None:
        supervisor = None if args.no_modules else await start_system_monitor(folder)
        try:
            await photograph(page, store.engine, supervisor, args.out, args.suffix)
        finally:
            if supervisor is not None:
                await supervisor.aclose()

    with loop:
        loop.run_until_complete(run())
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
