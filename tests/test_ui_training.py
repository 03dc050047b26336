"""The Training page and tray progress, driven by a real service running a fake-trainer subprocess."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from nexus_desktop.db.store import Store
from nexus_desktop.training.tables import AdapterEvent
from tests import ui_support
from tests.training_support import add_examples, make_service
from tests.ui_support import LONG, banner_texts, run

qt_loop = ui_support.qt_loop


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    store = Store(tmp_path / "nexus.db")
    yield store.engine
    store.close()


def open_page(qtbot: Any, service: Any) -> Any:
    from nexus_desktop.ui.training_page import TrainingPage

    page = TrainingPage()
    qtbot.addWidget(page)
    page.resize(1280, 800)
    page.show()
    page.bind(service)
    qtbot.waitUntil(lambda: page.zoo_list.count() == 2, timeout=LONG)
    return page


def close(qtbot: Any, page: Any, service: Any) -> None:
    from nexus_desktop.ui.ops import wait_for_running_ops

    page.timer.stop()
    run(qtbot, wait_for_running_ops())
    run(qtbot, service.aclose())


def test_the_page_lists_each_model_with_its_examples_against_the_threshold(
    qtbot: Any, qt_loop: asyncio.AbstractEventLoop, engine: Engine, tmp_path: Path
) -> None:
    from nexus_desktop.ui.zoo_item import ZooItem

    add_examples(engine, 5)
    service = make_service(engine, tmp_path)
    page = open_page(qtbot, service)
    items = [page.zoo_list.itemWidget(page.zoo_list.item(i)) for i in range(2)]
    assert all(isinstance(item, ZooItem) for item in items)
    persona, router = items
    assert (persona.name.text(), persona.count.text()) == ("Test persona", "5 / 8")
    assert (persona.bar.value(), persona.bar.maximum()) == (5, 8)
    assert persona.meta.text() == "chat persona · base model"
    assert (router.name.text(), router.count.text()) == ("Test router", "0 / 50")
    assert page.title.text() == "Test persona"
    close(qtbot, page, service)


def test_a_running_job_shows_live_progress_and_a_growing_loss_curve_then_its_gate_decision(
    qtbot: Any, qt_loop: asyncio.AbstractEventLoop, engine: Engine, tmp_path: Path
) -> None:
    add_examples(engine, 12)
    service = make_service(engine, tmp_path, steps=16, delay=0.15)
    page = open_page(qtbot, service)
    page.train_button.click()
    qtbot.waitUntil(lambda: page.job_table.rowCount() == 1, timeout=LONG)
    qtbot.waitUntil(lambda: len(page.loss_plot.steps) >= 2, timeout=LONG)
    seen = len(page.loss_plot.steps)
    qtbot.waitUntil(lambda: len(page.loss_plot.steps) > seen, timeout=LONG)
    assert page.loss_plot.steps == sorted(page.loss_plot.steps)
    assert page.job_table.item(0, 3).text().endswith("/16")
    qtbot.waitUntil(lambda: page.job_table.item(0, 2).text() == "done", timeout=LONG)
    assert page.loss_plot.steps[-1] == 16 and page.loss_plot.eval_steps == [16]
    assert page.best_stat.value.text() == "0.1875"
    qtbot.waitUntil(lambda: page.gate_view.view is not None, timeout=LONG)
    page.tabs.setCurrentIndex(1)
    gate = page.gate_view
    assert gate.verdict.text() == "APPROVED"
    assert "first adapter passes" in gate.reason.text()
    row = [gate.table.item(0, column).text() for column in range(4)]
    assert row == ["eval_loss ↓", "0.500", "—", "—"]
    assert page.promote_button.isEnabled() and not page.cancel_button.isEnabled()

    # Recorded as the registry records a promotion by hand; its adapter checks need a real base
    # model (test_loop_e2e promotes through them).
    job = page.selected_job()
    with Session(engine) as s:
        s.add(
            AdapterEvent(
                model_id=job.model_id,
                action="promote",
                adapter_path=job.gguf_adapter,
                job_id=job.id,
                override=True,
                reason="test",
            )
        )
        s.commit()
    qtbot.waitUntil(lambda: page.promote_button.text() == "Active", timeout=LONG)
    assert not page.promote_button.isEnabled()
    persona = page.zoo_list.itemWidget(page.zoo_list.item(0))
    assert persona.meta.text() == "chat persona · job #1's adapter (by hand)"
    assert page.subtitle.text().startswith("chat persona · job #1's adapter (by hand) · ")
    close(qtbot, page, service)


def test_cancel_stops_the_selected_job_and_shows_it_cancelled(
    qtbot: Any, qt_loop: asyncio.AbstractEventLoop, engine: Engine, tmp_path: Path
) -> None:
    add_examples(engine, 12)
    service = make_service(engine, tmp_path, steps=500, delay=0.2)
    page = open_page(qtbot, service)
    page.train_button.click()
    qtbot.waitUntil(lambda: len(page.loss_plot.steps) >= 1, timeout=LONG)
    assert page.cancel_button.isEnabled()
    page.cancel_button.click()
    qtbot.waitUntil(lambda: page.job_table.item(0, 2).text() == "cancelled", timeout=LONG)
    assert page.state_stat.value.text() == "Cancelled"
    assert not page.cancel_button.isEnabled()
    close(qtbot, page, service)


def test_export_writes_the_dataset_in_the_chosen_format(
    qtbot: Any, qt_loop: asyncio.AbstractEventLoop, engine: Engine, tmp_path: Path
) -> None:
    add_examples(engine, 4, preference=2)
    service = make_service(engine, tmp_path)
    page = open_page(qtbot, service)
    page.format_picker.setCurrentText("dpo")
    target = tmp_path / "exported" / "vega-dpo.jsonl"
    page.export_dataset(target)
    qtbot.waitUntil(lambda: bool(banner_texts(page.banners, "info")), timeout=LONG)
    assert banner_texts(page.banners, "info") == [f"Wrote 2 dpo records to {target}."]
    assert len(target.read_text(encoding="utf-8").splitlines()) == 2
    close(qtbot, page, service)


def test_a_failed_action_shows_one_clear_sentence(
    qtbot: Any, qt_loop: asyncio.AbstractEventLoop, engine: Engine, tmp_path: Path
) -> None:
    service = make_service(engine, tmp_path)
    page = open_page(qtbot, service)
    page.rollback()  # the button is disabled on a base model; the action still explains itself
    qtbot.waitUntil(lambda: bool(banner_texts(page.banners, "error")), timeout=LONG)
    assert "nothing to roll back" in banner_texts(page.banners, "error")[0]
    close(qtbot, page, service)


def test_the_tray_tracks_progress_and_notifies_without_a_system_tray(
    qtbot: Any, qt_loop: asyncio.AbstractEventLoop, engine: Engine, tmp_path: Path
) -> None:
    from PySide6.QtWidgets import QSystemTrayIcon

    from nexus_desktop.ui.training_tray import TrainingTray, progress_icon

    assert not QSystemTrayIcon.isSystemTrayAvailable()  # offscreen
    add_examples(engine, 12)
    service = make_service(engine, tmp_path, steps=30, delay=0.1)
    received: list[Any] = []
    tray = TrainingTray(service, None, on_notice=received.append)
    tray.start()
    run(qtbot, service.train_now("persona-test"))
    qtbot.waitUntil(lambda: tray.percent is not None and tray.percent > 0, timeout=LONG)
    assert tray.tooltip.startswith("NEXUS: training persona-test: ")
    qtbot.waitUntil(lambda: [n.kind for n in received] == ["finished", "approved"], timeout=LONG)
    qtbot.waitUntil(lambda: tray.percent is None, timeout=LONG)
    assert tray.tooltip == "NEXUS Desktop"
    assert not progress_icon(42).isNull()
    tray.stop()
    from nexus_desktop.ui.ops import wait_for_running_ops

    run(qtbot, wait_for_running_ops())
    run(qtbot, service.aclose())


def test_the_tray_draws_progress_on_a_real_tray_icon(
    qtbot: Any, qt_loop: asyncio.AbstractEventLoop, engine: Engine, tmp_path: Path
) -> None:
    from PySide6.QtWidgets import QSystemTrayIcon

    from nexus_desktop.ui.theme import app_icon
    from nexus_desktop.ui.training_tray import TrainingTray

    icon = QSystemTrayIcon(app_icon())  # exists offscreen, though no tray shows it
    add_examples(engine, 12)
    service = make_service(engine, tmp_path, steps=30, delay=0.1)
    received: list[Any] = []
    tray = TrainingTray(service, icon, on_notice=received.append)
    tray.start()
    run(qtbot, service.train_now("persona-test"))
    qtbot.waitUntil(lambda: icon.toolTip().startswith("NEXUS: training"), timeout=LONG)
    # The icon is not visible (no tray): notices fall back to the callback instead of a balloon.
    qtbot.waitUntil(lambda: len(received) == 2, timeout=LONG)
    qtbot.waitUntil(lambda: icon.toolTip() == "NEXUS Desktop", timeout=LONG)
    tray.stop()
    from nexus_desktop.ui.ops import wait_for_running_ops

    run(qtbot, wait_for_running_ops())
    run(qtbot, service.aclose())


def test_import_adds_the_good_rows_and_the_banner_names_the_bad_line(
    qtbot: Any, qt_loop: asyncio.AbstractEventLoop, engine: Engine, tmp_path: Path
) -> None:
    service = make_service(engine, tmp_path)
    page = open_page(qtbot, service)
    model_id = page.current_model_id()
    rows = [
        {
            "conversations": [
                {"from": "human", "value": "Status?"},
                {"from": "gpt", "value": "All green, captain."},
            ]
        },
        "not json at all",
    ]
    data = tmp_path / "mine.jsonl"
    data.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    page.import_dataset(data)
    qtbot.waitUntil(lambda: bool(banner_texts(page.banners, "warning")), timeout=LONG)
    [shown] = banner_texts(page.banners, "warning")
    assert f"Imported 1 of 2 rows into {model_id}" in shown and "line 2: not JSON" in shown
    close(qtbot, page, service)
