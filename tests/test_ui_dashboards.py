"""The Dashboards page over a real SQLite database: each view shows the rows the app wrote (task
runs, gate decisions, budgets, model calls, training steps), and the module panels come from real
module processes, a failing one showing its error without breaking the page."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shiboken6
from sqlalchemy import Engine
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
from nexus_desktop.db.store import Store
from nexus_desktop.training.tables import GateDecisionRecord, TrainingJob, TrainingStep
from tests import ui_support
from tests.ui_support import LONG, run

qt_loop = ui_support.qt_loop
NOW = datetime.now(UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path / "nexus.db")
    yield store
    store.close()


def add(engine: Engine, *rows: Any) -> None:
    with Session(engine) as s:
        s.add_all(rows)
        s.commit()


@pytest.fixture
def page(qtbot: Any, qt_loop: asyncio.AbstractEventLoop, store: Store) -> Iterator[Any]:
    from nexus_desktop.ui.dashboards.page import DashboardsPage
    from nexus_desktop.ui.ops import wait_for_running_ops

    page = DashboardsPage()
    qtbot.addWidget(page)
    page.resize(1280, 800)
    page.set_interval(100)
    page.bind(store.engine)
    yield page
    if shiboken6.isValid(page):
        page.hide()  # stops the refresh timers
    run(qtbot, wait_for_running_ops())


def open_view(qtbot: Any, page: Any, key: str) -> Any:
    page.show_view(key)
    page.show()
    view = page.view(key)
    qtbot.waitUntil(lambda: view.snapshots > 0, timeout=LONG)
    return view


def cells(table: Any) -> list[list[str]]:
    return [
        [table.item(row, column).text() for column in range(table.columnCount())]
        for row in range(table.rowCount())
    ]


def click_at(qtbot: Any, plot: Any, x: float, y: float) -> None:
    """A real mouse click where the data point (x, y) is drawn."""
    from PySide6.QtCore import QPointF, Qt

    scene = plot.getPlotItem().vb.mapViewToScene(QPointF(x, y))
    qtbot.mouseClick(plot.viewport(), Qt.MouseButton.LeftButton, pos=plot.mapFromScene(scene))


def test_the_scheduler_view_shows_the_task_grid_the_runs_by_outcome_the_health_and_the_report(
    qtbot: Any, page: Any, store: Store, tmp_path: Path
) -> None:
    from nexus_desktop.control.health import loop_health

    now = datetime.now(UTC)  # the grid counts "next due" down from the real clock: not import time
    report = tmp_path / "report.md"
    report.write_text("# Daily improvement report\n\nThe router was **promoted**.\n", encoding="utf-8")
    add(
        store.engine,
        ScheduledTaskState(
            name="training_check",
            cadence="every 30m",
            next_due=now + timedelta(minutes=12),
            last_started=now - timedelta(minutes=18),
            last_duration=2.5,
            last_outcome="error",
            last_error="the trainer crashed",
            run_count=7,
            error_count=2,
            timeout_count=1,
            skipped_count=1,
        ),
        ScheduledTaskState(name="eval_sweep", cadence="daily 04:00", state="not_implemented"),
        *[
            TaskRun(task="training_check", started_at=now - timedelta(minutes=m), outcome=o, seconds=1.5)
            for m, o in ((50, "ok"), (40, "error"), (30, "timeout"), (20, "skipped"))
        ],
        LoopCycle(
            kind="daily",
            started_at=now - timedelta(hours=1),
            finished_at=now - timedelta(minutes=55),
            outcome="ok",
            report_path=str(report),
        ),
    )
    view = open_view(qtbot, page, "scheduler")
    qtbot.waitUntil(lambda: view.report_box.content.toPlainText() != "", timeout=LONG)

    grid = cells(view.table)
    assert [row[0] for row in grid] == ["eval_sweep", "training_check"]
    eval_sweep, check = grid
    assert eval_sweep[1:4] == ["not implemented", "daily 04:00", "—"]
    assert check[1:3] == ["idle", "every 30m"] and check[3].startswith("in 1")
    assert check[4].endswith("ago · error") and view.table.item(1, 4).toolTip() == "the trainer crashed"
    assert check[5:] == ["2.5 s", "7", "2", "1", "1"]

    dots = view.dots
    assert len(dots.x) == 4 and set(dots.y) == {1.0}  # training_check is the grid's second row
    assert [polygon.size() for polygon in dots._polygons] == [1, 1, 1, 1, 0]  # ok, error, timeout, skipped
    assert dots.x[0] == pytest.approx((now - timedelta(minutes=50)).timestamp())

    health = loop_health(store.engine)
    assert view.health_pill.text() == health.label.upper()
    assert view.health_reason.text() == health.reason
    assert "Daily improvement report" in view.report.toPlainText()
    assert "promoted" in view.report.toPlainText()

    click_at(qtbot, view.plot, dots.x[1], dots.y[1])
    assert (
        view.run_detail.text().startswith("training_check · ") and "error in 1.5 s" in view.run_detail.text()
    )


def test_an_empty_scheduler_says_what_will_fill_it(qtbot: Any, page: Any) -> None:
    view = open_view(qtbot, page, "scheduler")
    assert view.runs_box.empty and "the scheduler starts with the app" in view.runs_box.label.text()
    assert view.grid.empty and view.report_box.empty


def gate(job_id: int, at: datetime, promote: bool, candidate: float, incumbent: float | None) -> Any:
    numbers = {
        "candidate": {"accuracy": candidate, "latency_ms_p50": 40.0},
        "incumbent": {"accuracy": incumbent, "latency_ms_p50": 42.0} if incumbent is not None else None,
        "base": {"accuracy": 0.5, "latency_ms_p50": 45.0},
        "parameters": {"min_gain": 0.01},
    }
    reason = f"candidate {candidate} against incumbent {incumbent}"
    return GateDecisionRecord(
        model_id="router",
        job_id=job_id,
        candidate=f"/jobs/{job_id}/adapter.gguf",
        policy="beats_incumbent",
        promote=promote,
        reason=reason,
        numbers=numbers,
        at=at,
    )


def test_the_gate_view_plots_candidate_incumbent_and_base_and_a_clicked_marker_shows_its_numbers(
    qtbot: Any, page: Any, store: Store
) -> None:
    add(
        store.engine,
        gate(1, NOW - timedelta(days=2), True, 0.71, None),
        gate(2, NOW - timedelta(days=1), False, 0.69, 0.71),
        gate(3, NOW - timedelta(hours=2), True, 0.78, 0.71),
    )
    view = open_view(qtbot, page, "gates")
    assert view.model_picker.currentText() == "router"
    view.metric_picker.setCurrentText("accuracy")
    x, candidate = view.curves["candidate"].getData()
    assert list(candidate) == [0.71, 0.69, 0.78]
    assert x.dtype == np.float64 and x[0] == pytest.approx((NOW - timedelta(days=2)).timestamp())
    _, incumbent = view.curves["incumbent"].getData()
    assert np.isnan(incumbent[0]) and list(incumbent[1:]) == [0.71, 0.71]
    assert list(view.curves["base"].getData()[1]) == [0.5, 0.5, 0.5]
    assert [view.markers.data["symbol"][i] for i in range(3)] == ["o", "x", "o"]  # approved, rejected
    assert "job 3" in view.decision.title.text()  # the latest is shown first

    click_at(qtbot, view.plot, x[1], candidate[1])
    assert view.decision.verdict.text() == "REJECTED"
    assert "job 2" in view.decision.title.text()
    assert view.decision.reason.text() == "candidate 0.69 against incumbent 0.71"
    table = view.decision.table
    row = next(r for r in range(table.rowCount()) if table.item(r, 0).text().startswith("accuracy"))
    assert [table.item(row, c).text() for c in (1, 2, 3)] == ["0.690", "0.710", "0.500"]


def test_the_budgets_view_shows_use_against_the_policy_limits_over_30_days_and_the_cooldowns(
    qtbot: Any, page: Any, store: Store
) -> None:
    vega = store.add_character("Vega", {})
    store.add_character("Orion", {})  # no usage, no limits: not listed
    today = datetime.now().astimezone().date()
    policy = {"daily_token_budget": 1000, "daily_tool_calls": 10, "tool_cooldowns": {"dice.roll": 3600}}
    add(
        store.engine,
        CharacterPolicy(character_id=vega.id, policy=policy),
        BudgetUsage(character="Vega", day=today.isoformat(), tokens=250, tool_calls=3, replies=2),
        BudgetUsage(character="Vega", day=(today - timedelta(days=5)).isoformat(), tokens=900, tool_calls=9),
        # Now, not the module's NOW: a long test session must not drift past "10m ago".
        ToolUse(character="Vega", tool="dice.roll", at=datetime.now(UTC) - timedelta(minutes=10)),
    )
    view = open_view(qtbot, page, "budgets")
    assert cells(view.table) == [["Vega", "250 / 1,000 (25%)", "3 / 10 (30%)", "2", "1,150", "12"]]
    tokens = view.token_bars
    assert len(tokens.heights) == 30 and tokens.heights[-1] == 250 and tokens.heights[-6] == 900
    assert sum(tokens.heights) == 1150
    assert tokens.limit.isVisible() and tokens.limit.value() == 1000
    assert view.tool_bars.heights[-1] == 3 and view.tool_bars.limit.value() == 10
    assert view.chart_title.text() == "Vega: last 30 days, 1,000 tokens a day and 10 tool calls a day"
    [cooldown] = cells(view.cooldowns)
    assert cooldown[:3] == ["Vega", "dice.roll", "10m ago"] and cooldown[3].startswith("in 49m")


def test_the_inference_view_plots_each_model_and_source_and_lists_its_percentiles(
    qtbot: Any, page: Any, store: Store
) -> None:
    calls = [
        ModelCall(
            at=NOW - timedelta(minutes=30 - i),
            model="smol",
            source="local",
            tokens_out=40,
            first_token_seconds=0.5,
            seconds=0.5 + 40 / (10 + i),
        )
        for i in range(10)
    ]
    calls += [
        ModelCall(at=NOW - timedelta(minutes=5), model="gpt", source="remote", tokens_out=20, seconds=1.0),
        ModelCall(at=NOW - timedelta(minutes=4), model="gpt", source="remote", ok=False, seconds=3.0),
    ]
    add(store.engine, *calls)
    view = open_view(qtbot, page, "inference")
    qtbot.waitUntil(lambda: view.table.rowCount() == 2, timeout=LONG)
    assert {key.label for key in view.curves} == {"smol · local", "gpt · remote"}
    smol = next(curve for key, curve in view.curves.items() if key.model == "smol")
    x, speed = smol.getData()
    assert x.dtype == np.float64 and list(speed) == pytest.approx([10 + i for i in range(10)])
    assert x[0] == pytest.approx((NOW - timedelta(minutes=30)).timestamp(), abs=1e-3)

    view.metric_picker.setCurrentIndex(2)  # latency
    gpt = next(curve for key, curve in view.curves.items() if key.model == "gpt")
    assert list(gpt.getData()[1]) == [1.0]  # a failed call's time says nothing about speed

    rows = {row[0]: row for row in cells(view.table)}
    assert rows["smol"][1:5] == ["local", "—", "10", "0"]
    assert rows["gpt"][3:5] == ["2", "1"]
    assert rows["smol"][6] == "0.5"  # time to first token, p50


def test_the_training_view_draws_recent_jobs_loss_curves_and_grows_them_live(
    qtbot: Any, page: Any, store: Store
) -> None:
    add(
        store.engine,
        TrainingJob(
            id=1, model_id="router", state="DONE", job_dir="", log_path="", step=3, total=3, loss=0.5
        ),
        TrainingJob(
            id=2, model_id="persona:Vega", state="RUNNING", job_dir="", log_path="", step=2, total=10
        ),
        TrainingStep(job_id=1, step=1, loss=2.0),
        TrainingStep(job_id=1, step=2, loss=1.0),
        TrainingStep(job_id=1, step=3, loss=0.5, eval_loss=0.7),
        TrainingStep(job_id=2, step=1, loss=3.0),
        TrainingStep(job_id=2, step=2, loss=2.5),
    )
    view = open_view(qtbot, page, "training")
    steps, losses = view.curve_data(1)
    assert steps.dtype == np.float64 and list(steps) == [1, 2, 3] and list(losses) == [2.0, 1.0, 0.5]
    assert [row[:3] for row in cells(view.table)] == [
        ["■ #2", "persona:Vega", "running"],
        ["■ #1", "router", "done"],
    ]
    add(store.engine, TrainingStep(job_id=2, step=3, loss=2.25))
    qtbot.waitUntil(lambda: len(view.curve_data(2)[0]) == 3, timeout=LONG)
    assert list(view.curve_data(2)[1]) == [3.0, 2.5, 2.25]


def test_the_page_stops_reading_while_hidden(qtbot: Any, page: Any) -> None:
    view = open_view(qtbot, page, "scheduler")
    assert view.timer.isActive()
    page.hide()
    assert not view.timer.isActive()
    page.show()
    assert view.timer.isActive()


BROKEN_PANEL = """
from nexus_desktop.modules.hookspecs import hookimpl
from nexus_desktop.modules.specs import DashboardPanelSpec


