"""The tool as the app calls it: registered through pluggy, then called with no arguments."""

from __future__ import annotations

import datetime

import pluggy
from quote_of_the_day.hooks import QUOTES, plugin, quote_for

from nexus_desktop.modules import hookspecs
from nexus_desktop.modules.specs import ToolSpec


def test_the_tool_is_registered_and_answers_with_a_known_quote() -> None:
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    manager.register(plugin)
    tools: list[ToolSpec] = []
    manager.hook.register_tools.call_historic(kwargs={"register": tools.append})
    assert [tool.name for tool in tools] == ["quote-of-the-day.today"]
    assert tools[0].function() in QUOTES


def test_the_quote_stays_the_same_all_day_and_changes_the_next() -> None:
    day = datetime.date(2026, 1, 1)
    assert quote_for(day) == quote_for(day)
    assert quote_for(day) != quote_for(day + datetime.timedelta(days=1))
