"""Read-only views of what the module builder made: one round (its diff, test output, prompt and
the model's answer) and a module's code (every file, for the approval dialog).

Both only show text handed to them; reading the files happens off the Qt thread
(``read_module_code`` runs in ``asyncio.to_thread``).
"""

from __future__ import annotations

import ast
import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtGui import QColor, QFont, QFontDatabase, QSyntaxHighlighter, QTextCharFormat, QTextDocument
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QPlainTextEdit,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from nexus_desktop.modules.registry import ApprovalRequest
from nexus_desktop.modules.review_text import report_lines
from nexus_desktop.modules.service import ModuleService
from nexus_desktop.ui.approval_dialog import ApprovalDialog
from nexus_desktop.ui.module_card import modules_style
from nexus_desktop.ui.theme import COLORS, set_style
from nexus_desktop.ui.widgets import fit_to_screen, push_button

MAX_FILE_CHARS = 200_000  # a generated module is small; anything bigger is shown cut, not hung on
SKIPPED_PARTS = {"__pycache__", ".pytest_cache", ".git"}


class DiffHighlighter(QSyntaxHighlighter):
    """Added lines green, removed lines red, hunk headers dim: a diff reads at a glance."""

    def __init__(self, document: QTextDocument) -> None:
        super().__init__(document)
        self._formats = {"+": COLORS.success, "-": COLORS.danger, "@": COLORS.muted}

    def highlightBlock(self, text: str) -> None:
        colour = COLORS.muted if text.startswith(("+++", "---")) else self._formats.get(text[:1], "")
        if colour:
            form = QTextCharFormat()
            form.setForeground(QColor(colour))
            self.setFormat(0, len(text), form)


def code_view(text: str, name: str) -> QPlainTextEdit:
    """A read-only, monospaced, selectable text view, named for screen readers."""
    view = QPlainTextEdit(text)
    view.setReadOnly(True)
    view.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
    font = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
    font.setStyleHint(QFont.StyleHint.Monospace)
    view.setFont(font)
    view.setAccessibleName(name)
    return view


def prompt_text(prompt: list[dict[str, Any]] | str | None) -> str:
    """The round's prompt as the model read it: each message under its role."""
    if not prompt:
        return "(no prompt was stored)"
    if isinstance(prompt, str):
        return prompt
    parts = [f"── {message.get('role', '?')} ──\n{message.get('content', '')}" for message in prompt]
    return "\n\n".join(parts)


def test_output_text(report: dict[str, Any] | None, parse_error: str = "") -> str:
    """The sandbox's verdict on the round: its checks, then the tests' own output."""
    lines: list[str] = []
    if parse_error:
        lines += [f"The answer could not be read as module files: {parse_error}", ""]
    if report is None:
        lines.append("No tests ran in this round." if parse_error else "The tests have not run yet.")
        return "\n".join(lines)
    lines += report_lines(report)
    for check in report.get("checks") or []:
        if check.get("output"):
            lines += ["", f"── {check.get('name', 'tests')} output ──", *map(str, check["output"])]
    return "\n".join(lines)


class BuildRoundDialog(QDialog):
    """One round of a build: Diff, Test output, Prompt and Answer tabs, all read-only."""

    def __init__(self, title: str, round_view: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        set_style(self, modules_style)
        fit_to_screen(self, 760, 520)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(18, 16, 18, 14)
        heading = QLabel(title)
        heading.setObjectName("DialogTitle")
        heading.setWordWrap(True)
        layout.addWidget(heading)
        self.tabs = QTabWidget()
        self.tabs.setAccessibleName("Round details")
        diff = str(getattr(round_view, "diff", "") or "") or "(no files changed in this round)"
        self.diff_view = code_view(diff, "Diff against the previous round")
        self._highlighter = DiffHighlighter(self.diff_view.document())
        report = getattr(round_view, "test_report", None)
        parse_error = str(getattr(round_view, "parse_error", "") or "")
        self.test_view = code_view(test_output_text(report, parse_error), "Test output")
        self.prompt_view = code_view(prompt_text(getattr(round_view, "prompt", None)), "Prompt")
        output = str(getattr(round_view, "output", "") or "(no answer)")
        self.output_view = code_view(_pretty(output), "The model's answer")
        self.tabs.addTab(self.diff_view, "Diff")
        self.tabs.addTab(self.test_view, "Test output")
        self.tabs.addTab(self.prompt_view, "Prompt")
        self.tabs.addTab(self.output_view, "Answer")
        layout.addWidget(self.tabs, 1)
        layout.addLayout(_close_row(self))


def _pretty(output: str) -> str:
    """A JSON answer indented (the files' code stays as the model wrote it), else as it came."""
    try:
        return json.dumps(json.loads(output), indent=2, ensure_ascii=False)
    except ValueError:
        return output


def _close_row(dialog: QDialog) -> QHBoxLayout:
    row = QHBoxLayout()
    row.addStretch(1)
    close = push_button("Close")
    close.setAccessibleName("Close")
    close.clicked.connect(dialog.accept)
    row.addWidget(close)
    return row


@dataclass(frozen=True)
class ModuleCode:
    """A module's files as text (relative path, text) and the tests its test file defines."""

    files: list[tuple[str, str]]
    test_names: list[str]


def read_module_code(folder: Path, test_file: str | None) -> ModuleCode:
    """Every text file of the module, manifest first (blocking: run it off the Qt thread)."""
    files: list[tuple[str, str]] = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if not path.is_file() or SKIPPED_PARTS.intersection(relative.parts):
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError) as error:
            text = f"(not shown: {error.__class__.__name__}; it is not a text file)"
        if len(text) > MAX_FILE_CHARS:
            text = text[:MAX_FILE_CHARS] + "\n… (cut here)"
        files.append((relative.as_posix(), text))
    files.sort(key=lambda item: (not item[0].endswith(".toml"), item[0]))
    tests = dict(files).get(test_file or "", "")
    return ModuleCode(files, test_names(tests))


