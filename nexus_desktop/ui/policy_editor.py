"""The character editor's Limits: what the governor lets a character spend (``control.policy``).

Every field may stay empty, and an empty field imposes nothing.  ``policy()`` reads the form and
runs ``parse_policy``, so a contradictory policy raises ``PolicyError`` naming the fields before
anything is saved.  The sections fold away: most characters need none of it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QIntValidator
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QScrollArea,
    QTableWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from nexus_desktop.control.policy import Policy, PolicyError, parse_policy
from nexus_desktop.ui.widgets import push_button

# (Policy field, label, unit shown after the box, help)
NUMBER_FIELDS: list[tuple[str, str, str, str]] = [
    ("max_reply_tokens", "Longest reply", "tokens", "Caps the app's reply length for this character."),
    ("tool_rounds_per_reply", "Tool calls per reply", "calls", "0 offers no tools at all."),
    ("daily_token_budget", "Daily token budget", "tokens a day", "Prompt plus reply, per local day."),
    ("daily_tool_calls", "Daily tool calls", "calls a day", "Tool calls per local day."),
]
NO_LIMIT = "No limit"


class FoldingSection(QWidget):
    """A header button that shows or hides its body."""

    def __init__(self, title: str, body: QWidget, *, expanded: bool = True) -> None:
        super().__init__()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(8)
        self.header = QToolButton()
        self.header.setObjectName("SectionHeader")
        self.header.setText(title)
        self.header.setCheckable(True)
        self.header.setProperty("role", "ghost")
        self.header.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.header.setCursor(Qt.CursorShape.PointingHandCursor)
        self.header.toggled.connect(self.set_expanded)
        self.body = body
        layout.addWidget(self.header, 0, Qt.AlignmentFlag.AlignLeft)
        layout.addWidget(body)
        self.header.setChecked(expanded)
        self.set_expanded(expanded)

    @property
    def expanded(self) -> bool:
        return self.header.isChecked()

    def set_expanded(self, expanded: bool) -> None:
        self.header.blockSignals(True)
        self.header.setChecked(expanded)
        self.header.blockSignals(False)
        self.header.setArrowType(Qt.ArrowType.DownArrow if expanded else Qt.ArrowType.RightArrow)
        self.body.setVisible(expanded)


class ToolRulesTable(QWidget):
    """Rows of (tool, value): the tool picked from the character's tools or typed in."""

    changed = Signal()

    def __init__(self, value_header: str, placeholder: str, add_text: str, tool_names: Sequence[str]) -> None:
        super().__init__()
        self.tool_names = list(tool_names)
        self.placeholder = placeholder
        self.value_header = value_header
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        self.table = QTableWidget(0, 2)
        self.table.setHorizontalHeaderLabels(["Tool", value_header])
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(38)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setMinimumHeight(96)
        self.table.setMaximumHeight(150)
        layout.addWidget(self.table)
        buttons = QHBoxLayout()
        self.add_button = push_button(add_text, icon_name="plus")
        self.remove_button = push_button("Remove", icon_name="trash")
        self.add_button.clicked.connect(lambda: self.add_row("", ""))
        self.remove_button.clicked.connect(self._remove_selected)
        buttons.addWidget(self.add_button)
        buttons.addWidget(self.remove_button)
        buttons.addStretch(1)
        layout.addLayout(buttons)

    def add_row(self, tool: str, value: str) -> None:
        row = self.table.rowCount()
        self.table.insertRow(row)
        picker = QComboBox()
        picker.setAccessibleName("Tool")
        picker.setEditable(True)
        picker.addItems(sorted({*self.tool_names, tool} - {""}))
        picker.setCurrentText(tool)
        line = picker.lineEdit()
        if line is not None:
            line.setPlaceholderText("dice.roll")
        editor = QLineEdit(value)
        editor.setAccessibleName(self.value_header)
        editor.setPlaceholderText(self.placeholder)
        picker.currentTextChanged.connect(lambda _text: self.changed.emit())
        editor.textChanged.connect(lambda _text: self.changed.emit())
        self.table.setCellWidget(row, 0, picker)
        self.table.setCellWidget(row, 1, editor)
        self.changed.emit()

    def set_rows(self, rows: Iterable[tuple[str, str]]) -> None:
        self.table.setRowCount(0)
        for tool, value in rows:
            self.add_row(tool, value)
        self.changed.emit()

    def rows(self) -> list[tuple[str, str]]:
        """(tool, value) per row with a tool name, both stripped."""
        found = []
        for row in range(self.table.rowCount()):
            picker, editor = self.table.cellWidget(row, 0), self.table.cellWidget(row, 1)
            tool = picker.currentText().strip() if isinstance(picker, QComboBox) else ""
            value = editor.text().strip() if isinstance(editor, QLineEdit) else ""
            if tool:
                found.append((tool, value))
        return found

    def _remove_selected(self) -> None:
        rows = {index.row() for index in self.table.selectedIndexes()}
        if not rows and self.table.rowCount():
            rows = {self.table.rowCount() - 1}  # a row whose widgets have focus is not "selected"
        for row in sorted(rows, reverse=True):
            self.table.removeRow(row)
        self.changed.emit()


