"""Agent budgets: per character, tokens and tool calls used today against the policy's daily limits
and over the last 30 days, and the tool cooldowns in force with when they end."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSplitter, QVBoxLayout, QWidget

from nexus_desktop.control.dashboard_budgets import BudgetReader, BudgetSnapshot, CharacterBudget
from nexus_desktop.ui.dashboards.base import LiveView, fill_table, make_table, relative
from nexus_desktop.ui.dashboards.plots import Empty, make_plot
from nexus_desktop.ui.theme import COLORS

COLUMNS = (
    "Character",
    "Tokens today",
    "Tool calls today",
    "Replies",
    "Tokens, 30 days",
    "Tool calls, 30 days",
)
TABLE_ROWS_SHOWN = 30 + 26 * 4
"""Header and four characters at least."""
COOLDOWN_COLUMNS = ("Character", "Tool", "Last used", "Offered again", "Left")


def used_of(used: int, limit: int | None) -> tuple[str, str | None]:
    """``1,200 / 5,000 (24%)`` and a colour as the limit nears; no limit: the count alone."""
    if limit is None:
        return f"{used:,}", None
    share = used / limit if limit else 1.0
    colour = COLORS.danger if share >= 1 else COLORS.warning if share >= 0.8 else COLORS.success
    return f"{used:,} / {limit:,} ({share:.0%})", colour


class _DayBars(QWidget):
    """One bar per day for the last 30 days, with the daily limit as a dashed line."""

    def __init__(self, title: str, colour: str) -> None:
        super().__init__()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        self.caption = QLabel(title.upper())
        self.caption.setObjectName("SectionLabel")
        layout.addWidget(self.caption)
        self.plot = make_plot(time_axis=False)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.setMinimumHeight(110)
        layout.addWidget(self.plot, 1)
        self.bars = pg.BarGraphItem(x=np.empty(0), height=np.empty(0), width=0.7, brush=colour, pen=None)
        self.plot.addItem(self.bars)
        self.limit = pg.InfiniteLine(
            angle=0, pen=pg.mkPen(COLORS.danger, width=1.2, style=Qt.PenStyle.DashLine)
        )
        self.plot.addItem(self.limit)
        self.heights = np.empty(0)

    def show_days(self, days: list[str], heights: list[int], limit: int | None) -> None:
        self.heights = np.array(heights, dtype=np.float64)
        self.bars.setOpts(x=np.arange(len(days), dtype=np.float64), height=self.heights, width=0.7)
        self.limit.setVisible(limit is not None)
        top = max([*heights, limit or 0, 1])
        if limit is not None:
            self.limit.setValue(limit)
        ticks = [(i, day[5:]) for i, day in enumerate(days) if i % 7 == len(days) % 7 or i == len(days) - 1]
        self.plot.getAxis("bottom").setTicks([ticks])
        self.plot.setXRange(-0.6, len(days) - 0.4, padding=0)
        self.plot.setYRange(0, top * 1.12, padding=0)


class BudgetsView(LiveView):
    title = "Agent budgets"

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.snapshot: BudgetSnapshot | None = None
        self.selected: str | None = None
        self._charted: CharacterBudget | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 12, 16, 12)
        layout.setSpacing(8)
        layout.addWidget(self.error)

        self.table = make_table(COLUMNS)
        self.table.setMinimumHeight(TABLE_ROWS_SHOWN)
        self.table.itemSelectionChanged.connect(self._selected)
        self.characters = Empty(
            self.table,
            "No usage or limits yet: a character shows here after its first reply, or once its policy "
            "sets a daily limit (character editor, Limits).",
        )
        charts = QWidget()
        charts_layout = QVBoxLayout(charts)
        charts_layout.setContentsMargins(0, 0, 0, 0)
        charts_layout.setSpacing(4)
        self.chart_title = QLabel("")
        self.chart_title.setObjectName("GateTitle")
        charts_layout.addWidget(self.chart_title)
        row = QHBoxLayout()
        row.setSpacing(12)
        self.token_bars = _DayBars("Tokens per day", COLORS.accent)
        self.tool_bars = _DayBars("Tool calls per day", "#2fc4b2")
        row.addWidget(self.token_bars, 1)
        row.addWidget(self.tool_bars, 1)
        charts_layout.addLayout(row, 1)

        self.cooldowns = make_table(COOLDOWN_COLUMNS, stretch=1)
        cooldown_box = QWidget()
        cooldown_layout = QVBoxLayout(cooldown_box)
        cooldown_layout.setContentsMargins(0, 0, 0, 0)
        cooldown_layout.setSpacing(4)
        label = QLabel("COOLDOWNS IN FORCE")
        label.setObjectName("SectionLabel")
        cooldown_layout.addWidget(label)
        self.cooldown_box = Empty(
            self.cooldowns,
            "No cooldowns in force: a tool with a cooldown in a character's policy rests here "
            "after each use.",
        )
        self.cooldown_box.label.setStyleSheet("font-size: 9pt;")
        cooldown_layout.addWidget(self.cooldown_box, 1)

        split = QSplitter(Qt.Orientation.Vertical)
        split.setChildrenCollapsible(False)
        split.setHandleWidth(10)
        split.addWidget(self.characters)
        split.addWidget(charts)
        split.addWidget(cooldown_box)
        split.setStretchFactor(0, 2)
        split.setStretchFactor(1, 3)
        split.setStretchFactor(2, 1)
        layout.addWidget(split, 1)

    def make_reader(self, engine: Any) -> BudgetReader:
        return BudgetReader(engine)

    def show_snapshot(self, snapshot: BudgetSnapshot) -> None:
        previous, self.snapshot = self.snapshot, snapshot
        same = previous is not None and (previous.characters, previous.cooldowns) == (
            snapshot.characters,
            snapshot.cooldowns,
        )
        if not same:
            self._show_characters(snapshot.characters)
        self._show_cooldowns(snapshot)

    def _show_characters(self, budgets: tuple[CharacterBudget, ...]) -> None:
        self.characters.set_empty(not budgets)
        rows, colours = [], []
        for budget in budgets:
            tokens, token_colour = used_of(budget.today.tokens, budget.token_limit)
            tools, tool_colour = used_of(budget.today.tool_calls, budget.tool_call_limit)
            name = f"{budget.name} · {budget.origin}" if budget.origin else budget.name
            rows.append(
                (
                    name,
                    tokens,
                    tools,
                    str(budget.today.replies),
                    f"{budget.month_tokens:,}",
                    f"{budget.month_tool_calls:,}",
                )
            )
            colours.append((None, token_colour, tool_colour))
        self.table.blockSignals(True)
        fill_table(self.table, rows, colours)
        names = [b.name for b in budgets]
        if names:
            self.selected = self.selected if self.selected in names else names[0]
            self.table.selectRow(names.index(self.selected))
        self.table.blockSignals(False)
        self._show_chart()

    def _selected(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        if rows and self.snapshot is not None and rows[0].row() < len(self.snapshot.characters):
            self.selected = self.snapshot.characters[rows[0].row()].name
            self._show_chart()

    def budget(self, name: str) -> CharacterBudget | None:
        characters = self.snapshot.characters if self.snapshot else ()
        return next((b for b in characters if b.name == name), None)

    def _show_chart(self) -> None:
        budget = self.budget(self.selected or "")
        if budget is None:
            self.chart_title.setText("")
            return
        if budget == self._charted:
            return  # another character's usage moved: these bars did not
        self._charted = budget
        limits = []
        if budget.token_limit is not None:
            limits.append(f"{budget.token_limit:,} tokens a day")
        if budget.tool_call_limit is not None:
            limits.append(f"{budget.tool_call_limit:,} tool calls a day")
        limit_text = " and ".join(limits) if limits else "no daily limits"
        self.chart_title.setText(f"{budget.name}: last 30 days, {limit_text}")
        days = [d.day for d in budget.days]
        self.token_bars.show_days(days, [d.tokens for d in budget.days], budget.token_limit)
        self.tool_bars.show_days(days, [d.tool_calls for d in budget.days], budget.tool_call_limit)

    def _show_cooldowns(self, snapshot: BudgetSnapshot) -> None:
        now = datetime.now(UTC)
        live = [c for c in snapshot.cooldowns if c.ends_at > now]
        self.cooldown_box.set_empty(not live)
        rows = [
            (
                c.character,
                c.tool,
                relative(c.used_at, now),
                relative(c.ends_at, now),
                f"{c.remaining(now):.0f} s",
            )
            for c in live
        ]
        fill_table(self.cooldowns, rows)