def render():
    raise RuntimeError("the sensor is unplugged")


class Plugin:
    @hookimpl
    def register_dashboard_panels(self, register):
        register(DashboardPanelSpec("broken.sensor", "Sensor", render, refresh_seconds=2))


plugin = Plugin()
"""


@pytest.fixture
def supervisor(qtbot: Any, qt_loop: asyncio.AbstractEventLoop, store: Store, tmp_path: Path) -> Iterator[Any]:
    """The bundled system-monitor and a module whose panel raises, each in its own process."""
    from nexus_desktop.modules.registry import ModuleHost
    from nexus_desktop.modules.service import REPO_PLUGINS_DIR
    from nexus_desktop.secrets import SecretStore
    from tests.hostile.runtime_modules import approve_all, install_modules, make_supervisor

    install_modules(tmp_path / "dev", {"broken": (BROKEN_PANEL, {"hooks": ["register_dashboard_panels"]})})
    host = ModuleHost(
        store.engine,
        bundled_dir=REPO_PLUGINS_DIR,
        user_dir=tmp_path / "user",
        developer_dir=tmp_path / "dev",
        builtins=False,
        environ={},
    )
    approve_all(host)
    supervisor = make_supervisor(host, SecretStore(f"nexus-test-{uuid.uuid4().hex[:8]}", timeout=5))
    run(qtbot, supervisor.start_module("system-monitor"))
    run(qtbot, supervisor.start_module("broken"))
    yield supervisor
    run(qtbot, supervisor.aclose())


def test_module_panels_show_the_system_monitors_cpu_and_ram_and_a_failing_panel_its_error(
    qtbot: Any, page: Any, supervisor: Any, store: Store
) -> None:
    page.bind(store.engine, lambda: supervisor)
    page.show_view("panels")
    page.show()
    view = page.view("panels")
    key = ("system-monitor", "system-monitor.usage")
    qtbot.waitUntil(lambda: key in view.cards and bool(view.cards[key].values), timeout=LONG)
    monitor = view.cards[key]
    assert monitor.values["CPU"].endswith("%") and "GiB" in monitor.values["RAM"]
    assert {"GPU", "VRAM 0"} & set(monitor.values)
    assert monitor.error.isHidden()

    broken = view.cards[("broken", "broken.sensor")]
    qtbot.waitUntil(lambda: bool(broken.failure), timeout=LONG)
    assert "the sensor is unplugged" in broken.error.text() and broken.error.isVisible()
    assert not broken.values
    assert monitor.values["CPU"] and monitor.isVisible()  # the page and the other panel carry on
