"""Switches in Settings → App that cost model calls, both off by default: co-evolution of the
module builder (saved when ticked, and what the scheduled task reads), and letting the model pick
tools (and a remote server route messages to the builder)."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt

from nexus_desktop.control.runners import TaskSkipped
from nexus_desktop.db.store import Store
from nexus_desktop.ui.ops import wait_for_running_ops
from tests import ui_support
from tests.ui_support import LONG, run

core, data_dir, qt_loop, window = ui_support.core, ui_support.data_dir, ui_support.qt_loop, ui_support.window


def test_ticking_module_coevolution_saves_it_and_it_starts_unticked(
    qtbot: Any, window: Any, core: Any
) -> None:
    dialog = window.open_settings("app")
    box = dialog.module_coevolution
    assert box.accessibleName() == "Module builder co-evolution"
    assert not box.isChecked() and not core.settings.module_coevolution
    box.setChecked(True)
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: core.settings.module_coevolution, timeout=LONG)
    run(qtbot, wait_for_running_ops())
    assert Store(core.store.path).load_settings().module_coevolution
    # The scheduled task reads what the dialog saved: past "off", to the next reason (here only
    # the bundled default model could write the code).
    skipped = run(qtbot, _skip_reason(core))
    assert "only the default model can write code" in skipped


async def _skip_reason(core: Any) -> str:
    try:
        await core.coevolution.run_task(60)
    except TaskSkipped as skipped:
        return str(skipped)
    return "it ran"


def test_letting_the_model_pick_tools_is_a_setting_the_user_can_reach_and_it_saves(
    qtbot: Any, window: Any, core: Any
) -> None:
    dialog = window.open_settings("app")
    box = dialog.tools_by_model
    assert box.accessibleName() == "Let the model pick tools"
    assert not box.isChecked() and not core.settings.tools_by_model  # off by default: it costs calls
    box.setChecked(True)
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: core.settings.tools_by_model, timeout=LONG)
    run(qtbot, wait_for_running_ops())
    assert Store(core.store.path).load_settings().tools_by_model
