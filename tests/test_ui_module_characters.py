"""Characters a module registers show up in the running app's sidebar, marked with the module."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from nexus_desktop.db.store import Store
from nexus_desktop.settings import Settings
from tests import ui_support
from tests.test_module_characters import MODULE, write_cast
from tests.ui_support import LONG, MODEL_SETTINGS, run

data_dir, qt_loop, window = ui_support.data_dir, ui_support.qt_loop, ui_support.window


@pytest.fixture
def core(data_dir: Path, qt_loop: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The app's core with the ``cast`` module in its developer folder (and only it may start)."""
    from nexus_desktop import paths
    from nexus_desktop.core import AppCore

    write_cast(tmp_path / "dev")
    monkeypatch.setenv("NEXUS_LOAD_MODULES", MODULE)  # not the bundled modules' processes
    store = Store(paths.database_path())
    store.save_settings(Settings(modules_developer_dir=str(tmp_path / "dev"), **MODEL_SETTINGS))
    store.close()
    return AppCore()


def test_a_module_character_appears_in_the_sidebar_saying_which_module_it_came_from(
    qtbot: Any, window: Any, core: Any
) -> None:
    sidebar = window.sidebar
    own = set(sidebar.names())
    assert own and all(caption == "" for caption in sidebar.origins().values())
    run(qtbot, core.start_modules(watch=False))
    run(qtbot, core.modules.approve(run(qtbot, core.modules.review(MODULE))))

    qtbot.waitUntil(lambda: {"Sanne", "Brann"} <= set(sidebar.names()), timeout=LONG)
    origins = sidebar.origins()
    assert origins["Sanne"] == origins["Brann"] == f"from {MODULE}"
    assert all(origins[name] == "" for name in own)  # the user's own say nothing
    item = next(
        sidebar.list.item(i) for i in range(sidebar.list.count()) if sidebar.list.item(i).text() == "Sanne"
    )
    assert item.toolTip() == f"Sanne — added by the {MODULE} module"
    sidebar.search.setText(MODULE)  # searching for the module finds its characters
    visible = [
        sidebar.list.item(i).text()
        for i in range(sidebar.list.count())
        if not sidebar.list.item(i).isHidden()
    ]
    assert sorted(visible) == ["Brann", "Sanne"]