class LimitsEditor(QWidget):
    """The Limits page: numbers per reply and per day, then per-tool cooldowns and prerequisites."""

    def __init__(self, tool_names: Sequence[str] = (), parent: QWidget | None = None) -> None:
        super().__init__(parent)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.setContentsMargins(16, 16, 16, 16)
        layout.setSpacing(12)
        intro = QLabel(
            "What the governor lets this character spend. Leave a field empty for no limit; "
            "a reply that reaches a limit ends with a notice in the chat."
        )
        intro.setObjectName("FieldHelp")
        intro.setWordWrap(True)
        layout.addWidget(intro)
        self.summary = QLabel()
        self.summary.setObjectName("SenderName")
        self.summary.setWordWrap(True)
        layout.addWidget(self.summary)

        self.numbers: dict[str, QLineEdit] = {}
        grid_body = QWidget()
        grid = QGridLayout(grid_body)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(10)
        grid.setVerticalSpacing(8)
        for row, (key, label, unit, help_text) in enumerate(NUMBER_FIELDS):
            box = QLineEdit()
            box.setPlaceholderText(NO_LIMIT)
            box.setValidator(QIntValidator(0, 2_000_000_000, box))
            box.setMaximumWidth(140)
            box.setToolTip(help_text)
            box.setAccessibleName(label)
            box.textChanged.connect(lambda _text: self._update_summary())
            self.numbers[key] = box
            caption = QLabel(label)
            caption.setToolTip(help_text)
            unit_label = QLabel(unit)
            unit_label.setObjectName("FieldHelp")
            grid.addWidget(caption, row, 0)
            grid.addWidget(box, row, 1)
            grid.addWidget(unit_label, row, 2)
        grid.setColumnStretch(3, 1)
        self.spending = FoldingSection("Replies and daily budget", grid_body)
        layout.addWidget(self.spending)

        self.cooldowns = ToolRulesTable("Cooldown (seconds)", "e.g. 60", "Add cooldown", tool_names)
        self.prerequisites = ToolRulesTable(
            "Only after these tools", "e.g. notes.recall, dice.roll", "Add prerequisite", tool_names
        )
        self.cooldowns.changed.connect(self._update_summary)
        self.prerequisites.changed.connect(self._update_summary)
        tools_body = QWidget()
        tools_layout = QVBoxLayout(tools_body)
        tools_layout.setContentsMargins(0, 0, 0, 0)
        tools_layout.setSpacing(6)
        for caption_text, table in (
            ("A tool on cooldown is not offered until the time has passed.", self.cooldowns),
            (
                "A tool with prerequisites is refused until those tools (separated by commas) ran "
                "earlier in the same chat.",
                self.prerequisites,
            ),
        ):
            caption = QLabel(caption_text)
            caption.setObjectName("FieldHelp")
            caption.setWordWrap(True)
            tools_layout.addWidget(caption)
            tools_layout.addWidget(table)
        if not tool_names:
            hint = QLabel("No tools are offered to this character right now; you can still type tool names.")
            hint.setObjectName("FieldHelp")
            hint.setWordWrap(True)
            tools_layout.addWidget(hint)
        self.tools = FoldingSection("Tool cooldowns and prerequisites", tools_body, expanded=False)
        layout.addWidget(self.tools)
        layout.addStretch(1)
        scroll.setWidget(page)
        outer.addWidget(scroll)
        self._update_summary()

    # Data ---------------------------------------------------------------------------------

    def set_policy(self, policy: Policy) -> None:
        for key, box in self.numbers.items():
            value = getattr(policy, key)
            box.setText("" if value is None else str(value))
        self.cooldowns.set_rows((tool, f"{seconds:g}") for tool, seconds in policy.tool_cooldowns.items())
        self.prerequisites.set_rows(
            (tool, ", ".join(needs)) for tool, needs in policy.tool_prerequisites.items()
        )
        self.tools.set_expanded(bool(policy.tool_cooldowns or policy.tool_prerequisites))
        self._update_summary()

    def data(self) -> dict[str, Any]:
        """The form as policy data without its empty fields; ``PolicyError`` for text that is no number."""
        data: dict[str, Any] = {}
        for key, box in self.numbers.items():
            text = box.text().strip()
            if text:
                data[key] = _number(text, key, whole=True)
        cooldowns = {tool: _number(value, f"tool_cooldowns[{tool}]") for tool, value in self.cooldowns.rows()}
        if cooldowns:
            data["tool_cooldowns"] = cooldowns
        prerequisites = {
            tool: [need.strip() for need in value.split(",") if need.strip()]
            for tool, value in self.prerequisites.rows()
        }
        prerequisites = {tool: needs for tool, needs in prerequisites.items() if needs}
        if prerequisites:
            data["tool_prerequisites"] = prerequisites
        return data

    def policy(self) -> Policy:
        """The policy the form describes; raises ``PolicyError`` naming the fields when it cannot hold."""
        return parse_policy(self.data())

    def _update_summary(self) -> None:
        try:
            policy = self.policy()
        except PolicyError as error:
            self.summary.setText(str(error))  # said now, not only when saving
            return
        self.summary.setText(describe(policy))


def describe(policy: Policy) -> str:
    """The policy in a few words, for the Limits page's heading."""
    if policy.empty:
        return "No limits: this character may spend as much as it likes."
    parts = []
    if policy.max_reply_tokens is not None:
        parts.append(f"replies up to {_count(policy.max_reply_tokens, 'token')}")
    if policy.tool_rounds_per_reply is not None:
        parts.append(f"{_count(policy.tool_rounds_per_reply, 'tool call')} per reply")
    if policy.daily_token_budget is not None:
        parts.append(f"{_count(policy.daily_token_budget, 'token')} a day")
    if policy.daily_tool_calls is not None:
        parts.append(f"{_count(policy.daily_tool_calls, 'tool call')} a day")
    rules = len(policy.tool_cooldowns) + len(policy.tool_prerequisites)
    if rules:
        parts.append(_count(rules, "tool rule"))
    text = "; ".join(parts)
    return f"Limits: {text[:1].upper()}{text[1:]}."


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def _number(text: str, field: str, *, whole: bool = False) -> int | float:
    try:
        return int(text) if whole else float(text)
    except ValueError:
        kind = "a whole number" if whole else "a number of seconds"
        raise PolicyError(f"This policy cannot be used: {field}: {text!r} is not {kind}.") from None
