"""The Agent budgets dashboard's data: per character, tokens and tool calls used against the limits
its policy sets, today and per day over the last 30 days, and the tool cooldowns in force.

The numbers come from the governor's own queries (``control.governor.budget_rows`` and
``cooldowns_in_force``, which ``nexus governor show`` reads too), grouped per character and padded
to 30 days for the charts.  No Qt; the page runs ``BudgetReader.read`` off the Qt thread.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, select

from nexus_desktop.control.governor import budget_rows, cooldowns_in_force
from nexus_desktop.control.metrics import read_rows
from nexus_desktop.db.tables import Character

DAYS = 30
FULL_READ_EVERY_SECONDS = 2.0
"""Usage that keeps changing (a busy character) is read whole at most this often."""


@dataclass(frozen=True)
class DayUsage:
    day: str
    """YYYY-MM-DD, local time (as the governor books it)."""
    tokens: int
    tool_calls: int
    replies: int


@dataclass(frozen=True)
class CharacterBudget:
    name: str
    origin: str
    """The module that registered the character, or "" for the user's own."""
    token_limit: int | None
    """``daily_token_budget``; None: no limit."""
    tool_call_limit: int | None
    """``daily_tool_calls``; None: no limit."""
    today: DayUsage
    days: tuple[DayUsage, ...]
    """The last 30 local days, oldest first, today last (days without use count zero)."""

    @property
    def month_tokens(self) -> int:
        return sum(day.tokens for day in self.days)

    @property
    def month_tool_calls(self) -> int:
        return sum(day.tool_calls for day in self.days)


@dataclass(frozen=True)
class Cooldown:
    character: str
    tool: str
    used_at: datetime
    ends_at: datetime

    def remaining(self, now: datetime) -> float:
        return max(0.0, (self.ends_at - now).total_seconds())


@dataclass(frozen=True)
class BudgetSnapshot:
    today: str
    characters: tuple[CharacterBudget, ...]
    """Every character with usage in the last 30 days or a daily limit; busiest today first."""
    cooldowns: tuple[Cooldown, ...]
    """Ending soonest first."""
    read_at: datetime


def local_day(moment: datetime) -> date:
    return moment.astimezone().date()


def read_budgets(engine: Engine, now: datetime | None = None, *, days: int = DAYS) -> BudgetSnapshot:
    moment = (now or datetime.now(UTC)).astimezone()
    today = moment.date()
    span = [(today - timedelta(days=back)).isoformat() for back in range(days - 1, -1, -1)]
    rows = budget_rows(engine, days, now=moment)
    cooling = cooldowns_in_force(engine, moment)
    with Session(engine) as s:
        origins = {name: origin for name, origin in s.exec(select(Character.name, Character.origin))}
    used: dict[str, dict[str, DayUsage]] = {}
    limits: dict[str, tuple[int | None, int | None]] = {}
    for row in rows:
        day = DayUsage(row.day, row.tokens, row.tool_calls, row.replies)
        used.setdefault(row.character, {})[row.day] = day
        limits[row.character] = (row.token_limit, row.tool_call_limit)
    budgets = []
    for name, by_day in used.items():
        series = tuple(by_day.get(day) or DayUsage(day, 0, 0, 0) for day in span)
        token_limit, tool_call_limit = limits[name]
        budgets.append(
            CharacterBudget(name, origins.get(name, ""), token_limit, tool_call_limit, series[-1], series)
        )
    budgets.sort(key=lambda b: (-b.today.tokens, -b.month_tokens, b.name.lower()))
    cooldowns = tuple(Cooldown(c.character, c.tool, c.used_at, c.ends_at) for c in cooling)
    return BudgetSnapshot(today.isoformat(), tuple(budgets), cooldowns, moment)


# Usage only ever grows, so one sum over the three counters changes whenever any does.
_BUDGET_TOKEN = (
    "SELECT (SELECT COUNT(*) FROM budget_usage WHERE day >= :first), "
    "(SELECT SUM(tokens + tool_calls + replies) FROM budget_usage WHERE day >= :first), "
    "(SELECT COUNT(*) FROM character_policy), (SELECT MAX(updated_at) FROM character_policy), "
    "(SELECT COUNT(*) FROM character), (SELECT MAX(id) FROM character), "
    "(SELECT MAX(updated_at) FROM character), (SELECT MAX(id) FROM tool_use)"
)


class BudgetReader:
    """``read_budgets``, redone only when a usage, policy, character or tool-use row changed (a few
    aggregate queries tell, in plain SQL), so a refresh ten times a second mostly reads eight numbers."""

    def __init__(self, engine: Engine, *, days: int = DAYS, every: float = FULL_READ_EVERY_SECONDS) -> None:
        self.engine = engine
        self.days = days
        self.every = every
        self._read_at = -math.inf
        self._token: tuple[Any, ...] | None = None
        self._snapshot: BudgetSnapshot | None = None

    def read(self, now: datetime | None = None) -> BudgetSnapshot:
        now = now or datetime.now(UTC)
        first_day = (local_day(now) - timedelta(days=self.days - 1)).isoformat()
        token = (first_day, *read_rows(self.engine, _BUDGET_TOKEN, {"first": first_day})[0])
        if self._snapshot is None or (
            token != self._token and time.monotonic() - self._read_at >= self.every
        ):
            self._snapshot = read_budgets(self.engine, now, days=self.days)
            self._token = token
            self._read_at = time.monotonic()
        return self._snapshot
