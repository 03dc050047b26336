"""Quote of the Day: one tool, ``quote-of-the-day.today``, that picks a quote by the date."""

from __future__ import annotations

import datetime
from collections.abc import Callable

from nexus_desktop.modules.hookspecs import hookimpl
from nexus_desktop.modules.specs import ToolSpec

QUOTES = (
    "The best way out is always through. (Robert Frost)",
    "Simple things should be simple, complex things should be possible. (Alan Kay)",
    "Well begun is half done. (Aristotle)",
    "What we know is a drop, what we don't know is an ocean. (Isaac Newton)",
)


def quote_for(day: datetime.date) -> str:
    """The same quote all day; the next day the next one."""
    return QUOTES[day.toordinal() % len(QUOTES)]


def today() -> str:
    return quote_for(datetime.date.today())


class QuotePlugin:
    @hookimpl
    def register_tools(self, register: Callable[[ToolSpec], None]) -> None:
        register(
            ToolSpec(
                name="quote-of-the-day.today",
                description="Today's quote of the day, with its author.",
                parameters={"type": "object", "properties": {}},
                function=today,
            )
        )


plugin = QuotePlugin()