def module_code(folder: Path) -> ModuleCode:
    """``read_module_code`` with the test file its manifest names (none when it cannot be read)."""
    from nexus_desktop.modules.manifest import find_manifest, read_manifest_data

    try:
        test_file = read_manifest_data(find_manifest(folder)).get("test_file")
    except (OSError, ValueError):
        test_file = None
    return read_module_code(folder, test_file if isinstance(test_file, str) else None)


def test_names(source: str) -> list[str]:
    """The test functions a pytest file defines (``test_*``, also inside ``Test*`` classes)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    names: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test"):
            names.append(node.name)
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            names += [
                f"{node.name}.{item.name}"
                for item in node.body
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and item.name.startswith("test")
            ]
    return names


@dataclass(frozen=True)
class Review:
    """What the approval dialog shows of a module: the request, its last report and its code."""

    request: ApprovalRequest
    report: dict[str, Any] | None
    code: ModuleCode


async def review_module(service: ModuleService, name: str) -> Review:
    """Read what approving ``name`` means, off the Qt thread (the gallery's and the build card's)."""
    view = await service.get(name)
    code = await asyncio.to_thread(module_code, Path(view.card.path))
    return Review(await service.review(name), await service.report(name), code)


def approval_dialog(
    review: Review, parent: QWidget, open_dialog: Callable[[QWidget], object]
) -> ApprovalDialog:
    """The normal approval dialog for ``review``, with its passing tests and a "Read the code…"
    button that opens the files through ``open_dialog``; the caller connects ``accepted``."""
    request = review.request
    title = f"The code of {request.display_name} {request.version}"
    return ApprovalDialog(
        request,
        review.report,
        parent,
        test_names=review.code.test_names,
        show_code=lambda: open_dialog(ModuleCodeDialog(title, review.code, parent)),
    )


class ModuleCodeDialog(QDialog):
    """Every file of a module, read-only: a file list beside the chosen file's text."""

    def __init__(self, title: str, code: ModuleCode, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        set_style(self, modules_style)
        fit_to_screen(self, 780, 520)
        self.code = code
        layout = QVBoxLayout(self)
        layout.setContentsMargins(18, 16, 18, 14)
        heading = QLabel(title)
        heading.setObjectName("DialogTitle")
        layout.addWidget(heading)
        splitter = QSplitter()
        self.file_list = QListWidget()
        self.file_list.setAccessibleName("The module's files")
        self.file_list.addItems([name for name, _ in code.files])
        self.text_view = code_view("", "The chosen file's text")
        splitter.addWidget(self.file_list)
        splitter.addWidget(self.text_view)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([200, 560])
        layout.addWidget(splitter, 1)
        layout.addLayout(_close_row(self))
        self.file_list.currentRowChanged.connect(self.show_file)
        if code.files:
            self.file_list.setCurrentRow(0)
        else:
            self.text_view.setPlainText("(the module has no files)")

    def show_file(self, row: int) -> None:
        if 0 <= row < len(self.code.files):
            self.text_view.setPlainText(self.code.files[row][1])


__all__ = [
    "BuildRoundDialog",
    "ModuleCode",
    "ModuleCodeDialog",
    "Review",
    "approval_dialog",
    "module_code",
    "read_module_code",
    "review_module",
    "test_names",
    "test_output_text",
]
